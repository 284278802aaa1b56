"""Per-task gains paired from two metrics documents (a partner's standard error of a gain)."""

from __future__ import annotations

import numpy as np
import pytest

from pharmafl.evaluation import (
    SplitMetrics,
    TaskTypeMetrics,
    paired_task_deltas,
    paired_task_gains,
)


def _split(
    scores: dict[int, float | None], weights: dict[int, float] | None = None
) -> SplitMetrics:
    rows = [
        {"task_id": t, "auc_pr": v, "aggregation_weight": (weights or {}).get(t, 1)}
        for t, v in scores.items()
    ]
    part = TaskTypeMetrics(task_type="classification", aggregate={"auc_pr": 0.5}, per_task=rows)
    return SplitMetrics(folds=[0], n_rows=10, classification=part)


def test_pairs_by_task_id_and_counts_only_scored_tasks() -> None:
    a = _split({1: 0.5, 2: 0.4, 3: 0.3, 4: None, 5: 0.2}, weights={5: 0})
    b = _split({3: 0.6, 2: 0.5, 1: 0.45, 4: 0.9, 5: 0.9, 6: 0.7})
    # task 4 unscored at a, task 5 weighted out, task 6 only in b
    np.testing.assert_allclose(paired_task_deltas(a, b, "auc_pr"), [-0.05, 0.1, 0.3])
    assert paired_task_deltas(a, SplitMetrics(folds=[0], n_rows=0), "auc_pr").size == 0


def test_regression_tasks_are_paired_from_the_regression_part() -> None:
    def both(cls: float, reg: dict[int, float]) -> SplitMetrics:
        c = TaskTypeMetrics(
            task_type="classification", aggregate={}, per_task=[{"task_id": 1, "r2": cls}]
        )
        rows = [{"task_id": t, "r2": v, "aggregation_weight": 1} for t, v in reg.items()]
        r = TaskTypeMetrics(task_type="regression", aggregate={}, per_task=rows)
        return SplitMetrics(folds=[0], n_rows=10, classification=c, regression=r)

    a, b = both(0.0, {1: 0.2, 2: 0.4}), both(9.0, {1: 0.5, 2: 0.1})
    np.testing.assert_allclose(paired_task_deltas(a, b, "r2", "regression"), [0.3, -0.3])
    np.testing.assert_allclose(paired_task_deltas(a, b, "r2"), [9.0])


def test_gains_by_label_survive_another_column_order() -> None:
    def split(rows: list[tuple[int, str, float]]) -> SplitMetrics:
        per = [{"task_id": i, "task": label, "auc_pr": v} for i, label, v in rows]
        part = TaskTypeMetrics(task_type="classification", aggregate={}, per_task=per)
        return SplitMetrics(folds=[0], n_rows=10, classification=part)

    a = split([(0, "A1 (cls)", 0.5), (1, "A2 (cls)", 0.2)])
    b = split([(0, "A2 (cls)", 0.4), (1, "A1 (cls)", 0.6)])  # the same tasks, swapped
    gains = paired_task_gains(a, b, "auc_pr", name="task")
    assert gains == pytest.approx({"A1 (cls)": 0.1, "A2 (cls)": 0.2})
