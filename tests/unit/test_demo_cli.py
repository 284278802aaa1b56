"""``pharmafl demo`` options that stop before any work (the full demo is an integration test)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.common.errors import KeyFileError


def test_demo_key_option_reaches_the_simulation_and_a_bad_key_stops_it(tmp_path: Path) -> None:
    key = tmp_path / "key.json"
    key.write_text('{"key": "rehearsal"}\n')
    key.chmod(0o644)  # readable by others: refused, naming the file and the fix
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--key", str(key)])
    assert isinstance(result.exception, KeyFileError), result.output
    assert str(key) in str(result.exception) and "chmod 600" in str(result.exception)
    assert not out.exists()
