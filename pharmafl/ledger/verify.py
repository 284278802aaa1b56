"""Verify a ledger: canonical lines, gap-free indices, the hash chain and every signature.

The check walks the file line by line and stops at the first problem, naming the entry index
and the kind of damage:

``truncated``
    the last line is incomplete (a crash during append);
``malformed``
    a line is not a valid entry (or its payload does not fit its event's model);
``modified``
    an entry's content changed after it was written (payload digest, the hash the next
    entry recorded, non-canonical bytes);
``deleted`` / ``inserted`` / ``reordered``
    entries are missing, extra or out of order (indices and the chain disagree with
    positions), or the head recorded elsewhere is no longer in the file (a partner's
    recorded head beyond its end: entries were cut from it);
``rewritten``
    a chain that verifies, but not the one a partner saw: the entry at a head a partner
    recorded from a signed round spec has another hash (the operator deleted, inserted or
    changed entries up to it and signed the chain again);
``unknown_actor``
    the signer is not in the roster;
``bad_signature``
    the signature does not verify under the actor's roster key (forged, or signed by
    another key: the message names the roster member whose key it verifies under, if any).

A verifier without a roster checks everything but signatures (and says so). The chain is
signed by its writers, the operator above all, so only heads recorded by others (partners,
from the specs the operator signed: ``heads``) show a history the operator rewrote.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pharmafl.common import crypto
from pharmafl.common.errors import LedgerError
from pharmafl.contract.heads import LedgerHeadRecord
from pharmafl.ledger.entry import GENESIS_HASH, LedgerEntry, payload_digest
from pharmafl.ledger.events import HEX64, validate_payload
from pharmafl.secure.identity import Roster


class LedgerIssue(StrEnum):
    """Kinds of damage :func:`verify_ledger` tells apart."""

    TRUNCATED = "truncated"
    MALFORMED = "malformed"
    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    UNKNOWN_ACTOR = "unknown_actor"
    BAD_SIGNATURE = "bad_signature"
    REWRITTEN = "rewritten"


class VerificationResult(BaseModel):
    """Outcome of :func:`verify_ledger`: OK, or the first bad entry and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="The ledger file checked.")
    ok: bool = Field(description="True when every check passed.")
    entries: int = Field(ge=0, description="Lines in the file (complete or not).")
    verified_entries: int = Field(ge=0, description="Entries before the first bad one.")
    signatures_checked: bool = Field(description="False when no roster was given.")
    heads_checked: int = Field(
        0, ge=0, description="Partners' recorded heads found in the ledger (all when ok)."
    )
    head_hash: str | None = Field(
        None, pattern=HEX64, description="Hash of the last entry (None if not ok or empty)."
    )
    first_bad_index: int | None = Field(None, ge=0, description="Index of the first bad entry.")
    issue: LedgerIssue | None = Field(None, description="What is wrong with it.")
    message: str | None = Field(None, description="Explanation, naming entries and lines.")
    events: dict[str, int] = Field(default_factory=dict, description="Verified entries/event.")
    actors: list[str] = Field(default_factory=list, description="Actors of verified entries.")

    def raise_for_error(self) -> VerificationResult:
        """Return ``self`` when ok, else raise :class:`LedgerError` naming the first bad index."""
        if not self.ok:
            raise LedgerError(
                f"ledger verification failed at entry {self.first_bad_index} "
                f"({self.issue}): {self.message}",
                file=self.path,
                fix="restore the ledger from a trusted copy; never edit it by hand.",
            )
        return self


@dataclass
class _Line:
    raw: bytes
    entry: LedgerEntry | None = None
    error: str | None = None
    hash: str | None = None
    canonical: bool = True


