"""``pharmafl demo``: simulate, prepare, train (local, federated, pooled), report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pharmafl.cli.interrupt import interruptible
from pharmafl.cli.logs import steps_only


def demo(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output folder: new, empty or a previous demo's (replaced)."
        ),
    ] = Path("demo-out"),
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace --out even if it is not a previous demo's output."),
    ] = False,
    quick: Annotated[
        bool, typer.Option(help="Smaller consortium, fewer rounds (≤ 5 min); same code paths.")
    ] = False,
    partners: Annotated[int | None, typer.Option(min=2, help="Number of partners (6).")] = None,
    max_compounds: Annotated[int | None, typer.Option(help="Compounds per partner.")] = None,
    rounds: Annotated[int | None, typer.Option(min=1, help="Federated round budget.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the simulation and training.")] = None,
    source: Annotated[
        Path | None, typer.Option(help="Rehearse on any file of a supported shape instead.")
    ] = None,
    dp_noise_multiplier: Annotated[
        float | None,
        typer.Option(help="Differential privacy of every federated round: noise multiplier z."),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            help="Consortium key file (mode 600) instead of a fresh random key: same key and "
            "seed, same folds and tasks."
        ),
    ] = None,
) -> None:
    """Run a simulated 6-partner FS-Mol consortium end to end and write DIR/report/."""
    from pharmafl.demo import DemoConfig, run_demo

    overrides = {
        k: v
        for k, v in {
            "partners": partners,
            "max_compounds": max_compounds,
            "rounds": rounds,
            "seed": seed,
            "source": str(source) if source is not None else None,
            "key_file": str(key) if key is not None else None,
            "dp_noise_multiplier": dp_noise_multiplier,
        }.items()
        if v is not None
    }
    config = DemoConfig.quick(**overrides) if quick else DemoConfig(**overrides)
    partial = f"{out} may hold a partial demo; `pharmafl demo --out {out}` starts over"
    with interruptible(partial), steps_only():  # the demo prints its own step lines
        result = run_demo(out, config, say=typer.echo, force=force)
    typer.echo(f"summary: {result.summary_path}")
    typer.echo(f"report:  {result.report_path}")


def register(app: typer.Typer) -> None:
    """Attach ``demo`` to ``app``."""
    app.command("demo")(demo)
