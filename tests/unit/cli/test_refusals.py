"""The command line's own refusals and exits, each run through the real app (guard mutation
of ``pharmafl/cli`` and ``pharmafl/simulate`` found these untested)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pharmafl import __version__
from pharmafl.cli.main import app
from pharmafl.common.errors import ConfigError


def test_version_prints_the_version_and_runs_nothing() -> None:
    res = CliRunner().invoke(app, ["--version", "schemas", "generate"])
    assert res.exit_code == 0, res.output
    assert res.output == f"pharmafl {__version__}\n"  # no schema written, no command run


def test_a_missing_model_config_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    res = CliRunner().invoke(app, ["baseline", str(tmp_path), "--config", str(missing)])
    assert isinstance(res.exception, ConfigError), res.output
    assert "config file not found" in str(res.exception) and str(missing) in str(res.exception)


@pytest.mark.parametrize("text", ["epochs: 3\n", "- trunk\n", "trunk: {}\nlearning: {}\n"])
def test_a_model_config_file_needs_trunk_or_train_sections(tmp_path: Path, text: str) -> None:
    config = tmp_path / "model.yaml"
    config.write_text(text)
    res = CliRunner().invoke(app, ["baseline", str(tmp_path), "--config", str(config)])
    assert isinstance(res.exception, ConfigError), res.output
    assert "'trunk' and/or 'train' sections" in str(res.exception)


def test_partner_serve_exits_with_its_workers_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that stops with an error stops ``partner serve`` with the same status, so a
    service manager sees it (and restarts it)."""
    from pharmafl.partner import serve

    seen = []

    def worker_failed(config: serve.PartnerServeConfig, flow: object) -> int:
        seen.append(config.pool)
        return 3

    monkeypatch.setattr(serve, "serve_partner", worker_failed)
    args = ["partner", "serve", str(tmp_path), "--pool", "pool-alpha"]
    res = CliRunner().invoke(app, [*args, "--api-url", "http://127.0.0.1:9/api"])
    assert seen == ["pool-alpha"] and res.exit_code == 3, res.output


def test_simulate_refuses_an_output_path_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.write_text("a file the user keeps\n")
    res = CliRunner().invoke(app, ["consortium", "simulate", "--out", str(out)])
    assert isinstance(res.exception, ConfigError), res.output
    assert "exists and is not a folder" in str(res.exception)
    assert out.read_text() == "a file the user keeps\n"


def test_schemas_check_refuses_a_stale_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pharmafl import schema_registry

    schema_registry.generate_schemas(tmp_path)
    first = sorted(tmp_path.glob("*.schema.json"))[0]
    first.write_text(first.read_text().replace('"title"', '"titel"', 1))
    real = schema_registry.stale_schemas
    monkeypatch.setattr(schema_registry, "stale_schemas", lambda: real(tmp_path))
    res = CliRunner().invoke(app, ["schemas", "check"])
    assert isinstance(res.exception, ConfigError), res.output
    assert first.name in str(res.exception) and "pharmafl schemas generate" in str(res.exception)
    monkeypatch.setattr(schema_registry, "stale_schemas", lambda: real(tmp_path / "none"))
    fresh = tmp_path / "none"
    schema_registry.generate_schemas(fresh)
    assert CliRunner().invoke(app, ["schemas", "check"]).output == "schemas are fresh\n"


def test_the_entry_point_passes_a_normal_exit_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main()`` turns only a Ctrl-C into "interrupted" (exit 130); a command's own exit
    (here ``--version``'s) leaves with its status and nothing added."""
    import signal

    from pharmafl.cli.main import main

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr("sys.argv", ["pharmafl", "--version"])
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    out = capsys.readouterr()
    assert stopped.value.code in (0, None) and out.out == f"pharmafl {__version__}\n"
    assert "interrupted" not in out.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["prepare", "{d}", "--engine", "spark"], "unknown engine 'spark'"),
        (["baseline", "{d}", "--model", "svm"], "unknown --model 'svm'"),
        (["evaluate", "{d}"], "no new measurements given"),
        (["train", "{d}", "--launcher", "cloud"], "unknown launcher 'cloud'"),
    ],
)
def test_unknown_choices_and_missing_inputs_are_refused(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    res = CliRunner().invoke(app, [a.format(d=tmp_path) for a in args])
    assert isinstance(res.exception, ConfigError), res.output
    assert needle in str(res.exception)
