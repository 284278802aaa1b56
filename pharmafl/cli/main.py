"""The ``pharmafl`` command line: thin wrappers that parse, build a config, call the library.

Each command module in :data:`COMMAND_MODULES` exposes ``register(app)``. Errors derived
from :class:`~pharmafl.common.errors.PharmaFLError` are printed as one clear message (no
traceback) and exit with status 2.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
from rich.console import Console

from pharmafl import __version__
from pharmafl.common.errors import PharmaFLError

#: Command modules under ``pharmafl.cli``, each with ``register(app: typer.Typer)``.
COMMAND_MODULES: tuple[str, ...] = (
    "schemas",
    "consortium",
    "prepare",
    "keys",
    "ledger",
    "model",
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
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """pharmafl command line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


for _name in COMMAND_MODULES:
    importlib.import_module(f"pharmafl.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    # Partner machines must not phone home (Prefect telemetry is on by default).
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        app()
    except PharmaFLError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["COMMAND_MODULES", "app", "main"]
