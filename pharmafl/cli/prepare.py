"""``pharmafl prepare PARTNER_DIR``: run the partner preparation flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer


def prepare(
    partner_dir: Path = typer.Argument(..., help="Partner folder (partner.toml, raw exports)."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Processes; 0 = all cores."),
    chunk_size: int = typer.Option(2000, min=10, help="Molecules per parallel chunk."),
    engine: str = typer.Option(
        "processes", help="processes (local pool) or dask (Prefect DaskTaskRunner)."
    ),
    dask_address: str | None = typer.Option(
        None, help="Address of a running Dask scheduler (engine=dask); default: local cluster."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Validate, standardize, describe, fold and build tasks into PARTNER_DIR/prepared/."""
    from flows.prepare import run_prepare
    from pharmafl.common.errors import ConfigError
    from pharmafl.layout import PartnerLayout

    if engine not in ("processes", "dask"):
        raise ConfigError(f"unknown engine {engine!r}.", fix="use --engine processes or dask.")
    eng: Literal["processes", "dask"] = "dask" if engine == "dask" else "processes"
    manifest = run_prepare(
        partner_dir,
        workers=workers,
        chunk_size=chunk_size,
        engine=eng,
        dask_address=dask_address,
        show_progress=not quiet,
    )
    summary = (PartnerLayout(partner_dir).prepared / "summary.txt").read_text(encoding="utf-8")
    typer.echo(summary)
    typer.echo(json.dumps(manifest["counts"]))


def register(app: typer.Typer) -> None:
    """Attach ``prepare`` to ``app``."""
    app.command("prepare")(prepare)
