"""``pharmafl prepare PARTNER_DIR``: run the partner preparation flow."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import typer

from pharmafl.cli.interrupt import interruptible
from pharmafl.layout import MANIFEST_FILE, PartnerLayout


def _interrupted_note(prepared: Path) -> Callable[[], str]:
    """What a Ctrl-C left in ``prepared/``: the folder is swapped in whole or not at all."""

    def stamp() -> tuple[int, int] | None:
        manifest = prepared / MANIFEST_FILE
        return (manifest.stat().st_ino, manifest.stat().st_mtime_ns) if manifest.is_file() else None

    before = stamp()
    return lambda: (
        f"nothing written to {prepared}"
        if stamp() == before
        else f"the preparation had just finished: {prepared} is complete"
    )


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
    cache: bool = typer.Option(
        True,
        "--cache/--no-cache",
        help="Reuse each unchanged structure's standardization, descriptors and fold from "
        "earlier runs (PARTNER_DIR/cache/prepare/, invalid once the parameters, key or "
        "versions change); --no-cache describes every structure and leaves the cache alone.",
    ),
) -> None:
    """Validate, standardize, describe, fold and build tasks into PARTNER_DIR/prepared/."""
    from flows.prepare import run_prepare
    from pharmafl.common.errors import ConfigError

    if engine not in ("processes", "dask"):
        raise ConfigError(f"unknown engine {engine!r}.", fix="use --engine processes or dask.")
    eng: Literal["processes", "dask"] = "dask" if engine == "dask" else "processes"
    prepared = PartnerLayout(partner_dir).prepared
    with interruptible(_interrupted_note(prepared)):
        manifest = run_prepare(
            partner_dir,
            workers=workers,
            chunk_size=chunk_size,
            engine=eng,
            dask_address=dask_address,
            show_progress=not quiet,
            cache=cache,
        )
    summary = (prepared / "summary.txt").read_text(encoding="utf-8")
    typer.echo(summary)
    typer.echo(json.dumps(manifest["counts"]))


def register(app: typer.Typer) -> None:
    """Attach ``prepare`` to ``app``."""
    app.command("prepare")(prepare)
