"""The contribution study's result, rendered once for every output that shows it.

- :func:`contribution_rows` — one row per partner (Shapley value, its interval when sampled,
  leave-one-out value): the console table of ``pharmafl contribution`` and the study flow's
  Prefect table artifact;
- :func:`contribution_study_markdown` — method, v(N), v(∅), coalitions and the efficiency
  check as Markdown: the study flow's summary artifact.

Only the values the ledger already holds (utilities and the values computed from them).
"""

from __future__ import annotations

import math

from pharmafl.accounting import ContributionResult, StudyConfig


def contribution_rows(result: ContributionResult) -> list[dict[str, str | float | None]]:
    """One row per player (valuation group), in the result's (sorted) order.

    Returns
    -------
    list of dict
        ``group`` (``partner`` for a study over single partners); ``shapley`` (rounded to
        6 decimals; None for a leave-one-out-only study); ``shapley interval``
        (``"[lo, hi]"``, when the study has intervals);
        ``leave-one-out`` (rounded to 6 decimals).
    """
    rows: list[dict[str, str | float | None]] = []
    for p in result.players:
        row: dict[str, str | float | None] = {"group" if result.groups else "partner": p}
        row["shapley"] = None if result.shapley is None else round(result.shapley[p], 6)
        if result.shapley_ci is not None:
            lo, hi = result.shapley_ci[p]
            row["shapley interval"] = f"[{lo:.4f}, {hi:.4f}]"
        row["leave-one-out"] = round(result.leave_one_out[p], 6)
        rows.append(row)
    return rows


def contribution_study_markdown(
    result: ContributionResult, study: StudyConfig | None = None
) -> str:
    """The study's summary as Markdown: utility, method, v(N), v(∅), coalitions evaluated,
    rounds per coalition (with ``study``), Σ Shapley (= v(N) − v(∅)), orderings sampled."""
    lines = [
        "# pharmafl contribution study",
        "",
        f"Utility v(S): {result.utility}.",
        "",
        "| | |",
        "|---|---|",
        f"| method | {result.method} |",
        f"| v(N) (grand coalition) | {result.grand_coalition_utility:.6f}"
        + (
            ""
            if result.grand_coalition_ci is None
            else " [{:.4f}, {:.4f}]".format(*result.grand_coalition_ci)
        )
        + " |",
        f"| v(∅) | {result.empty_coalition_utility:.6f} |",
        f"| coalitions evaluated | {result.n_coalitions} |",
    ]
    if study is not None:
        rounds = "the main run's budget" if study.rounds is None else study.rounds
        lines.append(f"| rounds per coalition | {rounds} |")
    if result.shapley is not None:
        total = math.fsum(result.shapley.values())
        lines.append(f"| Σ Shapley (= v(N) − v(∅)) | {total:.6f} |")
    if result.n_permutations is not None:
        lines.append(f"| orderings sampled | {result.n_permutations} |")
    return "\n".join(lines)


__all__ = ["contribution_rows", "contribution_study_markdown"]
