"""``pharmafl contribution``: the operator's contribution study (Shapley / leave-one-out)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: Command-line method names → StudyConfig.method.
METHODS = {
    "auto": "auto",
    "exact": "exact",
    "permutation": "permutation",
    "loo": "leave_one_out",
}


def contribution(
    consortium_dir: Annotated[
        Path, typer.Argument(help="Consortium folder (operator/, partners/), set up for training.")
    ],
    rounds: Annotated[
        int, typer.Option(min=1, help="Federated rounds per coalition (same for every one).")
    ] = 2,
    method: Annotated[
        str,
        typer.Option(
            help="auto (exact Shapley up to 6 partners, else permutation sampling), exact, "
            "permutation, or loo (leave-one-out only)."
        ),
    ] = "auto",
    samples: Annotated[
        int, typer.Option(min=2, help="Orderings to sample (permutation method).")
    ] = 64,
    seed: Annotated[int, typer.Option(min=0, help="Seed of permutation sampling.")] = 0,
    local_epochs: Annotated[
        float | None, typer.Option(help="Local epochs per round (default: the main plan's).")
    ] = None,
    exchange: Annotated[
        str | None, typer.Option(help="Exchange store URL (default: CONSORTIUM_DIR/exchange).")
    ] = None,
    launcher: Annotated[
        str, typer.Option(help="embedded (all partners here) or distributed (Prefect workers).")
    ] = "embedded",
    parallel: Annotated[
        int,
        typer.Option(
            min=1, max=8, help="Coalitions trained at the same time (exact and loo methods)."
        ),
    ] = 1,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep-runs",
            help="Keep every coalition's envelopes and trunks (default: pruned once its "
            "utility is recorded; the ledger keeps their hashes).",
        ),
    ] = False,
) -> None:
    """Train every coalition the estimator needs (securely aggregated, each member reporting
    one scalar gain on its own tasks) and write operator/contribution.json. Resumable: run it
    again after an interruption; recorded coalitions are never retrained."""
    from rich.console import Console
    from rich.table import Table

    from flows.contribution import run_contribution_study
    from pharmafl.accounting import StudyConfig
    from pharmafl.accounting.study import CONTRIBUTION_FILE
    from pharmafl.common.errors import ConfigError

    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}.", fix=f"use one of: {', '.join(METHODS)}.")
    if launcher not in ("embedded", "distributed"):
        raise ConfigError(f"unknown launcher {launcher!r}.", fix="embedded or distributed.")
    study = StudyConfig.model_validate(
        {
            "rounds": rounds,
            "method": METHODS[method],
            "samples": samples,
            "seed": seed,
            "local_epochs": local_epochs,
            "prune": not keep,
            "parallel": parallel,
        }
    )
    console = Console(highlight=False)
    with console.status("training coalitions (see the log for each one)…"):
        result = run_contribution_study(
            consortium_dir,
            study,
            exchange_url=exchange,
            launcher="distributed" if launcher == "distributed" else "embedded",
        )
    table = Table(title=f"contributions ({result.method}, {result.n_coalitions} coalitions)")
    table.add_column("partner")
    table.add_column("Shapley", justify="right")
    table.add_column("leave-one-out", justify="right")
    for p in result.players:
        phi = "n/a" if result.shapley is None else f"{result.shapley[p]:+.4f}"
        if result.shapley_ci is not None:
            lo, hi = result.shapley_ci[p]
            phi += f" [{lo:+.4f}, {hi:+.4f}]"
        table.add_row(p, phi, f"{result.leave_one_out[p]:+.4f}")
    console.print(table)
    console.print(
        f"v(N) = {result.grand_coalition_utility:+.4f}, v(∅) = "
        f"{result.empty_coalition_utility:+.4f}; written to "
        f"{Path(consortium_dir) / 'operator' / CONTRIBUTION_FILE}"
    )


def register(app: typer.Typer) -> None:
    """Attach ``contribution`` to ``app``."""
    app.command("contribution")(contribution)
