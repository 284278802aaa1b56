"""Evaluate every task of a sparse label matrix and aggregate over tasks.

Aggregation follows SparseChem's ``aggregate_results`` and MELLODDY's performance evaluation
(``../shared/reference/melloddy-stack.md`` §2.5, §3.5): a task counts when its
``aggregation_weight`` is positive (the evaluation quorum) and its metric is defined; the
aggregate is the ``aggregation_weight``-weighted mean over those tasks, i.e. the plain mean
for MELLODDY's 0/1 weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from pharmafl.common.errors import EvaluationError
from pharmafl.evaluation._columns import check_weights, gather_task_columns
from pharmafl.evaluation.metrics import (
    CLASSIFICATION_COUNTS,
    CLASSIFICATION_METRICS,
    REGRESSION_COUNTS,
    REGRESSION_METRICS,
    classification_task_metrics,
    regression_task_metrics,
)

TaskType = Literal["classification", "regression"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)

#: Metric whose being defined makes a task count in ``aggregate["n_tasks"]``.
PRIMARY_METRIC: dict[str, str] = {"classification": "roc_auc", "regression": "rmse"}


def metric_names(task_type: TaskType) -> tuple[str, ...]:
    """Metric columns (counts excluded) of ``task_type``'s per-task table."""
    _check_task_type(task_type)
    return CLASSIFICATION_METRICS if task_type == "classification" else REGRESSION_METRICS


def count_names(task_type: TaskType) -> tuple[str, ...]:
    """Count columns of ``task_type``'s per-task table."""
    _check_task_type(task_type)
    return CLASSIFICATION_COUNTS if task_type == "classification" else REGRESSION_COUNTS


def _check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise EvaluationError(
            f"unknown task_type {task_type!r}; valid: {', '.join(TASK_TYPES)}.",
        )


def _json_number(value: Any) -> float | int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    f = float(value)
    return None if math.isnan(f) or math.isinf(f) else f


