"""The metrics documents a trained model leaves (``models/<name>/metrics.json``).

``metrics.json`` stays with the partner: its per-task rows name each task by the partner's own
assay id, threshold and task label (``task``, ``assay_id``, ``threshold``; see
:func:`pharmafl.data.task_label`) when the prepared folder has a task catalogue. Its aggregate
numbers are what the consortium compares, so its shape is a schema
(``schemas/model_metrics.schema.json``). Torch-free: the report builder
(operator side) reads these documents where a partner shares them.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TaskTypeMetrics(_Doc):
    """Metrics of one task type on one set of rows (pharmafl.evaluation's result as JSON)."""

    task_type: Literal["classification", "regression"]
    aggregate: dict[str, float | None] = Field(
        ..., description="Mean over tasks with aggregation_weight > 0 (roc_auc, auc_pr, …)."
    )
    per_task: list[dict[str, float | int | str | None]] = Field(
        ...,
        description="One record per task: task_id, the partner's names (task, assay_id, "
        "threshold) when known, aggregation_weight, metrics, counts.",
    )


class SplitMetrics(_Doc):
    """Metrics on one fold (validation or test)."""

    folds: list[int] = Field(..., description="Fold ids of the evaluated rows.")
    n_rows: int = Field(..., ge=0)
    classification: TaskTypeMetrics | None = None
    regression: TaskTypeMetrics | None = None

    def metric(self, name: str) -> float:
        """An aggregate metric (classification first, then regression); NaN if absent."""
        for part in (self.classification, self.regression):
            if part is not None and name in part.aggregate:
                v = part.aggregate[name]
                return math.nan if v is None else float(v)
        return math.nan


def paired_task_gains(
    a: SplitMetrics,
    b: SplitMetrics,
    metric: str,
    task_type: Literal["classification", "regression"] = "classification",
    name: str = "task_id",
) -> dict[object, float]:
    """Per-task ``metric`` of ``b`` minus ``a`` on the ``task_type`` tasks both scored
    (aggregation weight > 0, finite on both sides), keyed by each row's ``name`` field
    (``task_id``, or ``task``: the partner's label, stable across preparations), in key order."""

    def scores(split: SplitMetrics) -> dict[object, float]:
        part = split.classification if task_type == "classification" else split.regression
        out: dict[object, float] = {}
        for row in part.per_task if part is not None else []:
            value, weight = row.get(metric), row.get("aggregation_weight", 1)
            scored = isinstance(weight, int | float) and weight > 0  # as the aggregate counts
            if isinstance(value, int | float) and math.isfinite(value) and scored:
                out[row.get(name)] = float(value)
        return out

    sa, sb = scores(a), scores(b)
    return {t: sb[t] - sa[t] for t in sorted(set(sa) & set(sb), key=str)}


def paired_task_deltas(
    a: SplitMetrics,
    b: SplitMetrics,
    metric: str,
    task_type: Literal["classification", "regression"] = "classification",
) -> np.ndarray:
    """:func:`paired_task_gains` by task id, as an array in task-id order: what a partner's
    standard error of a gain is computed from (the tasks themselves stay with it)."""
    gains = paired_task_gains(a, b, metric, task_type)
    return np.array(list(gains.values()), dtype=np.float64)


class EpochRecord(_Doc):
    """One line of the training history."""

    epoch: int = Field(..., ge=0, description="Completed epochs after this record.")
    step: int = Field(..., ge=0, description="Completed optimizer steps.")
    lr: float
    train_loss: float | None = Field(None, description="Mean normalized batch loss.")
    seconds: float = Field(..., ge=0, description="Wall time of the epoch's training steps.")
    validation: dict[str, float | None] | None = Field(
        None, description="Aggregate validation metrics after this epoch."
    )


class MetricsReport(_Doc):
    """``metrics.json`` of a trained model."""

    format: Literal["pharmafl.model_metrics/1"] = "pharmafl.model_metrics/1"
    model_name: str = Field(..., description="local, pooled, federated, …")
    head: str = Field("local", description="Head whose tasks were scored.")
    fold_va: int | None
    fold_te: int | None
    epochs_trained: int = Field(..., ge=0)
    best_epoch: int | None = Field(None, description="Epoch restored by early stopping.")
    validation: SplitMetrics | None = None
    test: SplitMetrics | None = None
    history: list[EpochRecord] = Field(default_factory=list)


class PooledReport(_Doc):
    """``metrics.json`` of a pooled model: one :class:`MetricsReport` per partner head."""

    format: Literal["pharmafl.pooled_metrics/1"] = "pharmafl.pooled_metrics/1"
    partners: dict[str, MetricsReport] = Field(..., description="Head name → its metrics.")
    history: list[EpochRecord] = Field(default_factory=list)


__all__ = [
    "EpochRecord",
    "MetricsReport",
    "PooledReport",
    "SplitMetrics",
    "TaskTypeMetrics",
    "paired_task_deltas",
    "paired_task_gains",
]
