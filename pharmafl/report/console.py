"""The per-partner table printed on the console (``pharmafl report``, ``pharmafl demo``)."""

from __future__ import annotations

import math

from pharmafl.report.models import REGRESSION_BENEFIT_NAMES, ConsortiumSummary, PartnerSummary

_HEAD = (
    f"{'partner':<10} {'local ROC':>9} {'fed ROC':>8} {'pool ROC':>8} "
    f"{'local PR':>9} {'fed PR':>7} {'pool PR':>8} {'Δ PR':>7} {'Δ PR 95% CI':>17} "
    f"{'Shapley':>8} {'LOO':>8}"
)


def _score(x: float | None) -> str:
    return "   n/a" if x is None or math.isnan(x) else f"{x:.4f}"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.4f}"


def _interval(ci: tuple[float, float] | None) -> str:
    return "n/a" if ci is None else f"{ci[0]:+.4f}…{ci[1]:+.4f}"


def _gain_ci(p: PartnerSummary) -> str:
    """The task-bootstrap 95 % interval of the partner's mean AUC-PR gain."""
    pr = None if p.benefit is None else p.benefit.metric("auc_pr")
    return _interval(None if pr is None else pr.mean_delta_ci95)


def _row(p: PartnerSummary) -> str:
    pooled, c = p.pooled, p.contribution
    name = p.name + ("*" if p.auxiliary else "")
    return (
        f"{name:<10} {_score(p.local.roc_auc):>9} {_score(p.federated.roc_auc):>8} "
        f"{_score(pooled.roc_auc if pooled else None):>8} {_score(p.local.auc_pr):>9} "
        f"{_score(p.federated.auc_pr):>7} {_score(pooled.auc_pr if pooled else None):>8} "
        f"{p.federated.auc_pr - p.local.auc_pr:>+7.4f} {_gain_ci(p):>17} "
        f"{_signed(c.shapley if c else None):>8} {_signed(c.leave_one_out if c else None):>8}"
    )


def _best_local_lines(summary: ConsortiumSummary) -> list[str]:
    """Federated against each partner's best local reference (chosen on validation), where
    the partner trained more than the network (`pharmafl baseline --model rf|gbm`)."""
    lines = []
    for p in summary.partners:
        b = p.best_local
        if b is None or set(b.candidates) == {"local"}:
            continue
        pr = None if b.benefit is None else b.benefit.metric("auc_pr")
        ci = _interval(None if pr is None else pr.mean_delta_ci95)
        lines.append(
            f"{p.name}: best local reference {b.model} (of {', '.join(sorted(b.candidates))}, "
            f"by {b.selected_by}): test PR {_score(b.scores.auc_pr)}, federated − best "
            f"{p.federated.auc_pr - b.scores.auc_pr:+.4f} (95% CI {ci})"
        )
    return lines


def _regression_lines(summary: ConsortiumSummary) -> list[str]:
    """Federated − local on each partner's regression tasks: R², RMSE on measured values and
    censor-aware RMSE, with 95 % bootstrap intervals over its tasks, and what they count."""
    lines = []
    for p in summary.partners:
        b = p.regression_benefit
        if b is None or b.n_tasks == 0:  # nothing to say about tasks it does not have
            continue
        tasks = f"{b.n_tasks} task" + ("" if b.n_tasks == 1 else "s")
        parts = []
        for key, name in REGRESSION_BENEFIT_NAMES.items():
            mb = b.metric(key)
            parts.append(
                f"{name} {_signed(None if mb is None else mb.mean_delta)} "
                f"(95% CI {_interval(None if mb is None else mb.mean_delta_ci95)})"
            )
        lines.append(f"{p.name}: regression ({tasks}) federated − local " + ", ".join(parts))
    if lines:
        lines.append(
            "R² and RMSE measured: measured (=) values; RMSE censor-aware also counts a "
            "censored (<, >) value predicted on its wrong side; RMSE: lower is better"
        )
    return lines


def partner_table(summary: ConsortiumSummary) -> str:
    """Per-partner local / federated / pooled scores, AUC-PR gain with its interval, Shapley
    and leave-one-out values, then one line on the run and one on the contribution study."""
    lines = [_HEAD, "-" * len(_HEAD), *(_row(p) for p in summary.partners)]
    gap = summary.gap_capture
    lines.append(
        f"rounds {summary.rounds}, secure aggregation {summary.secure_aggregation}, "
        f"gap capture {'n/a' if gap is None else f'{gap:.0%}'}, "
        f"CI: 95 % bootstrap over the partner's tasks, "
        f"wall {summary.wall_seconds:.0f} s"
    )
    if any(p.auxiliary for p in summary.partners):
        lines.append(
            "* auxiliary public partner: it trains the shared trunk; its heads are nobody's "
            "benefit (left out of the gap capture)"
        )
    lines.extend(_best_local_lines(summary))
    lines.extend(_regression_lines(summary))
    lines.extend(_contribution_lines(summary))
    return "\n".join(lines)


def _contribution_lines(summary: ConsortiumSummary) -> list[str]:
    """The study's v(N) with its interval beside the main run's gain measured the same way,
    then each player's (valuation group's, or partner's) Shapley value with its interval."""
    c = summary.contribution
    if c is None:
        return []
    main = summary.main_run_utility()
    ci = "" if c.grand_coalition_ci is None else f" (95% CI {_interval(c.grand_coalition_ci)})"
    lines = [
        f"contribution ({c.method} Shapley over {c.n_coalitions} coalitions): "
        f"v(N) = {c.grand_coalition_utility:+.4f}{ci} (mean AUC-PR gain over local-only), "
        f"v(∅) = {c.empty_coalition_utility:+.4f}"
        + ("" if main is None else f"; the main run, measured the same way: {main:+.4f}")
    ]
    seen: set[str] = set()
    for p in summary.partners:
        pc = p.contribution
        player = None if pc is None else (pc.group or p.name)
        if pc is None or pc.shapley is None or player is None or player in seen:
            continue
        seen.add(player)
        kind = "group" if pc.group else "partner"
        lines.append(
            f"  {kind} {player}: Shapley {pc.shapley:+.4f} (95% CI {_interval(pc.shapley_ci)})"
        )
    return lines


__all__ = ["partner_table"]
