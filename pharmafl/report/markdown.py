"""The summary's key tables as Markdown (for Prefect markdown artifacts on the operator's runs).

Only what ``summary.json`` already holds (shared aggregates), so the artifacts may reach a
shared Prefect server.
"""

from __future__ import annotations

from collections.abc import Sequence

from pharmafl.report.models import (
    REGRESSION_BENEFIT_METRICS,
    REGRESSION_BENEFIT_NAMES,
    ConsortiumSummary,
)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _f(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    aligns = ["---"] + ["---:"] * (len(headers) - 1)
    lines = [
        "| " + " | ".join(_cell(h) for h in headers) + " |",
        "| " + " | ".join(aligns) + " |",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def performance_markdown(summary: ConsortiumSummary) -> str:
    """Per-partner test ROC-AUC / AUC-PR of local, federated and pooled models, and gains."""
    rows = []
    for p in summary.partners:
        rows.append(
            [
                p.label,
                _f(p.local.roc_auc),
                _f(p.federated.roc_auc),
                _f(p.pooled.roc_auc if p.pooled else None),
                _f(p.local.auc_pr),
                _f(p.federated.auc_pr),
                _f(p.pooled.auc_pr if p.pooled else None),
                _f(p.gain("auc_pr"), 4, signed=True),
            ]
        )
    headers = [
        "partner",
        "ROC-AUC local",
        "ROC-AUC fed.",
        "ROC-AUC pooled",
        "AUC-PR local",
        "AUC-PR fed.",
        "AUC-PR pooled",
        "Δ AUC-PR",
    ]
    return _md_table(headers, rows)


def regression_markdown(summary: ConsortiumSummary) -> str:
    """Per-partner federated − local on regression tasks (R² and RMSE on measured values,
    censor-aware RMSE) with 95 % intervals over tasks; empty when no partner has scored
    regression tasks."""
    rows = []
    for p in summary.partners:
        b = p.regression_benefit
        if b is None:
            continue
        row: list[object] = [p.name, b.n_tasks]
        for key in REGRESSION_BENEFIT_METRICS:
            mb = b.metric(key)
            ci = None if mb is None else mb.mean_delta_ci95
            row += [
                _f(None if mb is None else mb.mean_delta, 4, signed=True),
                "–" if ci is None else f"{ci[0]:+.4f} … {ci[1]:+.4f}",
            ]
        rows.append(row)
    if not rows:
        return ""
    headers = ["partner", "tasks"]
    for name in REGRESSION_BENEFIT_NAMES.values():
        headers += [f"Δ {name}", "95 % CI"]
    return _md_table(headers, rows)


def contribution_markdown(summary: ConsortiumSummary) -> str:
    """Per-partner Shapley / leave-one-out values, data and participation."""
    rows = []
    for p in summary.partners:
        c = p.contribution
        rows.append(
            [
                p.name,
                _f(c.shapley if c else None, 4),
                _f(c.leave_one_out if c else None, 4),
                "–" if c is None or c.data is None else c.data.compounds,
                "–" if c is None or c.data is None else c.data.tasks,
                "–" if c is None or c.data is None else c.data.measurements,
                "–" if c is None or c.rounds is None else c.rounds.submitted,
                "–" if c is None or c.rounds is None else c.rounds.dropped_text(),
                _f(c.compute_seconds if c else None, 1),
            ]
        )
    headers = [
        "partner",
        "Shapley",
        "leave-one-out",
        "compounds",
        "tasks",
        "measurements",
        "rounds submitted",
        "rounds dropped",
        "compute (s)",
    ]
    return _md_table(headers, rows)


def summary_tables_markdown(summary: ConsortiumSummary) -> str:
    """The report's key tables as one Markdown document."""
    gap = "–" if summary.gap_capture is None else f"{100 * summary.gap_capture:.1f} %"
    lines = [
        f"# Consortium summary{f' — {summary.consortium}' if summary.consortium else ''}",
        "",
        f"Secure aggregation: **{'on' if summary.secure_aggregation else 'OFF'}** · "
        f"rounds: **{summary.rounds}** · wall time: **{summary.wall_seconds:.0f} s** · "
        f"gap captured: **{gap}**",
        "",
        "## What each partner got (test fold, mean over its tasks)",
        "",
        performance_markdown(summary),
        "",
    ]
    regression = regression_markdown(summary)
    if regression:
        lines += ["Regression tasks, federated − local-only:", "", regression, ""]
    lines += [
        "## What each partner gave",
        "",
    ]
    c = summary.contribution
    if c is not None:
        lines += [
            f"Method: {c.method}; utility: {c.utility}; v(N) = {c.grand_coalition_utility:.4f}, "
            f"v(∅) = {c.empty_coalition_utility:.4f}; {c.n_coalitions} coalitions.",
            "",
        ]
    lines.append(contribution_markdown(summary))
    if summary.ledger is not None:
        led = summary.ledger
        state = "verified" if led.verified else f"NOT verified ({led.issue})"
        lines += ["", f"**Ledger:** {led.entries} entries, {state}, head `{led.head_hash}`."]
    return "\n".join(lines) + "\n"


__all__ = ["contribution_markdown", "performance_markdown", "summary_tables_markdown"]