@dataclass
class EvaluationResult:
    """Per-task metrics of one model on one set of rows, and their aggregate over tasks.

    Attributes
    ----------
    task_type : {"classification", "regression"}
    per_task : DataFrame
        One row per task (column of the label matrix): ``task_id``, ``aggregation_weight``,
        the metric columns of :func:`metric_names` (NaN where undefined) and the count
        columns of :func:`count_names` (ints).
    aggregate : dict
        Each metric's mean over tasks with ``aggregation_weight > 0`` and a defined value
        (weighted by ``aggregation_weight``), ``n_tasks`` (tasks counted, i.e. weight > 0 and
        a defined primary metric: ROC-AUC / RMSE) and ``n_tasks_total`` (all tasks).
    """

    task_type: TaskType
    per_task: pd.DataFrame
    aggregate: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``null``); :meth:`from_json` reads it back."""
        records = []
        for rec in self.per_task.to_dict(orient="records"):
            records.append({str(k): _json_number(v) for k, v in rec.items()})
        return {
            "task_type": self.task_type,
            "aggregate": {k: _json_number(v) for k, v in self.aggregate.items()},
            "per_task": records,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EvaluationResult:
        """Rebuild a result written by :meth:`to_json` (``null`` becomes NaN)."""
        try:
            task_type = doc["task_type"]
            _check_task_type(task_type)
            columns = ("task_id", "aggregation_weight", *metric_names(task_type))
            counts = count_names(task_type)
            per_task = pd.DataFrame.from_records(doc["per_task"], columns=[*columns, *counts])
            aggregate = {
                k: math.nan if v is None else float(v) for k, v in doc["aggregate"].items()
            }
        except (KeyError, TypeError) as exc:
            raise EvaluationError(
                f"not an evaluation result document (missing or malformed {exc}).",
                fix="pass the dict written by EvaluationResult.to_json().",
            ) from exc
        dtypes: dict[str, type] = {"task_id": np.int64, "aggregation_weight": np.float64}
        dtypes |= dict.fromkeys(metric_names(task_type), np.float64)
        dtypes |= dict.fromkeys(counts, np.int64)
        per_task = per_task.astype(dtypes)
        return cls(task_type=task_type, per_task=per_task, aggregate=aggregate)


def aggregate_task_metrics(per_task: pd.DataFrame, task_type: TaskType) -> dict[str, float]:
    """Aggregate a per-task table over tasks, as :attr:`EvaluationResult.aggregate`.

    Parameters
    ----------
    per_task : DataFrame
        Needs ``aggregation_weight`` and the metric columns of ``task_type``.
    task_type : {"classification", "regression"}
    """
    names = metric_names(task_type)
    weight = per_task["aggregation_weight"].to_numpy(dtype=np.float64)
    out: dict[str, float] = {}
    for name in names:
        values = per_task[name].to_numpy(dtype=np.float64)
        use = (weight > 0) & np.isfinite(values)
        total = weight[use].sum()
        out[name] = float(np.dot(weight[use], values[use]) / total) if total > 0 else math.nan
    primary = per_task[PRIMARY_METRIC[task_type]].to_numpy(dtype=np.float64)
    out["n_tasks"] = float(np.count_nonzero((weight > 0) & np.isfinite(primary)))
    out["n_tasks_total"] = float(len(per_task))
    return out


def evaluate_tasks(
    y_true: sp.spmatrix | sp.sparray,
    y_pred: npt.ArrayLike,
    task_type: TaskType,
    aggregation_weight: npt.ArrayLike | None = None,
    censor: sp.spmatrix | sp.sparray | None = None,
    rows: npt.ArrayLike | None = None,
) -> EvaluationResult:
    """Compute every task's metrics on its measured entries and aggregate them.

    Parameters
    ----------
    y_true : scipy sparse matrix, shape (n_rows, n_tasks)
        Classification: +1 active / −1 inactive; regression: measured values. Stored entries
        are measurements (explicit zeros included); absent entries are unmeasured and their
        predictions are never read.
    y_pred : ndarray, shape (n_rows, n_tasks)
        Dense probabilities (classification) or values (regression).
    task_type : {"classification", "regression"}
    aggregation_weight : ndarray, shape (n_tasks,), optional
        Tasks with weight 0 are reported per task but left out of the aggregate
        (default: all 1).
    censor : scipy sparse matrix, shape (n_rows, n_tasks), optional
        Regression only: −1 ``<``, 0 ``=``, +1 ``>`` at measured entries (absent = 0).
    rows : int indices or boolean mask, optional
        Evaluate only these rows (e.g. the test fold).

    Returns
    -------
    EvaluationResult

    Raises
    ------
    EvaluationError
        Shapes disagree, classification labels other than ±1, non-finite predictions at
        measured entries, censor given for classification.
    """
    _check_task_type(task_type)
    if censor is not None and task_type != "regression":
        raise EvaluationError("censor applies to regression tasks only.")
    cols = gather_task_columns(y_true, (y_pred,), censor=censor, rows=rows)
    n_tasks = cols.n_tasks
    weight = check_weights(aggregation_weight, n_tasks)
    pred = cols.preds[0]
    slices = [cols.task(j) for j in range(n_tasks)]

    if task_type == "classification":
        labels = cols.labels
        if labels.size and not np.isin(labels, (-1, 1)).all():
            raise EvaluationError(
                "classification y_true must store only +1 (active) and -1 (inactive).",
                fix="use cls_T10_y.npz as written by the preparation step; if stored zeros "
                "mean unmeasured, call y_true.eliminate_zeros() first.",
            )
        y01 = (labels > 0).astype(np.int8)
        rows_out = [classification_task_metrics(y01[s], pred[s]) for s in slices]
    else:
        c = cols.censor
        rows_out = [
            regression_task_metrics(cols.labels[s], pred[s], None if c is None else c[s])
            for s in slices
        ]

    names = metric_names(task_type)
    counts = count_names(task_type)
    table: dict[str, np.ndarray] = {
        "task_id": np.arange(n_tasks, dtype=np.int64),
        "aggregation_weight": weight,
    }
    for name in names:
        table[name] = np.fromiter((r[name] for r in rows_out), dtype=np.float64, count=n_tasks)
    for name in counts:
        table[name] = np.fromiter((r[name] for r in rows_out), dtype=np.int64, count=n_tasks)
    per_task = pd.DataFrame(table)
    return EvaluationResult(
        task_type=task_type,
        per_task=per_task,
        aggregate=aggregate_task_metrics(per_task, task_type),
    )


__all__ = [
    "EvaluationResult",
    "PRIMARY_METRIC",
    "TASK_TYPES",
    "TaskType",
    "aggregate_task_metrics",
    "count_names",
    "evaluate_tasks",
    "metric_names",
]
