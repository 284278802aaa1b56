"""``pharmafl consortium``: set up (simulated) consortia."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

consortium_app = typer.Typer(
    help="Set up consortia: simulate one from public data for demos and rehearsals.",
    no_args_is_help=True,
)


@consortium_app.command("simulate")
def simulate(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder to create (DIR/partners/<name>/, DIR/operator/)."),
    ],
    dataset: Annotated[
        str,
        typer.Option("--dataset", "-d", help="Public dataset: fsmol, tox21, toxcast or adme."),
    ] = "fsmol",
    partners: Annotated[
        int, typer.Option("--partners", "-n", help="Number of partners (2-26).")
    ] = 3,
    max_compounds: Annotated[
        int | None,
        typer.Option("--max-compounds", "-m", help="Cap on each partner's distinct compounds."),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: same seed, same split and raw files.")
    ] = 0,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="Assay assignment for FS-Mol-shaped data: hash (seeded random) or family "
            "(whole protein families per partner).",
        ),
    ] = "hash",
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap", help="Wide data (Tox21/ADME): share of compounds at a 2nd partner."
        ),
    ] = 0.1,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="Any CSV of a supported shape instead of --dataset (FS-Mol long, wide 0/1, "
            "wide numeric with a SMILES column).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty --out folder.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Processes for writing SDF structures (default: all cores)."
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="Existing consortium key file (mode 600) to hand to the partners instead of "
            "a fresh random key, e.g. for a reproducible rehearsal.",
        ),
    ] = None,
) -> None:
    """Split a public dataset into partner folders with realistic exports, a shared key
    (partners only) and consortium parameters (partners and operator)."""
    from pharmafl.simulate import build_spec, simulate_consortium

    spec = build_spec(
        dataset=dataset,
        source=str(source) if source is not None else None,
        partners=partners,
        max_compounds=max_compounds,
        seed=seed,
        strategy=strategy,
        overlap=overlap,
    )
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("reading public data", total=spec.partners + 1)

        def step(message: str) -> None:
            bar.update(task, advance=1, description=message)

        result = simulate_consortium(
            out, spec, force=force, progress=step, workers=workers, key_file=key
        )
    table = Table(title=f"simulated consortium in {result.out_dir}")
    for col in ("partner", "shape", "config", "compounds", "measurements", "assays"):
        table.add_column(col)
    for p in result.manifest.partners:
        table.add_row(
            p.name, p.shape, p.config_file, str(p.compounds), str(p.measurements), str(p.assays)
        )
    Console().print(table)
    typer.echo(
        f"compounds at 2+ partners: {result.manifest.compounds_shared}; "
        f"operator folder (no key): {result.operator_dir}"
    )


def register(app: typer.Typer) -> None:
    """Attach the ``consortium`` group to ``app``."""
    app.add_typer(consortium_app, name="consortium")
