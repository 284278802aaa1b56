"""The ledger holds everything needed to reproduce a run; display is readable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from rich.console import Console

from pharmafl.common.errors import LedgerError
from pharmafl.ledger import (
    Ledger,
    describe_payload,
    ledger_table,
    read_entries,
    reproduction_record,
)
from pharmafl.secure.identity import Identity, Roster


def h(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def test_reproduction_record_of_a_run(ledger_path: Path) -> None:
    record = reproduction_record(read_entries(ledger_path))
    assert record.run_id == "train" and record.finished
    assert record.consortium == "test-consortium"
    assert record.code_version == "0.1.0"
    assert record.consortium_hash == h("params")
    assert record.parameters == {"rounds": 2, "local_epochs": 1, "lr": 1e-3, "seed": 7}
    assert record.initial_trunk_hash == h("trunk-init")
    assert record.secure_aggregation is True
    assert record.trunk_hashes() == {0: h("trunk-0"), 1: h("trunk-1")}
    assert record.final_trunk_hash == h("trunk-1")
    assert record.rounds[1].contributors == ["alpha", "beta"]
    assert record.rounds[1].dropped == ["gamma"]
    assert record.participation() == {"alpha": (2, 0), "beta": (2, 0), "gamma": (1, 1)}


def test_runs_are_kept_apart(
    ledger_path: Path, roster: Roster, identities: dict[str, Identity]
) -> None:
    # A contribution-study coalition run on the same ledger does not leak into "train".
    ledger = Ledger(ledger_path, roster=roster)
    op = identities["operator"]
    ledger.append(
        "operator",
        op,
        "training_started",
        {
            "run_id": "coalition-alpha.beta",
            "code_version": "0.1.0",
            "consortium_hash": h("params"),
            "parameters": {"rounds": 1},
            "initial_trunk_hash": h("trunk-init"),
            "participants": ["alpha", "beta"],
            "secure_aggregation": True,
        },
    )
    ledger.append(
        "operator",
        op,
        "aggregate_applied",
        {"run_id": "coalition-alpha.beta", "round": 0, "trunk_hash": h("c0"), "contributors": []},
    )
    entries = read_entries(ledger_path)
    assert reproduction_record(entries).trunk_hashes()[0] == h("trunk-0")
    study = reproduction_record(entries, run_id="coalition-alpha.beta")
    assert study.trunk_hashes() == {0: h("c0")} and not study.finished
    with pytest.raises(LedgerError, match="no training_started entry for run 'other'"):
        reproduction_record(entries, run_id="other")


def test_table_and_payload_description(ledger_path: Path) -> None:
    entries = read_entries(ledger_path)
    text = describe_payload(entries[9])
    assert "contributors=alpha,beta,gamma" in text
    assert f"trunk_hash={h('trunk-0')[:12]}…" in text and h("trunk-0") not in text
    console = Console(record=True, width=200)
    console.print(ledger_table(entries))
    out = console.export_text()
    assert "aggregate_applied" in out and "gamma" in out and "ledger: 16 entries" in out
