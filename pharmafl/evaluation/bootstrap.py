"""Bootstrap over compounds: how sure is "model b beats model a" on the compounds measured?

Tasks share compounds, so resampling tasks (:func:`pharmafl.evaluation.bootstrap_mean_ci`)
says which *tasks* happened to be measured; resampling compounds says which *compounds*
were. Each resample draws the measured compounds (rows) with replacement, keeps every label
of a drawn compound as often as it was drawn, scores both models on every task again and
takes the mean over tasks of b − a (tasks where a metric is undefined in a resample, e.g. no
active drawn, are left out of that resample's mean). The interval is the percentile interval
of these means (Efron & Tibshirani 1993). Paired: both models see the same resamples.

The per-task metrics here are the same formulas as :mod:`pharmafl.evaluation.metrics`
(tested against them), computed for every resample at once: a resample is a vector of
weights (how often each compound was drawn), and each task's curves are weighted cumulative
counts over one sort of its scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pharmafl.common.errors import EvaluationError
from pharmafl.evaluation._columns import gather_task_columns
from pharmafl.evaluation.metrics import censored_squared_error
from pharmafl.evaluation.tasks import TaskType

#: Metrics :func:`fast_task_metric` computes, per task type.
FAST_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "auc_pr"),
    "regression": ("r2", "rmse", "rmse_uncensored"),
}
#: Default number of compound resamples.
COMPOUND_RESAMPLES = 1000


def _weighted_classification(
    y: np.ndarray, p: np.ndarray, w: np.ndarray, metric: str
) -> np.ndarray:
    """ROC-AUC or AUC-PR with each entry counted ``w[b, i]`` times, per row ``b`` of ``w``.

    The curves of :func:`pharmafl.evaluation.metrics._binary_curves` from weighted cumulative
    counts: one sort per task for every resample. A tie group whose entries all weigh 0 only
    repeats the previous point (zero area), so this equals repeating the entries.
    """
    order = np.argsort(p, kind="mergesort")[::-1]
    score, yy, wo = p[order], y[order].astype(np.float64), w[:, order]
    idx = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tps = np.cumsum(wo * yy, axis=1)[:, idx]
    fps = np.cumsum(wo * (1.0 - yy), axis=1)[:, idx]
    pos, neg = tps[:, -1:], fps[:, -1:]
    out = np.full(w.shape[0], np.nan)
    ok = (pos[:, 0] > 0) & (neg[:, 0] > 0)
    if not ok.any():
        return out
    tps, fps, pos, neg = tps[ok], fps[ok], pos[ok], neg[ok]
    zero = np.zeros((tps.shape[0], 1))
    if metric == "roc_auc":
        out[ok] = np.trapezoid(np.hstack([zero, tps]) / pos, np.hstack([zero, fps]) / neg, axis=1)
        return out
    seen = tps + fps
    precision = np.divide(tps, seen, out=np.ones_like(tps), where=seen > 0)
    recall = tps / pos
    out[ok] = np.trapezoid(np.hstack([zero + 1.0, precision]), np.hstack([zero, recall]), axis=1)
    return out


def _weighted_regression(
    y: np.ndarray, p: np.ndarray, c: np.ndarray | None, w: np.ndarray, metric: str
) -> np.ndarray:
    """R², RMSE (censor-aware) or RMSE on uncensored values, entries weighted ``w[b, i]``."""
    if metric == "rmse":
        total = w.sum(axis=1)
        err = w @ censored_squared_error(y, p, c)
        return np.sqrt(np.divide(err, total, out=np.full(total.shape, np.nan), where=total > 0))
    unc = np.ones(y.size, dtype=bool) if c is None else c == 0
    yu, pu, wu = y[unc], p[unc], w[:, unc]
    n = wu.sum(axis=1)
    sse = wu @ ((yu - pu) ** 2)
    nan = np.full(n.shape, np.nan)
    if metric == "rmse_uncensored":
        return np.sqrt(np.divide(sse, n, out=nan, where=n > 0))
    mean = np.divide(wu @ yu, n, out=np.zeros_like(n), where=n > 0)
    ss_tot = (wu * (yu[None, :] - mean[:, None]) ** 2).sum(axis=1)
    good = (n >= 2) & (ss_tot > 1e-12 * np.maximum(n, 1))
    return 1.0 - np.divide(sse, ss_tot, out=nan.copy(), where=good)


def _weighted(
    task_type: TaskType,
    metric: str,
    y: np.ndarray,
    p: np.ndarray,
    c: np.ndarray | None,
    w: np.ndarray,
) -> np.ndarray:
    if task_type == "classification":
        return _weighted_classification(y, p, w, metric)
    return _weighted_regression(y, p, c, w, metric)


def fast_task_metric(
    task_type: TaskType,
    metric: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    censor: np.ndarray | None = None,
) -> float:
    """One metric of one task (NaN where undefined), as :mod:`pharmafl.evaluation.metrics`.

    ``y_true``: 0/1 labels (classification) or values; ``censor`` −1/0/+1 (regression).
    """
    if metric not in FAST_METRICS.get(task_type, ()):
        raise EvaluationError(
            f"unknown metric {metric!r} for {task_type}; valid: "
            f"{', '.join(FAST_METRICS.get(task_type, ()))}."
        )
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    c = None if censor is None else np.asarray(censor, dtype=np.float64)
    return float(_weighted(task_type, metric, y, p, c, np.ones((1, y.size)))[0])


@dataclass(frozen=True)
class CompoundBootstrapResult:
    """Mean over tasks of b − a on all compounds, and its percentile interval per metric.

    Attributes
    ----------
    metrics : tuple of str
    mean_delta : ndarray, shape (n_metrics,)
        On the compounds as measured (NaN when no task has the metric for both models).
    interval : list of (low, high) or None, one per metric
        None with fewer than 2 compounds or 2 tasks, or when fewer than half the resamples
        define the metric.
    n_compounds, n_tasks : int
    resamples : int
    """

    metrics: tuple[str, ...]
    mean_delta: np.ndarray
    interval: list[tuple[float, float] | None]
    n_compounds: int
    n_tasks: int
    resamples: int


@dataclass(frozen=True)
class _Task:
    pos: np.ndarray  # position of each entry's compound among the resampled compounds
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None


def _tasks(
    y: sp.spmatrix | sp.sparray,
    pred_a: npt.ArrayLike,
    pred_b: npt.ArrayLike,
    task_type: TaskType,
    use: np.ndarray,
    censor: sp.spmatrix | sp.sparray | None,
) -> tuple[list[_Task], int]:
    cols = gather_task_columns(y, (pred_a, pred_b), censor=censor)
    assert cols.rows is not None
    picked = [cols.task(int(j)) for j in np.flatnonzero(use)]
    rows = np.unique(np.concatenate([cols.rows[s] for s in picked])) if picked else np.array([])
    labels = (cols.labels > 0).astype(np.int8) if task_type == "classification" else cols.labels
    tasks = [
        _Task(
            pos=np.searchsorted(rows, cols.rows[s]),
            y=labels[s],
            a=cols.preds[0][s],
            b=cols.preds[1][s],
            c=None if cols.censor is None else cols.censor[s],
        )
        for s in picked
    ]
    return tasks, int(rows.size)


def _mean_deltas(
    tasks: list[_Task], task_type: TaskType, metrics: Sequence[str], weights: np.ndarray
) -> np.ndarray:
    """Mean over tasks of b − a, shape (n_metrics, n_resamples): entries weigh
    ``weights[b, pos]``; a task undefined in a resample is left out of that mean."""
    sums = np.zeros((len(metrics), weights.shape[0]))
    counts = np.zeros_like(sums)
    for t in tasks:
        w = weights[:, t.pos].astype(np.float64)
        for k, m in enumerate(metrics):
            d = _weighted(task_type, m, t.y, t.b, t.c, w) - _weighted(
                task_type, m, t.y, t.a, t.c, w
            )
            ok = np.isfinite(d)
            sums[k, ok] += d[ok]
            counts[k, ok] += 1
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def compound_bootstrap(
    y_true: sp.spmatrix | sp.sparray,
    pred_a: npt.ArrayLike,
    pred_b: npt.ArrayLike,
    task_type: TaskType,
    *,
    metrics: Sequence[str] | None = None,
    use: npt.ArrayLike | None = None,
    censor: sp.spmatrix | sp.sparray | None = None,
    resamples: int = COMPOUND_RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> CompoundBootstrapResult:
    """Mean over tasks of b − a, with a percentile-bootstrap interval over compounds.

    Parameters
    ----------
    y_true : scipy sparse matrix, shape (n_rows, n_tasks)
        Classification ±1 labels or regression values; stored entries are measurements.
    pred_a, pred_b : ndarray, shape (n_rows, n_tasks)
        Baseline (a) and compared (b) predictions.
    task_type : {"classification", "regression"}
    metrics : sequence of str, optional
        Default :data:`FAST_METRICS` of ``task_type``.
    use : bool array, shape (n_tasks,), optional
        Tasks to score (default: all). Only compounds measured on them are resampled.
    censor : scipy sparse matrix, optional
        Regression censor flags.
    resamples : int
        Bootstrap resamples (fixed ``seed``: the same inputs give the same interval).
    level : float
        Interval coverage, in (0, 1).
    """
    names = tuple(FAST_METRICS[task_type] if metrics is None else metrics)
    if not 0.0 < level < 1.0 or resamples < 1:
        raise EvaluationError(f"need 0 < level < 1 and resamples ≥ 1 (got {level}, {resamples}).")
    n_tasks = y_true.shape[1]
    mask = np.ones(n_tasks, dtype=bool) if use is None else np.asarray(use, dtype=bool)
    tasks, n_comp = _tasks(y_true, pred_a, pred_b, task_type, mask, censor)
    full = _mean_deltas(tasks, task_type, names, np.ones((1, n_comp)))[:, 0]
    if n_comp < 2 or len(tasks) < 2:
        return CompoundBootstrapResult(names, full, [None] * len(names), n_comp, len(tasks), 0)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_comp, size=(resamples, n_comp))
    offsets = (np.arange(resamples) * n_comp)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=resamples * n_comp)
    counts = counts.reshape(resamples, n_comp)
    boot = _mean_deltas(tasks, task_type, names, counts)
    tail = (1.0 - level) / 2.0
    interval: list[tuple[float, float] | None] = []
    for k in range(len(names)):
        ok = boot[k][np.isfinite(boot[k])]
        if ok.size < resamples / 2:
            interval.append(None)
            continue
        lo, hi = np.quantile(ok, [tail, 1.0 - tail])
        interval.append((float(lo), float(hi)))
    return CompoundBootstrapResult(names, full, interval, n_comp, len(tasks), resamples)


__all__ = [
    "COMPOUND_RESAMPLES",
    "CompoundBootstrapResult",
    "FAST_METRICS",
    "compound_bootstrap",
    "fast_task_metric",
]
