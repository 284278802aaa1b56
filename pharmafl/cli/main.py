"""The ``pharmafl`` command line: thin wrappers that parse, build a config, call the library.

Each command module in :data:`COMMAND_MODULES` exposes ``register(app)``. Errors derived
from :class:`~pharmafl.common.errors.PharmaFLError` are printed as one clear message (its
traceback too with ``-v``) and exit with status 2; Ctrl-C leaves one ``interrupted`` line and
exits with status 130 (:mod:`pharmafl.cli.interrupt`). What else reaches the console is
decided by :mod:`pharmafl.cli.logs`.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer
from rich.console import Console
from rich.markup import escape

from pharmafl import __version__
from pharmafl.cli import interrupt
from pharmafl.cli.logs import configure_logging, verbose
from pharmafl.common.errors import PharmaFLError

#: Command modules under ``pharmafl.cli``, each with ``register(app: typer.Typer)``.
COMMAND_MODULES: tuple[str, ...] = (
    "schemas",
    "consortium",
    "prepare",
    "keys",
    "ledger",
    "model",
    "results",
    "partner",
    "federation",
    "contribution",
    "report",
    "demo",
)

app = typer.Typer(
    name="pharmafl",
    help="Federated drug-discovery modelling: prepare data, train a shared trunk with "
    "private heads, aggregate securely, account for every contribution.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pharmafl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbosity: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help="Show details: debug lines, HTTP requests, Prefect's run logs, an error's "
        "traceback; -vv: every library's debug lines.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """pharmafl command line."""
    configure_logging(verbosity)


for _name in COMMAND_MODULES:
    importlib.import_module(f"pharmafl.cli.{_name}").register(app)


def _report_error(exc: PharmaFLError) -> None:
    if verbose():
        traceback.print_exception(exc, file=sys.stderr)
    # escape: messages quote config tables ("[melloddy]") that rich would take for markup
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    # Partner machines must not phone home (Prefect telemetry is on by default).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    interrupt.install()
    try:
        app()
    except PharmaFLError as exc:
        _report_error(exc)
        sys.exit(2)
    except (KeyboardInterrupt, SystemExit) as exc:
        stop = interrupt.interruption(exc)
        if stop is None:
            raise
        err_console.print(interrupt.message(stop), markup=False, highlight=False, soft_wrap=True)
        sys.exit(interrupt.EXIT_INTERRUPTED)


__all__ = ["COMMAND_MODULES", "app", "main"]
