"""Tampering of every kind is detected, with the right first bad index and issue."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from pharmafl.common.errors import LedgerError
from pharmafl.ledger import (
    GENESIS_HASH,
    Ledger,
    LedgerEntry,
    LedgerIssue,
    payload_digest,
    read_entries,
    verify_ledger,
)
from pharmafl.secure.identity import Identity, Roster


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def write_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def edit(line: bytes, **changes: object) -> bytes:
    """Change top-level fields of a raw line, keeping canonical form (as a careful forger)."""
    entry = LedgerEntry.model_validate_json(line).model_copy(update=changes)
    return entry.line()


def resign(entry: LedgerEntry, identity: Identity) -> bytes:
    return entry.model_copy(update={"signature": identity.sign(entry.signed_bytes()).hex()}).line()


def assert_bad(path: Path, roster: Roster | None, index: int, issue: LedgerIssue) -> str:
    result = verify_ledger(path, roster)
    assert not result.ok
    assert (result.first_bad_index, result.issue) == (index, issue), result.message
    assert result.verified_entries == min(index, result.entries)
    assert result.head_hash is None
    with pytest.raises(LedgerError, match=f"at entry {index} "):
        result.raise_for_error()
    assert result.message is not None
    return result.message


def test_untouched_ledger_verifies(ledger_path: Path, roster: Roster) -> None:
    result = verify_ledger(ledger_path, roster).raise_for_error()
    entries = read_entries(ledger_path)
    assert result.ok and result.signatures_checked
    assert result.entries == result.verified_entries == len(entries) == 16
    assert result.head_hash == entries[-1].entry_hash()
    assert result.events["update_submitted"] == 5 and result.events["partner_dropped"] == 1
    assert result.actors == ["alpha", "beta", "gamma", "operator"]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.entry_hash() for a, b in itertools.pairwise(entries))


def test_empty_ledger_is_ok(tmp_path: Path, roster: Roster) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b"")
    result = verify_ledger(path, roster)
    assert result.ok and result.entries == 0 and result.head_hash is None


@pytest.mark.parametrize(
    ("k", "key", "value"),
    [
        (0, "code_version", "0.0.9"),
        (5, "global_trunk_hash", "b" * 64),
        (9, "contributors", ["alpha"]),
    ],
)
def test_modified_payload_value(
    ledger_path: Path, roster: Roster, k: int, key: str, value: object
) -> None:
    lines = lines_of(ledger_path)
    doc = json.loads(lines[k])
    assert key in doc["payload"]
    doc["payload"][key] = value
    lines[k] = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, k, LedgerIssue.MODIFIED)
    assert "payload_digest" in message


def test_modified_payload_with_recomputed_digest(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    entry = LedgerEntry.model_validate_json(lines[8])  # round 0: an update_submitted
    payload = {**entry.payload, "envelope_hash": "f" * 64}
    lines[8] = edit(lines[8], payload=payload, payload_digest=payload_digest(payload))
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, 8, LedgerIssue.MODIFIED)
    assert "entry 9 recorded a different hash" in message


def test_modified_timestamp_of_middle_entry(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    entry = LedgerEntry.model_validate_json(lines[3])
    lines[3] = edit(lines[3], timestamp=entry.timestamp.replace(year=2020))
    write_lines(ledger_path, lines)
    assert_bad(ledger_path, roster, 3, LedgerIssue.MODIFIED)


def test_modified_last_entry_fails_its_signature(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    last = len(lines) - 1
    entry = LedgerEntry.model_validate_json(lines[last])
    payload = {**entry.payload, "reason": "early stopping"}
    lines[last] = edit(lines[last], payload=payload, payload_digest=payload_digest(payload))
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, last, LedgerIssue.BAD_SIGNATURE)
    assert "modified after signing" in message


def test_history_rewritten_and_resigned_by_its_own_actor(
    ledger_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    # The operator rewrites its own aggregate_applied entry with a valid new signature:
    # the next entry still points at the original, so the rewrite shows.
    lines = lines_of(ledger_path)
    k = 9
    entry = LedgerEntry.model_validate_json(lines[k])
    assert entry.event.value == "aggregate_applied"
    payload = {**entry.payload, "trunk_hash": "e" * 64}
    forged = entry.model_copy(
        update={"payload": payload, "payload_digest": payload_digest(payload)}
    )
    lines[k] = resign(forged, identities["operator"])
    write_lines(ledger_path, lines)
    assert_bad(ledger_path, roster, k, LedgerIssue.MODIFIED)


def test_next_entry_edited_is_blamed_not_its_predecessor(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    lines[6] = edit(lines[6], prev_hash="a" * 64)
    write_lines(ledger_path, lines)
    assert_bad(ledger_path, roster, 6, LedgerIssue.MODIFIED)


def test_not_canonical_line_is_modified(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    lines[2] = json.dumps(json.loads(lines[2]), indent=1).replace("\n", "").encode()
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, 2, LedgerIssue.MODIFIED)
    assert "canonical" in message


@pytest.mark.parametrize("k", [0, 4, 14])
def test_deleted_entry(ledger_path: Path, roster: Roster, k: int) -> None:
    lines = lines_of(ledger_path)
    del lines[k]
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, k, LedgerIssue.DELETED)
    assert f"entry {k} is missing" in message


def test_deleted_range(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    del lines[4:7]
    write_lines(ledger_path, lines)
    assert "entries 4..6 are missing" in assert_bad(ledger_path, roster, 4, LedgerIssue.DELETED)


def test_cut_end_needs_a_known_head(ledger_path: Path, roster: Roster) -> None:
    head = verify_ledger(ledger_path, roster).head_hash
    earlier = read_entries(ledger_path)[10].entry_hash()
    lines = lines_of(ledger_path)
    write_lines(ledger_path, lines[:-2])
    # A clean cut at the end is invisible to the chain alone ...
    assert verify_ledger(ledger_path, roster).ok
    # ... but not to a verifier that recorded the head elsewhere (e.g. summary.json).
    result = verify_ledger(ledger_path, roster, known_head=head)
    assert (result.first_bad_index, result.issue) == (len(lines) - 2, LedgerIssue.DELETED)
    # A head recorded earlier that is still present is fine (the ledger only grew since).
    assert verify_ledger(ledger_path, roster, known_head=earlier).ok


def test_inserted_duplicate_entry(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    lines.insert(9, lines[7])
    write_lines(ledger_path, lines)
    assert "repeats entry 7" in assert_bad(ledger_path, roster, 9, LedgerIssue.INSERTED)


def test_inserted_validly_signed_entry(
    ledger_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    # A roster member crafts a well-formed, correctly chained and signed entry at position 7
    # without being able to re-sign the entries that follow.
    lines = lines_of(ledger_path)
    prev = LedgerEntry.model_validate_json(lines[6])
    template = LedgerEntry.model_validate_json(lines[6])
    assert template.event.value == "update_submitted" and template.actor == "alpha"
    payload = {**template.payload, "envelope_hash": "c" * 64}
    fake = template.model_copy(
        update={"prev_hash": prev.entry_hash(), "payload": payload, "index": 7}
    ).model_copy(update={"payload_digest": payload_digest(payload)})
    lines.insert(7, resign(fake, identities["alpha"]))
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, 7, LedgerIssue.INSERTED)
    assert "inserted before the original entry 7" in message


def test_an_old_entry_rewritten_and_inserted_later_is_reported_as_inserted(
    ledger_path: Path, roster: Roster
) -> None:
    # Entry 3, with its chain link changed, inserted again at line 10: not a copy of entry 3,
    # not chained where entry 3 was, so it "holds entry 3 again".
    lines = lines_of(ledger_path)
    lines.insert(9, edit(lines[3], prev_hash="0" * 64))
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, 9, LedgerIssue.INSERTED)
    assert "line 10 holds entry 3 again (expected 9)" in message


@pytest.mark.parametrize("signer", ["alpha", "outsider"])
def test_an_entry_chained_past_its_predecessor_is_blamed_itself(
    ledger_path: Path, roster: Roster, identities: dict[str, Identity], signer: str
) -> None:
    # A roster member (or someone without a roster key) appends an entry chained to the entry
    # two lines up, as if the last genuine entry had never been written: a fork. The fork is
    # the entry that does not belong; every genuine entry before it still verifies. (The
    # verifier used to blame the genuine last entry: as "changed after the next was appended"
    # when the fork was signed by a member, as "inserted" when not.)
    lines = lines_of(ledger_path)
    n = len(lines)
    template = LedgerEntry.model_validate_json(lines[6])
    assert template.actor == "alpha"
    fork = template.model_copy(
        update={
            "index": n,
            "prev_hash": LedgerEntry.model_validate_json(lines[n - 2]).entry_hash(),
        }
    )
    key = identities["alpha"] if signer == "alpha" else Identity.generate("alpha")
    lines.append(resign(fork, key))
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, n, LedgerIssue.INSERTED)
    assert f"entry {n} chains to entry {n - 2}, past entries {n - 1}..{n - 1}" in message


@pytest.mark.parametrize(("a", "b"), [(5, 6), (3, 12), (0, 1), (14, 15)])
def test_reordered_entries(ledger_path: Path, roster: Roster, a: int, b: int) -> None:
    lines = lines_of(ledger_path)
    lines[a], lines[b] = lines[b], lines[a]
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, a, LedgerIssue.REORDERED)
    assert f"entry {a} is at line {b + 1}" in message


def test_truncated_last_line(
    ledger_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    data = ledger_path.read_bytes()
    n = data.count(b"\n")
    ledger_path.write_bytes(data[:-40])  # a crash in the middle of writing the last line
    message = assert_bad(ledger_path, roster, n - 1, LedgerIssue.TRUNCATED)
    assert "incomplete" in message
    with pytest.raises(LedgerError, match="incomplete"):
        read_entries(ledger_path)
    ledger = Ledger(ledger_path, roster=roster)
    with pytest.raises(LedgerError, match="refusing to append"):
        ledger.append(
            "operator", identities["operator"], "round_aborted", {"round": 3, "reason": "x"}
        )
    # Recovery drops only the incomplete bytes; the chain before it is intact.
    assert ledger.recover() > 0
    assert ledger.recover() == 0
    result = verify_ledger(ledger_path, roster)
    assert result.ok and result.entries == n - 1
    ledger.append("operator", identities["operator"], "round_aborted", {"round": 3, "reason": "x"})
    assert verify_ledger(ledger_path, roster).ok


def test_missing_final_newline_is_truncated(ledger_path: Path, roster: Roster) -> None:
    data = ledger_path.read_bytes()
    ledger_path.write_bytes(data[:-1])
    n = data.count(b"\n")
    assert_bad(ledger_path, roster, n - 1, LedgerIssue.TRUNCATED)


def test_blank_or_garbage_line_is_malformed(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    lines[4] = b"{not json"
    write_lines(ledger_path, lines)
    assert_bad(ledger_path, roster, 4, LedgerIssue.MALFORMED)
    lines[4] = b""
    write_lines(ledger_path, lines)
    assert "blank line" in assert_bad(ledger_path, roster, 4, LedgerIssue.MALFORMED)


def test_signature_forged_with_a_foreign_key(ledger_path: Path, roster: Roster) -> None:
    lines = lines_of(ledger_path)
    entry = LedgerEntry.model_validate_json(lines[5])
    mallory = Identity.generate(entry.actor)  # same name, key not in the roster
    lines[5] = resign(entry, mallory)
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, 5, LedgerIssue.BAD_SIGNATURE)
    assert f"roster key of {entry.actor!r}" in message
    # Chain-only verification cannot see a swapped signature (and says it did not check).
    chain_only = verify_ledger(ledger_path, None)
    assert chain_only.ok and not chain_only.signatures_checked


def test_signature_by_another_roster_member(
    ledger_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    lines = lines_of(ledger_path)
    entry = LedgerEntry.model_validate_json(lines[7])
    assert entry.actor == "beta"
    lines[7] = resign(entry, identities["gamma"])  # gamma signs in beta's name
    write_lines(ledger_path, lines)
    message = assert_bad(ledger_path, roster, 7, LedgerIssue.BAD_SIGNATURE)
    assert "key of 'gamma' instead" in message


def test_unknown_actor(tmp_path: Path, roster: Roster, identities: dict[str, Identity]) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)  # no roster: append cannot refuse
    ledger.append("operator", identities["operator"], "round_aborted", {"round": 0, "reason": "x"})
    stranger = Identity.generate("delta")
    ledger.append("delta", stranger, "round_aborted", {"round": 0, "reason": "x"})
    message = assert_bad(path, roster, 1, LedgerIssue.UNKNOWN_ACTOR)
    assert "'delta' is not in the roster" in message


def test_payload_violating_its_model_is_malformed(ledger_path: Path, roster: Roster) -> None:
    # An update_submitted entry smuggling extra content is refused even if re-hashed.
    lines = lines_of(ledger_path)
    entry = LedgerEntry.model_validate_json(lines[7])
    payload = {**entry.payload, "update": [0.1, 0.2]}
    lines[7] = edit(lines[7], payload=payload, payload_digest=payload_digest(payload))
    write_lines(ledger_path, lines)
    assert_bad(ledger_path, roster, 7, LedgerIssue.MALFORMED)


def test_chain_only_still_detects_structural_tampering(ledger_path: Path) -> None:
    lines = lines_of(ledger_path)
    del lines[3]
    write_lines(ledger_path, lines)
    result = verify_ledger(ledger_path, None)
    assert (result.first_bad_index, result.issue) == (3, LedgerIssue.DELETED)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="not found"):
        verify_ledger(tmp_path / "nope.jsonl")
