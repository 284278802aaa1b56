"""What a partner gained: per-task deltas, relative deltas, ECDF differences, a shareable summary.

Definitions follow MELLODDY's ``performance_evaluation`` (``relative_deltas.py``; reference notes
``../shared/reference/melloddy-stack.md`` §3.5) and the MELLODDY paper's RIPtoP, "relative
improvement proportional to perfection" (Heyndrickx et al., J. Chem. Inf. Model. 2024,
64(7), 2331–2344, doi:10.1021/acs.jcim.3c00799):

- ``delta`` = b − a (b: compared / federated, a: baseline / local-only);
- ``relative_improve`` = (b − a) / a; when a = 0, the absolute delta;
- ``improve_to_perfect`` (RIPtoP) = (b − a) / (perfect − a); 0 when both are perfect, the
  absolute delta when only a is perfect. Positive means better for every metric, including
  lower-is-better ones (RMSE, log-loss, Brier, ECE: perfect = 0).
- R² enters the relative deltas as the achieved fraction of its clipped range,
  ``(clip(R², −1, 1) + 1) / 2`` (perfect 1), as in MELLODDY; its ``delta`` stays raw.

Task-level tables stay with the partner; :class:`BenefitSummary` holds aggregates only.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import EvaluationError
from pharmafl.evaluation.significance import SignificanceResult
from pharmafl.evaluation.tasks import TaskType

#: Perfect value of every metric that deltas can be taken of.
PERFECT_VALUE: dict[str, float] = {
    "roc_auc": 1.0,
    "auc_pr": 1.0,
    "auc_pr_cal": 1.0,
    "avg_prec": 1.0,
    "f1_max": 1.0,
    "kappa": 1.0,
    "logloss": 0.0,
    "brier": 0.0,
    "ece": 0.0,
    "rmse": 0.0,
    "rmse_uncensored": 0.0,
    "r2": 1.0,
    "pearson_r": 1.0,
}
#: Metrics mapped to the achieved fraction of their clipped [-1, 1] range before relative deltas.
RANGE_TRANSFORMED: frozenset[str] = frozenset({"r2"})
#: Default benefit metrics per task type (issue 6: ROC-AUC, AUC-PR, calibrated AUC-PR; R², RMSE).
DEFAULT_BENEFIT_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "auc_pr", "auc_pr_cal"),
    "regression": ("r2", "rmse"),
}


def _check_metrics(metrics: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    out = tuple(metrics)
    unknown = [m for m in out if m not in PERFECT_VALUE]
    if unknown or not out:
        raise EvaluationError(
            f"unknown benefit metric(s) {unknown}; valid: {', '.join(sorted(PERFECT_VALUE))}."
        )
    return out


def relative_improve(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``(b − a) / a`` per task; the absolute delta where ``a == 0`` (MELLODDY convention)."""
    a, b = _scale(a, metric), _scale(b, metric)
    delta = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = delta / a
    return np.asarray(np.where(a == 0, delta, rel), dtype=np.float64)


