"""A partner's record of the operator's ledger heads: what contradicts, what does not."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from pharmafl.common.errors import FederationError, LedgerError
from pharmafl.contract import (
    EMPTY_LEDGER_HASH,
    LedgerHead,
    TrainSpec,
    format_round_id,
    read_ledger_heads,
)
from pharmafl.layout import PartnerLayout
from pharmafl.partner import record_ledger_head

TRUNK = {"kind": "sparse", "hidden_sizes": [64], "dropouts": [0.1]}


def _h(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def _spec(
    entries: int,
    tag: str = "honest",
    *,
    run: str = "train",
    index: int = 0,
    attempt: int = 0,
    final: bool = False,
) -> TrainSpec:
    """A spec showing the ledger at ``entries`` entries; ``tag`` names the history."""
    return TrainSpec(
        run_id=run,
        round_index=index,
        attempt=attempt,
        round_id=format_round_id(run, index, attempt, final),
        participants=("alpha", "beta"),
        global_trunk_sha256=_h("trunk"),
        trunk=TRUNK,
        local={},
        seed=0,
        previous_round_completed=index > 0,
        final=final,
        ledger_head=LedgerHead(
            entries=entries, head_hash=_h(f"{tag}-{entries}") if entries else EMPTY_LEDGER_HASH
        ),
    )


def _heads(pdir: Path) -> Path:
    return PartnerLayout(pdir).ledger_heads


def test_heads_of_one_growing_ledger_are_recorded_once_each(tmp_path: Path) -> None:
    record_ledger_head(tmp_path, _spec(0))
    record_ledger_head(tmp_path, _spec(4, index=1))
    record_ledger_head(tmp_path, _spec(4, index=1))  # the same spec fetched again
    record_ledger_head(tmp_path, _spec(9, index=1, final=True))
    records = read_ledger_heads(_heads(tmp_path))
    assert [(r.round_id, r.head.entries) for r in records] == [
        ("train-r0000-a0", 0),
        ("train-r0001-a0", 4),
        ("train-r0001-final", 9),
    ]


def test_an_entry_seen_with_another_hash_is_refused_in_any_run(tmp_path: Path) -> None:
    record_ledger_head(tmp_path, _spec(5, index=2))
    before = _heads(tmp_path).read_bytes()
    with pytest.raises(FederationError, match="rewrote its ledger") as err:
        record_ledger_head(tmp_path, _spec(5, "forged", run="coalition-ab"))
    assert "entry 4" in err.value.message and "pharmafl ledger verify" in (err.value.fix or "")
    assert _heads(tmp_path).read_bytes() == before  # nothing recorded


@pytest.mark.parametrize(
    ("index", "attempt", "final"),
    [(1, 0, False), (0, 1, False), (0, 0, True), (0, 0, False)],
    ids=["later-round", "retry", "final", "same-round-again"],
)
def test_a_later_spec_of_the_run_showing_fewer_entries_is_a_rollback(
    tmp_path: Path, index: int, attempt: int, final: bool
) -> None:
    record_ledger_head(tmp_path, _spec(7))
    with pytest.raises(FederationError, match="rolled its ledger back"):
        record_ledger_head(tmp_path, _spec(6, index=index, attempt=attempt, final=final))


def test_fewer_entries_in_another_run_or_an_earlier_round_are_no_rollback(
    tmp_path: Path,
) -> None:
    # A contribution study trains coalitions in parallel, and a partner may fetch a late
    # round's spec after a later one: neither shows that the ledger was rolled back.
    record_ledger_head(tmp_path, _spec(20, run="coalition-ab", index=1))
    record_ledger_head(tmp_path, _spec(18, run="coalition-ac", index=1))
    record_ledger_head(tmp_path, _spec(30, index=3))
    record_ledger_head(tmp_path, _spec(26, index=2, attempt=1))
    assert len(read_ledger_heads(_heads(tmp_path))) == 4


def test_a_torn_last_line_is_dropped_and_the_file_stays_readable(tmp_path: Path) -> None:
    record_ledger_head(tmp_path, _spec(3))
    with _heads(tmp_path).open("ab") as fh:
        fh.write(b'{"run_id": "train", "round_id')  # a crash while appending
    assert len(read_ledger_heads(_heads(tmp_path))) == 1
    record_ledger_head(tmp_path, _spec(5, index=1))
    assert [r.head.entries for r in read_ledger_heads(_heads(tmp_path))] == [3, 5]


def test_a_damaged_heads_file_is_named_with_its_line(tmp_path: Path) -> None:
    record_ledger_head(tmp_path, _spec(3))
    with _heads(tmp_path).open("ab") as fh:
        fh.write(b"not a record\n")
    with pytest.raises(LedgerError, match="not a ledger head record") as err:
        read_ledger_heads(_heads(tmp_path))
    assert err.value.row == 2
    with pytest.raises(LedgerError, match="not found"):
        read_ledger_heads(tmp_path / "missing.jsonl")


def test_concurrent_rounds_append_whole_lines(tmp_path: Path) -> None:
    def work(i: int) -> None:
        for r in range(5):
            record_ledger_head(tmp_path, _spec(10 * i + r + 1, run=f"coalition-{i}", index=r))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_ledger_heads(_heads(tmp_path))) == 30


def test_a_head_hash_must_fit_the_entry_count() -> None:
    with pytest.raises(ValidationError):
        LedgerHead(entries=0, head_hash=_h("x"))
    with pytest.raises(ValidationError):
        LedgerHead(entries=3, head_hash=EMPTY_LEDGER_HASH)


def test_a_later_spec_of_a_run_must_show_more_entries(tmp_path: Path) -> None:
    # An operator that keeps showing an old head could delete what it appended after it.
    record_ledger_head(tmp_path, _spec(5, index=1))
    with pytest.raises(FederationError, match="rolled its ledger back"):
        record_ledger_head(tmp_path, _spec(5, index=2))
    record_ledger_head(tmp_path, _spec(9, index=2))
    # Repeated final evaluations (a crash during the final phase) may show the same head.
    record_ledger_head(tmp_path, _spec(12, index=3, final=True))
    record_ledger_head(tmp_path, _spec(12, index=3, attempt=1, final=True))
