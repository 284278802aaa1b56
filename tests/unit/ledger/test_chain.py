"""Appending: validated payloads, roster-checked actors, canonical durable lines, concurrency."""

from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pharmafl.common import crypto
from pharmafl.common.errors import LedgerError
from pharmafl.ledger import (
    GENESIS_HASH,
    PAYLOAD_MODELS,
    Ledger,
    LedgerEntry,
    LedgerEvent,
    UpdateSubmittedPayload,
    payload_digest,
    read_entries,
    verify_ledger,
)
from pharmafl.ledger.events import MAX_PAYLOAD_BYTES
from pharmafl.secure.identity import Identity, Roster, build_roster

H = "ab" * 32


def test_append_writes_one_canonical_signed_line(
    tmp_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    path = tmp_path / "sub" / "ledger.jsonl"
    ledger = Ledger(path, roster=roster)
    assert ledger.head() == (0, GENESIS_HASH)
    first = ledger.append(
        "alpha",
        identities["alpha"],
        LedgerEvent.UPDATE_SUBMITTED,
        UpdateSubmittedPayload(round=0, partner="alpha", envelope_hash=H),
    )
    second = ledger.append(
        "operator", identities["operator"], "round_aborted", {"round": 0, "reason": "too few"}
    )
    raw = path.read_bytes()
    assert raw.count(b"\n") == 2 and raw.endswith(b"\n")
    assert raw.splitlines()[0] == first.line()
    assert (first.index, second.index) == (0, 1)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.entry_hash()
    assert ledger.head() == (2, second.entry_hash())
    assert first.payload == {
        "run_id": "train",
        "round": 0,
        "partner": "alpha",
        "envelope_hash": H,
        "n_bytes": None,
    }
    assert first.payload_digest == payload_digest(first.payload)
    assert second.payload["survivors"] == []  # defaults filled in and recorded
    assert crypto.ed25519_verify(
        identities["alpha"].public.key_bytes(),
        first.signed_bytes(),
        bytes.fromhex(first.signature),
    )
    assert read_entries(path) == [first, second] == ledger.entries()
    assert verify_ledger(path, roster).ok


def test_raw_private_key_and_timestamps(tmp_path: Path) -> None:
    sk, pk = crypto.ed25519_generate()
    op = Identity("op", "operator", sk)
    roster = build_roster(op, [], consortium="c")
    ledger = Ledger(tmp_path / "ledger.jsonl", roster=roster)
    cet = timezone(timedelta(hours=2))
    entry = ledger.append(
        "op",
        sk,
        "round_aborted",
        {"round": 1, "reason": "x"},
        timestamp=datetime(2025, 3, 1, 14, 0, tzinfo=cet),
    )
    assert entry.timestamp == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert b'"timestamp":"2025-03-01T12:00:00Z"' in entry.line()
    assert LedgerEntry.model_validate_json(entry.line()) == entry
    assert verify_ledger(ledger.path, roster).ok
    assert pk.hex() == roster.member("op").public_key


def test_actor_must_match_roster_and_key(
    tmp_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path, roster=roster)
    payload = {"round": 0, "reason": "x"}
    with pytest.raises(LedgerError, match="not in the roster"):
        ledger.append("delta", Identity.generate("delta"), "round_aborted", payload)
    with pytest.raises(LedgerError, match="not the roster key of 'alpha'"):
        ledger.append("alpha", Identity.generate("alpha"), "round_aborted", payload)
    with pytest.raises(LedgerError, match="does not match the signing identity"):
        ledger.append("alpha", identities["beta"], "round_aborted", payload)
    assert not path.exists() or path.read_bytes() == b""


@pytest.mark.parametrize(
    ("event", "payload", "match"),
    [
        ("update_received", {}, "unknown ledger event.*aggregate_applied"),
        ("aggregate_applied", {"round": 0, "contributors": []}, "trunk_hash"),
        ("aggregate_applied", {"round": -1, "trunk_hash": H, "contributors": []}, "round"),
        (
            "update_submitted",
            {"round": 0, "partner": "alpha", "envelope_hash": H, "weights": [0.1]},
            "weights",
        ),
        (
            "evaluation_reported",
            {"partner": "alpha", "model": "federated", "split": "test", "metrics": {"x": "nan"}},
            "NaN",
        ),
        (
            "training_finished",
            {"rounds": 1, "final_trunk_hash": H, "reason": "x", "notes": "y" * MAX_PAYLOAD_BYTES},
            "limit",
        ),
    ],
)
def test_invalid_payloads_are_refused_before_writing(
    tmp_path: Path, identities: dict[str, Identity], event: str, payload: dict, match: str
) -> None:
    path = tmp_path / "ledger.jsonl"
    with pytest.raises(LedgerError, match=match):
        Ledger(path).append("operator", identities["operator"], event, payload)
    assert not path.exists() or path.read_bytes() == b""


def test_every_event_has_a_payload_model() -> None:
    assert set(PAYLOAD_MODELS) == set(LedgerEvent)


def _append_many(path: str, party: str, key: bytes, n: int) -> None:
    ident = Identity(party, "partner", key)
    ledger = Ledger(path)
    for r in range(n):
        ledger.append(
            party,
            ident,
            "update_submitted",
            {"round": r, "partner": party, "envelope_hash": H},
        )


def test_concurrent_appenders_keep_the_chain(tmp_path: Path) -> None:
    keys = {f"p{i}": crypto.ed25519_generate()[0] for i in range(3)}
    op = Identity.generate("op", "operator")
    roster = build_roster(
        op, [Identity(p, "partner", k).public for p, k in keys.items()], consortium="c"
    )
    path = tmp_path / "ledger.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), p, k, 15)) for p, k in keys.items()]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    result = verify_ledger(path, roster)
    assert result.ok, result.message
    assert result.entries == 45
    assert result.actors == ["p0", "p1", "p2"]
    assert all(json.loads(line) for line in path.read_bytes().splitlines())