def improve_to_perfect(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """RIPtoP ``(b − a) / (perfect − a)`` per task, MELLODDY's conventions at ``a == perfect``."""
    perfect = PERFECT_VALUE[metric]
    a, b = _scale(a, metric), _scale(b, metric)
    delta = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        ritp = delta / (perfect - a)
    base_perfect = a == perfect
    # Both perfect: 0 (= delta). Only the baseline perfect: the absolute delta.
    return np.asarray(np.where(base_perfect, delta, ritp), dtype=np.float64)


def _scale(values: np.ndarray, metric: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if metric in RANGE_TRANSFORMED:
        return np.asarray((np.clip(v, -1.0, 1.0) + 1.0) / 2.0)
    return v


def delta_metrics(
    per_task_a: pd.DataFrame,
    per_task_b: pd.DataFrame,
    metrics: tuple[str, ...] | list[str] = ("roc_auc", "auc_pr", "auc_pr_cal"),
) -> pd.DataFrame:
    """Per-task deltas of model b against baseline a.

    Parameters
    ----------
    per_task_a, per_task_b : DataFrame
        Per-task tables (``EvaluationResult.per_task``) of the baseline (e.g. local-only) and
        the compared model (e.g. federated) on the same tasks and rows; matched on ``task_id``.
    metrics : sequence of str
        Keys of :data:`PERFECT_VALUE`.

    Returns
    -------
    DataFrame
        ``task_id`` (and ``aggregation_weight`` when ``per_task_a`` has it), then per metric
        ``{m}_a``, ``{m}_b``, ``{m}_delta``, ``{m}_relative_improve``,
        ``{m}_improve_to_perfect``. NaN where either side is NaN.

    Raises
    ------
    EvaluationError
        Unknown metric, a metric column missing, or the two tables hold different tasks.
    """
    names = _check_metrics(metrics)
    for label, table in (("per_task_a", per_task_a), ("per_task_b", per_task_b)):
        missing = [c for c in ("task_id", *names) if c not in table.columns]
        if missing:
            raise EvaluationError(f"{label} lacks column(s) {missing}.")
        if table["task_id"].duplicated().any():
            raise EvaluationError(f"{label} lists a task_id more than once.")
    ids_a = set(per_task_a["task_id"].tolist())
    ids_b = set(per_task_b["task_id"].tolist())
    if ids_a != ids_b:
        raise EvaluationError(
            f"the tables hold different tasks ({len(ids_a - ids_b)} only in a, "
            f"{len(ids_b - ids_a)} only in b).",
            fix="evaluate both models on the same label matrix and tasks.",
        )
    keep_a = ["task_id", *names]
    if "aggregation_weight" in per_task_a.columns:
        keep_a.insert(1, "aggregation_weight")
    merged = (
        per_task_a[keep_a]
        .merge(per_task_b[["task_id", *names]], on="task_id", suffixes=("_a", "_b"))
        .sort_values("task_id", kind="stable")
        .reset_index(drop=True)
    )
    out: dict[str, pd.Series | np.ndarray] = {"task_id": merged["task_id"]}
    if "aggregation_weight" in merged.columns:
        out["aggregation_weight"] = merged["aggregation_weight"]
    for m in names:
        a = merged[f"{m}_a"].to_numpy(dtype=np.float64)
        b = merged[f"{m}_b"].to_numpy(dtype=np.float64)
        out[f"{m}_a"] = a
        out[f"{m}_b"] = b
        out[f"{m}_delta"] = b - a
        out[f"{m}_relative_improve"] = relative_improve(a, b, m)
        out[f"{m}_improve_to_perfect"] = improve_to_perfect(a, b, m)
    return pd.DataFrame(out)


def ecdf(values: npt.ArrayLike, grid: npt.ArrayLike) -> np.ndarray:
    """Empirical CDF of ``values`` (NaN dropped) at each point of ``grid``: share ≤ point."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[~np.isnan(v)])
    g = np.asarray(grid, dtype=np.float64).ravel()
    if v.size == 0:
        return np.full(g.shape, math.nan)
    return np.searchsorted(v, g, side="right") / v.size


def ecdf_difference(
    values_a: npt.ArrayLike,
    values_b: npt.ArrayLike,
    grid: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Difference of the per-task metric distributions of models b and a, as ECDFs.

    MELLODDY reports ``CDF_MP − CDF_SP`` on 100 points (§3.5). For a higher-is-better metric a
    negative difference at ``x`` means fewer of b's tasks score ≤ x: b's distribution lies to
    the right.

    Parameters
    ----------
    values_a, values_b : array
        Per-task values of one metric for models a and b (NaN dropped; lengths may differ).
    grid : array, optional
        Points to evaluate at (default: 101 points on [0, 1]; use e.g.
        ``np.linspace(-1, 1, 100)`` for deltas).

    Returns
    -------
    DataFrame
        ``value``, ``ecdf_a``, ``ecdf_b``, ``difference`` (= ``ecdf_b − ecdf_a``).
    """
    g = np.linspace(0.0, 1.0, 101) if grid is None else np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or not np.all(np.isfinite(g)):
        raise EvaluationError("grid must be a 1-D array of finite values.")
    fa = ecdf(values_a, g)
    fb = ecdf(values_b, g)
    return pd.DataFrame({"value": g, "ecdf_a": fa, "ecdf_b": fb, "difference": fb - fa})


BOOTSTRAP_RESAMPLES = 2000


def bootstrap_mean_ci(
    deltas: np.ndarray, *, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of per-task deltas (Efron & Tibshirani 1993).

    Tasks are resampled with replacement ``resamples`` times (a fixed seed: the same deltas give
    the same interval); None for fewer than 2 finite deltas.
    """
    d = np.asarray(deltas, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return None
    if not 0.0 < level < 1.0:
        raise EvaluationError(f"level must be in (0, 1), got {level}.")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricBenefit(_Frozen):
    """Aggregated benefit on one metric over a partner's evaluated tasks."""

    metric: str = Field(description="Metric key (see pharmafl.evaluation.PERFECT_VALUE).")
    n_tasks: int = Field(ge=0, description="Tasks where both models have the metric defined.")
    mean_a: float | None = Field(description="Mean over tasks of the baseline model (a).")
    mean_b: float | None = Field(description="Mean over tasks of the compared model (b).")
    mean_delta: float | None = Field(description="Mean of per-task b − a.")
    median_delta: float | None = Field(description="Median of per-task b − a.")
    mean_relative_improve: float | None = Field(description="Mean of per-task (b − a) / a.")
    mean_improve_to_perfect: float | None = Field(
        description="Mean per-task RIPtoP, (b − a) / (perfect − a); positive = better."
    )
    share_tasks_better: float | None = Field(
        ge=0.0, le=1.0, description="Share of tasks where b is better than a (any amount)."
    )
    mean_delta_ci95: tuple[float, float] | None = Field(
        None,
        description="95 % percentile-bootstrap interval of mean_delta over tasks "
        f"({BOOTSTRAP_RESAMPLES} paired resamples of the tasks, fixed seed). It covers which "
        "tasks were measured, not training-seed variance; None below 2 tasks.",
    )


class SignificanceSummary(_Frozen):
    """Share of tasks whose ROC-AUC changed significantly (paired DeLong test, BY-corrected)."""

    test: Literal["delong"] = Field("delong", description="Paired ROC-AUC test.")
    correction: Literal["benjamini-yekutieli"] = Field(
        "benjamini-yekutieli", description="Multiple-testing correction across tasks."
    )
    alpha: float = Field(gt=0.0, lt=1.0, description="False-discovery rate.")
    n_tasks_tested: int = Field(ge=0, description="Tasks with ≥ 2 positives and ≥ 2 negatives.")
    share_improved: float | None = Field(
        ge=0.0, le=1.0, description="Share of tested tasks significantly better under b."
    )
    share_worsened: float | None = Field(
        ge=0.0, le=1.0, description="Share of tested tasks significantly worse under b."
    )


class BenefitSummary(_Frozen):
    """What one partner gained from model b over baseline a, aggregated over its own tasks.

    The only benefit document a partner may share; it holds no task-level value.
    """

    task_type: Literal["classification", "regression"]
    baseline: str = Field("local", description="Name of model a (e.g. 'local').")
    compared: str = Field("federated", description="Name of model b (e.g. 'federated').")
    n_tasks: int = Field(ge=0, description="Tasks evaluated (aggregation weight > 0).")
    metrics: list[MetricBenefit]
    significance: SignificanceSummary | None = None

    def metric(self, name: str) -> MetricBenefit | None:
        """The entry for metric ``name``, or None when it was not aggregated."""
        return next((m for m in self.metrics if m.metric == name), None)


def _finite_or_none(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _mean(x: np.ndarray) -> float | None:
    return _finite_or_none(float(np.mean(x))) if x.size else None


def benefit_summary(
    per_task_a: pd.DataFrame,
    per_task_b: pd.DataFrame,
    task_type: TaskType,
    *,
    metrics: tuple[str, ...] | list[str] | None = None,
    significance: SignificanceResult | None = None,
    baseline: str = "local",
    compared: str = "federated",
) -> BenefitSummary:
    """Aggregate per-task deltas of b against a into a shareable :class:`BenefitSummary`.

    Tasks with ``aggregation_weight`` 0 (when the column exists) are left out; means are plain
    means over the remaining tasks where both values are defined, as MELLODDY's global deltas.

    Parameters
    ----------
    per_task_a, per_task_b : DataFrame
        ``EvaluationResult.per_task`` of the baseline and the compared model.
    task_type : {"classification", "regression"}
    metrics : sequence of str, optional
        Default :data:`DEFAULT_BENEFIT_METRICS` of ``task_type``.
    significance : SignificanceResult, optional
        From :func:`~pharmafl.evaluation.significant_improvement_share` (classification).
    baseline, compared : str
        Names of the two models, recorded in the summary.
    """
    if task_type not in DEFAULT_BENEFIT_METRICS:
        raise EvaluationError(
            f"unknown task_type {task_type!r}; valid: {', '.join(DEFAULT_BENEFIT_METRICS)}."
        )
    names = _check_metrics(DEFAULT_BENEFIT_METRICS[task_type] if metrics is None else metrics)
    deltas = delta_metrics(per_task_a, per_task_b, names)
    if "aggregation_weight" in deltas.columns:
        deltas = deltas[deltas["aggregation_weight"].to_numpy(dtype=np.float64) > 0]
    entries = []
    for m in names:
        a = deltas[f"{m}_a"].to_numpy()
        b = deltas[f"{m}_b"].to_numpy()
        ok = np.isfinite(a) & np.isfinite(b)
        d = (b - a)[ok]
        better = d > 0 if PERFECT_VALUE[m] >= 1.0 else d < 0
        entries.append(
            MetricBenefit(
                metric=m,
                n_tasks=int(ok.sum()),
                mean_a=_mean(a[ok]),
                mean_b=_mean(b[ok]),
                mean_delta=_mean(d),
                median_delta=_finite_or_none(float(np.median(d))) if d.size else None,
                mean_relative_improve=_mean(deltas[f"{m}_relative_improve"].to_numpy()[ok]),
                mean_improve_to_perfect=_mean(deltas[f"{m}_improve_to_perfect"].to_numpy()[ok]),
                share_tasks_better=_mean(better.astype(np.float64)),
                mean_delta_ci95=bootstrap_mean_ci(d),
            )
        )
    sig = None
    if significance is not None:
        sig = SignificanceSummary(
            alpha=significance.alpha,
            n_tasks_tested=significance.n_tasks_tested,
            share_improved=_finite_or_none(significance.share_improved),
            share_worsened=_finite_or_none(significance.share_worsened),
        )
    return BenefitSummary(
        task_type=task_type,
        baseline=baseline,
        compared=compared,
        n_tasks=len(deltas),
        metrics=entries,
        significance=sig,
    )


__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "BenefitSummary",
    "DEFAULT_BENEFIT_METRICS",
    "MetricBenefit",
    "PERFECT_VALUE",
    "RANGE_TRANSFORMED",
    "SignificanceSummary",
    "benefit_summary",
    "bootstrap_mean_ci",
    "delta_metrics",
    "ecdf",
    "ecdf_difference",
    "improve_to_perfect",
    "relative_improve",
]
