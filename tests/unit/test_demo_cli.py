"""``pharmafl demo`` options that stop before any work (the full demo is an integration test)."""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_demo_dp_option_reaches_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pharmafl.demo as demo_module

    seen: list[demo_module.DemoConfig] = []

    def fake_run_demo(out: Path, config: demo_module.DemoConfig, **_: object) -> None:
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(demo_module, "run_demo", fake_run_demo)
    args = ["demo", "--quick", "--out", str(tmp_path / "d"), "--dp-noise-multiplier", "2"]
    CliRunner().invoke(app, args)
    assert seen and seen[0].dp_noise_multiplier == 2.0
