"""``pharmafl ledger verify`` exits non-zero naming the first bad index; ``show`` prints it."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from pharmafl.cli.ledger import register
from pharmafl.contract import LedgerHead, LedgerHeadRecord
from pharmafl.ledger import read_entries, verify_ledger
from pharmafl.secure.identity import Roster, write_roster


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_verify_ok_and_tampered(ledger_path: Path, roster: Roster, tmp_path: Path) -> None:
    roster_file = write_roster(roster, tmp_path / "roster.json")
    runner = CliRunner()
    ok = runner.invoke(_app(), ["ledger", "verify", str(ledger_path), "--roster", str(roster_file)])
    assert ok.exit_code == 0, ok.output
    assert "ledger OK: 16 entries" in ok.output and "signatures checked" in ok.output
    chain_only = runner.invoke(_app(), ["ledger", "verify", str(ledger_path)])
    assert chain_only.exit_code == 0 and "signatures NOT checked" in chain_only.output

    head = verify_ledger(ledger_path, roster).head_hash
    lines = ledger_path.read_bytes().splitlines()
    lines[4], lines[5] = lines[5], lines[4]
    ledger_path.write_bytes(b"".join(x + b"\n" for x in lines))
    bad = runner.invoke(
        _app(), ["ledger", "verify", str(ledger_path), "--roster", str(roster_file)]
    )
    assert bad.exit_code == 1
    assert "first bad entry 4 (reordered)" in bad.output

    as_json = runner.invoke(
        _app(), ["ledger", "verify", str(ledger_path), "--json", "--head", str(head)]
    )
    assert as_json.exit_code == 1 and '"first_bad_index": 4' in as_json.output


def test_show(ledger_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(
        _app(), ["ledger", "show", str(ledger_path), "--event", "aggregate_applied"]
    )
    assert out.exit_code == 0, out.output
    assert "2 of 16 entries shown" in out.output and "aggregate_applied" in out.output
    assert "partner_joined" not in out.output
    by_actor = runner.invoke(_app(), ["ledger", "show", str(ledger_path), "--actor", "gamma"])
    assert "2 of 16 entries shown" in by_actor.output


def test_help_texts() -> None:
    runner = CliRunner()
    for args in (
        ["ledger", "--help"],
        ["ledger", "verify", "--help"],
        ["ledger", "show", "--help"],
    ):
        out = runner.invoke(_app(), args)
        assert out.exit_code == 0 and "ledger" in out.output.lower()


def test_verify_against_a_partners_recorded_heads(ledger_path: Path, tmp_path: Path) -> None:
    entries = read_entries(ledger_path)
    heads = tmp_path / "ledger_heads.jsonl"
    heads.write_bytes(
        b"".join(
            LedgerHeadRecord(
                run_id="train",
                round_id=f"train-r{r:04d}-a0",
                round_index=r,
                attempt=0,
                final=False,
                head=LedgerHead(entries=n, head_hash=entries[n - 1].entry_hash()),
                recorded_at=entries[n - 1].timestamp,
            ).line()
            for r, n in enumerate((5, 11))
        )
    )
    runner = CliRunner()
    ok = runner.invoke(_app(), ["ledger", "verify", str(ledger_path), "--heads", str(heads)])
    assert ok.exit_code == 0, ok.output
    assert "all 2 recorded partner heads are in the ledger" in ok.output
    plain = runner.invoke(_app(), ["ledger", "verify", str(ledger_path)])
    assert "no partner heads checked" in plain.output

    # The operator cuts the last six entries: the chain alone still verifies.
    ledger_path.write_bytes(b"".join(x + b"\n" for x in ledger_path.read_bytes().splitlines()[:10]))
    assert runner.invoke(_app(), ["ledger", "verify", str(ledger_path)]).exit_code == 0
    bad = runner.invoke(_app(), ["ledger", "verify", str(ledger_path), "--heads", str(heads)])
    assert bad.exit_code == 1
    assert "first bad entry 10 (deleted)" in bad.output and "train-r0001-a0" in bad.output
