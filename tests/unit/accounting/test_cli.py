"""``pharmafl contribution``: registered, documented, and bad options fail before any work.

The command's real run (flow, coalitions, output table) is exercised end to end in
``tests/unit/flows/test_contribution_flow.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from pharmafl.cli.contribution import METHODS, register
from pharmafl.common.errors import ConfigError


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_the_main_app_has_the_command() -> None:
    from pharmafl.cli.main import COMMAND_MODULES, app

    assert "contribution" in COMMAND_MODULES
    out = CliRunner().invoke(app, ["contribution", "--help"])
    assert out.exit_code == 0, out.output
    options = ("--rounds", "--method", "--samples", "--seed", "--parallel", "--keep-runs")
    for option in (*options, "--launcher", "--exchange", "--local-epochs"):
        assert option in out.output


def test_cli_methods_map_to_study_methods() -> None:
    from pharmafl.accounting import StudyConfig

    for name, method in METHODS.items():
        assert StudyConfig(method=method).method == method, name  # type: ignore[arg-type]
    assert METHODS["loo"] == "leave_one_out"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "banzhaf"], "auto, exact, permutation, loo"),
        (["--launcher", "cloud"], "embedded or distributed"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path: Path, args: list[str], message: str) -> None:
    out = CliRunner().invoke(_app(), ["contribution", str(tmp_path), *args])
    assert isinstance(out.exception, ConfigError)
    assert message in str(out.exception)


def test_out_of_range_numbers_are_refused(tmp_path: Path) -> None:
    for args in (["--rounds", "0"], ["--samples", "1"], ["--seed", "-1"], ["--parallel", "0"]):
        out = CliRunner().invoke(_app(), ["contribution", str(tmp_path), *args])
        assert out.exit_code == 2 and "Invalid value" in out.output, args