class _BadEntry(Exception):  # noqa: N818 - internal control flow, never escapes
    def __init__(self, index: int, issue: LedgerIssue, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.issue = issue
        self.message = message


def _parse(raw: bytes) -> _Line:
    line = _Line(raw=raw)
    if not raw.strip():
        line.error = "blank line"
        return line
    try:
        entry = LedgerEntry.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "line"
        line.error = f"not a valid ledger entry ({where}: {first['msg']})"
        return line
    try:
        validate_payload(entry.event, entry.payload)
    except LedgerError as exc:
        line.error = exc.message
        return line
    line.entry = entry
    line.hash = entry.entry_hash()
    line.canonical = entry.line() == raw
    return line


def _split(data: bytes) -> tuple[list[bytes], bool]:
    """Lines of ``data`` and whether the last one is incomplete (no final newline)."""
    if not data:
        return [], False
    parts = data.split(b"\n")
    if parts[-1] == b"":
        return parts[:-1], False
    return parts, True


def _signature_ok(entry: LedgerEntry, public_key_hex: str) -> bool:
    return crypto.ed25519_verify(
        bytes.fromhex(public_key_hex), entry.signed_bytes(), bytes.fromhex(entry.signature)
    )


def _earlier_line(lines: list[_Line], h: str | None, before: int) -> int | None:
    """The first of lines 0..before-1 whose hash is ``h`` (where a fork chains to)."""
    return next((q for q in range(before) if lines[q].hash == h), None)


def _member_key(roster: Roster | None, actor: str) -> str | None:
    member = None if roster is None else roster.get(actor)
    return member.public_key if member is not None else None


def _check_order(lines: list[_Line], p: int, entry: LedgerEntry, h: str) -> None:
    """Raise when entry p's index or prev_hash disagrees with its position."""
    n = len(lines)
    j = entry.index
    if j > p:
        later = next(
            (q for q in range(p + 1, n) if lines[q].entry and lines[q].entry.index == p),  # type: ignore[union-attr]
            None,
        )
        if later is not None:
            raise _BadEntry(
                p,
                LedgerIssue.REORDERED,
                f"line {p + 1} holds entry {j}; entry {p} is at line {later + 1}.",
            )
        missing = f"entry {p} is" if j == p + 1 else f"entries {p}..{j - 1} are"
        raise _BadEntry(p, LedgerIssue.DELETED, f"line {p + 1} holds entry {j}: {missing} missing.")
    if j < p:
        if lines[j].hash == h:
            raise _BadEntry(p, LedgerIssue.INSERTED, f"line {p + 1} repeats entry {j}.")
        anchor = GENESIS_HASH if j == 0 else lines[j - 1].hash
        if entry.prev_hash == anchor:
            raise _BadEntry(
                j,
                LedgerIssue.INSERTED,
                f"lines {j + 1}..{p} were inserted before the original entry {j} "
                f"(now at line {p + 1}, chained to entry {j - 1 if j else 'genesis'}).",
            )
        raise _BadEntry(
            p, LedgerIssue.INSERTED, f"line {p + 1} holds entry {j} again (expected {p})."
        )
    expected = GENESIS_HASH if p == 0 else lines[p - 1].hash
    if entry.prev_hash != expected:
        skipped = _earlier_line(lines, entry.prev_hash, p - 1)
        if skipped is not None:  # a fork: blame it, not the entries it skips
            raise _BadEntry(
                p,
                LedgerIssue.INSERTED,
                f"entry {p} chains to entry {skipped}, past entries {skipped + 1}..{p - 1}: "
                "it was not appended to this ledger (a fork).",
            )
        raise _BadEntry(
            p,
            LedgerIssue.MODIFIED,
            f"its prev_hash does not match entry {p - 1 if p else 'genesis'}.",
        )


def _check_content(lines: list[_Line], p: int, roster: Roster | None) -> None:
    line = lines[p]
    entry = line.entry
    assert entry is not None and line.hash is not None
    if payload_digest(entry.payload) != entry.payload_digest:
        raise _BadEntry(p, LedgerIssue.MODIFIED, "its payload does not match its payload_digest.")
    member_key = _member_key(roster, entry.actor)
    nxt = lines[p + 1].entry if p + 1 < len(lines) else None
    if (
        nxt is not None
        and nxt.index == p + 1
        and nxt.prev_hash != line.hash
        and _earlier_line(lines, nxt.prev_hash, p) is None  # a fork: blamed itself
    ):
        # The next entry recorded another hash for this one. Blame this entry unless it is
        # still validly signed while the next one is not (then the next one was edited).
        next_key = _member_key(roster, nxt.actor)
        this_signed = member_key is not None and _signature_ok(entry, member_key)
        next_signed = next_key is not None and _signature_ok(nxt, next_key)
        if not (this_signed and not next_signed):
            raise _BadEntry(
                p,
                LedgerIssue.MODIFIED,
                f"entry {p + 1} recorded a different hash for it: it changed after entry "
                f"{p + 1} was appended.",
            )
    if roster is None:
        return
    if member_key is None:
        raise _BadEntry(
            p,
            LedgerIssue.UNKNOWN_ACTOR,
            f"actor {entry.actor!r} is not in the roster of {roster.consortium!r}.",
        )
    if not _signature_ok(entry, member_key):
        others = [
            m.id
            for m in roster.members
            if m.id != entry.actor and _signature_ok(entry, m.public_key)
        ]
        why = (
            f"it verifies under the key of {others[0]!r} instead (forged)"
            if others
            else "it was modified after signing or signed with another key"
        )
        raise _BadEntry(
            p,
            LedgerIssue.BAD_SIGNATURE,
            f"the signature does not verify under the roster key of {entry.actor!r}: {why}.",
        )


def _check_heads(
    lines: list[_Line], heads: Sequence[LedgerHeadRecord]
) -> tuple[int, _BadEntry | None]:
    """How many recorded heads the ledger holds, up to the first one (by position) it no
    longer holds, and that failure."""
    last_ok = None
    for matched, record in enumerate(sorted(heads, key=lambda r: r.head.entries)):
        n = record.head.entries
        seen = (
            f"the spec of round {record.round_id}, signed by the operator, showed a partner "
            f"the ledger at {record.head.describe()}"
        )
        if n > len(lines):
            return matched, _BadEntry(
                len(lines),
                LedgerIssue.DELETED,
                f"{seen}, but the ledger has only {len(lines)} entries: entries were cut from "
                "its end after the partner saw them.",
            )
        if n and lines[n - 1].hash != record.head.head_hash:
            kept = "" if last_ok is None else f" (it still matches the head at entry {last_ok})"
            return matched, _BadEntry(
                n - 1,
                LedgerIssue.REWRITTEN,
                f"{seen}, but entry {n - 1} now has hash {(lines[n - 1].hash or '')[:12]}…: "
                f"entries up to it were deleted, inserted or changed and the chain signed "
                f"again after the partner saw it{kept}.",
            )
        last_ok = n - 1 if n else last_ok
    return len(heads), None


def verify_ledger(
    path: str | Path,
    roster: Roster | None = None,
    *,
    known_head: str | None = None,
    heads: Sequence[LedgerHeadRecord] = (),
) -> VerificationResult:
    """Check a ledger file and report the first bad entry, if any.

    Parameters
    ----------
    path
        The ``ledger.jsonl`` file.
    roster
        A verified :class:`~pharmafl.secure.identity.Roster` (``load_roster``); every
        signature, the operator's included, is checked against its keys. Without it only the
        chain, indices and payload digests are checked (``signatures_checked`` is False).
    known_head
        An entry hash recorded elsewhere earlier (e.g. ``summary.json``'s ``ledger.head_hash``).
        A chain cannot show entries cut from its end by itself; with ``known_head`` the check
        fails (``deleted``) unless that entry is still in the file.
    heads
        Ledger heads a partner recorded from the round specs the operator signed
        (:func:`~pharmafl.contract.read_ledger_heads` of ``PARTNER_DIR/ledger_heads.jsonl``;
        several partners' records may be passed together). The check fails at the first one
        the file no longer holds: ``deleted`` when the ledger now ends before it,
        ``rewritten`` when that entry has another hash. ``heads_checked`` counts those that
        match.

    Returns
    -------
    VerificationResult
        ``ok`` or the first bad index, issue and message. Use ``raise_for_error()`` to turn a
        failure into a :class:`LedgerError`.

    Raises
    ------
    LedgerError
        If the file does not exist.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise LedgerError(
            "ledger file not found.", file=p, fix="pass the consortium's ledger.jsonl."
        ) from None
    raws, incomplete = _split(data)
    lines = [_parse(raw) for raw in raws]
    events: Counter[str] = Counter()
    actors: set[str] = set()
    heads_checked = 0

    def result(ok: bool, verified: int, failure: _BadEntry | None = None) -> VerificationResult:
        head = lines[verified - 1].hash if ok and verified else None
        return VerificationResult(
            path=str(p),
            ok=ok,
            entries=len(lines),
            verified_entries=verified,
            signatures_checked=roster is not None,
            heads_checked=heads_checked,
            head_hash=head,
            first_bad_index=None if failure is None else failure.index,
            issue=None if failure is None else failure.issue,
            message=None if failure is None else failure.message,
            events=dict(sorted(events.items())),
            actors=sorted(actors),
        )

    try:
        for pos, line in enumerate(lines):
            if line.entry is None:
                if incomplete and pos == len(lines) - 1:
                    raise _BadEntry(
                        pos,
                        LedgerIssue.TRUNCATED,
                        f"line {pos + 1} is incomplete (a crash during append?).",
                    )
                raise _BadEntry(
                    pos, LedgerIssue.MALFORMED, f"line {pos + 1}: {(line.error or '').rstrip('.')}."
                )
            if incomplete and pos == len(lines) - 1:
                raise _BadEntry(pos, LedgerIssue.TRUNCATED, f"line {pos + 1} has no final newline.")
            if not line.canonical:
                raise _BadEntry(
                    pos,
                    LedgerIssue.MODIFIED,
                    f"line {pos + 1} is not in the canonical form append() writes (edited?).",
                )
            assert line.hash is not None
            _check_order(lines, pos, line.entry, line.hash)
            _check_content(lines, pos, roster)
            events[line.entry.event.value] += 1
            actors.add(line.entry.actor)
        if known_head is not None and known_head not in {ln.hash for ln in lines}:
            raise _BadEntry(
                len(lines),
                LedgerIssue.DELETED,
                "the known head entry is no longer in the ledger: entries were cut from its "
                "end or it was rewritten.",
            )
        heads_checked, bad_head = _check_heads(lines, heads)
        if bad_head is not None:
            raise bad_head
    except _BadEntry as failure:
        verified = min(failure.index, len(lines))
        if failure.index < len(lines):
            # Counts cover only entries before the first bad one.
            events.clear()
            actors.clear()
            for ln in lines[:verified]:
                assert ln.entry is not None
                events[ln.entry.event.value] += 1
                actors.add(ln.entry.actor)
        return result(False, verified, failure)
    return result(True, len(lines))


__all__ = ["LedgerIssue", "VerificationResult", "verify_ledger"]
