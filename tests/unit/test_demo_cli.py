"""``pharmafl demo`` options that stop before any work (the full demo is an integration test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.common.errors import ConfigError, KeyFileError
from pharmafl.layout import ConsortiumLayout


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


def _stop_at_simulate(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the demo's first step by one that records its folder and stops the demo."""
    import pharmafl.demo as demo_module

    reached: list[Path] = []

    def fake_simulate(out: Path, *_: object) -> None:
        reached.append(out)
        raise SystemExit(0)

    monkeypatch.setattr(demo_module, "_simulate", fake_simulate)
    return reached


def test_demo_refuses_a_folder_that_is_not_a_demo_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached = _stop_at_simulate(monkeypatch)
    out = tmp_path / "my-results"
    out.mkdir()
    (out / "notes.txt").write_text("keep me\n")
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out)])
    assert isinstance(result.exception, ConfigError), result.output
    text = str(result.exception)
    assert str(out) in text and "--force" in text and "--out" in text
    assert not reached and (out / "notes.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("case", ["previous demo", "empty", "absent", "--force"])
def test_demo_replaces_a_previous_demo_output_an_empty_folder_or_with_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    reached = _stop_at_simulate(monkeypatch)
    out = tmp_path / "out"
    if case != "absent":
        out.mkdir()
    if case in ("previous demo", "--force"):
        (out / "partners").mkdir()
    if case == "previous demo":
        ConsortiumLayout(out).demo_marker.write_text("{}\n")
    args = ["demo", "--quick", "--out", str(out)] + (["--force"] if case == "--force" else [])
    CliRunner().invoke(app, args)
    assert reached == [out]


def test_demo_marks_its_output_right_after_simulating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted demo's folder is still recognised as one the next demo may replace."""
    import pharmafl.demo as demo_module

    out = tmp_path / "out"
    monkeypatch.setattr(demo_module, "_simulate", lambda root, *_: root.mkdir())
    monkeypatch.setattr(demo_module, "_prepare", _raise_keyboard_interrupt)
    with pytest.raises(KeyboardInterrupt):
        demo_module.run_demo(out, demo_module.DemoConfig.quick(), say=lambda _: None)
    marker = json.loads(ConsortiumLayout(out).demo_marker.read_text())
    assert marker["config"]["partners"] == demo_module.DemoConfig.quick().partners
    demo_module.check_demo_out(out)  # not refused


def _raise_keyboard_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def test_task_quorum_is_tuners_by_default_and_lowers_every_training_quorum() -> None:
    from pharmafl.common.params import TaskParams
    from pharmafl.demo import DemoConfig, _task_params

    assert _task_params(DemoConfig().task_quorum) == TaskParams()  # the same parameter hash
    low = _task_params(10)
    for t, q in low.classification_quorum.items():
        expected = TaskParams().classification_quorum[t] if t == "AUX_HTS" else None
        assert q == expected or (q.num_active_total, q.num_inactive_total) == (10, 10)
    assert {(q.num_total, q.num_uncensored_total) for q in low.regression_quorum.values()} == {
        (20, 10)
    }
