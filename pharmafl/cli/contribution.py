"""``pharmafl contribution``: the operator's contribution study (Shapley / leave-one-out)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.table import Table

    from pharmafl.accounting import ContributionResult

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
        int | None,
        typer.Option(
            min=1,
            help="Federated rounds per coalition, a fixed budget (default: the main plan's "
            "budget and patience, so v(N) measures what the main run measured).",
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="auto (exact Shapley up to 6 valuation groups, else permutation sampling), "
            "exact, "
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
    """Value the consortium's valuation groups (signed in the roster's policy): train every
    coalition of groups the estimator needs (securely aggregated, each member reporting one
    scalar gain on its own tasks) and write operator/contribution.json. Resumable: run it
    again after an interruption; recorded coalitions are never retrained."""
    from rich.console import Console

    from flows.contribution import run_contribution_study
    from pharmafl.accounting import StudyConfig
    from pharmafl.common.errors import ConfigError
    from pharmafl.layout import ConsortiumLayout

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
    console.print(_table(result))
    console.print(
        f"v(N) = {result.grand_coalition_utility:+.4f}, v(∅) = "
        f"{result.empty_coalition_utility:+.4f}; written to "
        f"{ConsortiumLayout(consortium_dir).operator.contribution}"
    )


def _cell(value: str | float | None) -> str:
    if value is None:
        return "n/a"
    return value if isinstance(value, str) else f"{value:+.4f}"


def _table(result: ContributionResult) -> Table:
    """The per-partner values (:func:`pharmafl.report.contribution_rows`) as a rich table."""
    from rich.table import Table

    from pharmafl.report import contribution_rows

    rows = contribution_rows(result)
    table = Table(title=f"contributions ({result.method}, {result.n_coalitions} coalitions)")
    for i, key in enumerate(rows[0]):
        table.add_column(key, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    return table


def register(app: typer.Typer) -> None:
    """Attach ``contribution`` to ``app``."""
    app.command("contribution")(contribution)
