"""evaluate_tasks: measured entries only, row subsets, censor alignment, aggregation, JSON."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pharmafl.evaluation import (
    EvaluationError,
    EvaluationResult,
    classification_task_metrics,
    evaluate_tasks,
    metric_names,
    regression_task_metrics,
)


def _random_cls(
    seed: int, n_rows: int = 80, n_tasks: int = 6, density: float = 0.4
) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random((n_rows, n_tasks)) < density
    labels = np.where(rng.random((n_rows, n_tasks)) < 0.4, 1.0, -1.0)
    y = sp.csr_matrix(np.where(mask, labels, 0.0))
    p = np.clip(rng.random((n_rows, n_tasks)) * 0.8 + 0.2 * (labels > 0), 0, 1)
    return y, p


def test_matches_per_task_function() -> None:
    y, p = _random_cls(0)
    res = evaluate_tasks(y, p, "classification")
    dense = y.toarray()
    for j in range(y.shape[1]):
        measured = dense[:, j] != 0
        expected = classification_task_metrics((dense[measured, j] > 0).astype(int), p[measured, j])
        row = res.per_task.iloc[j]
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, nan_ok=True), key
    assert list(res.per_task.columns[:2]) == ["task_id", "aggregation_weight"]
    assert res.per_task["task_id"].tolist() == list(range(y.shape[1]))


def test_unmeasured_predictions_change_nothing() -> None:
    y, p = _random_cls(1)
    before = evaluate_tasks(y, p, "classification")
    unmeasured = y.toarray() == 0
    p2 = p.copy()
    p2[unmeasured] = 1.0 - p2[unmeasured]
    after = evaluate_tasks(y, p2, "classification")
    pd.testing.assert_frame_equal(before.per_task, after.per_task)
    # NaN at an unmeasured position is fine too (never read).
    p2[unmeasured] = np.nan
    pd.testing.assert_frame_equal(before.per_task, evaluate_tasks(y, p2, "classification").per_task)
    # ... but changing a measured one does change the result.
    r, c = y.nonzero()
    p2[r[0], c[0]] = 0.0 if p2[r[0], c[0]] > 0.5 else 1.0
    assert not before.per_task.equals(evaluate_tasks(y, p2, "classification").per_task)


def test_nan_prediction_at_measured_entry_is_an_error() -> None:
    y, p = _random_cls(2)
    r, c = y.nonzero()
    p[r[0], c[0]] = np.nan
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate_tasks(y, p, "classification")


def test_aggregate_respects_weight_and_skips_nan() -> None:
    # Task 0: AUC 1; task 1: AUC 0 (weight 0, excluded); task 2: single class (NaN);
    # task 3: AUC 0.5.
    y = sp.csr_matrix(
        np.array(
            [
                [1, 1, 1, 1],
                [-1, -1, 1, -1],
                [1, 1, 0, 1],
                [-1, -1, 0, -1],
            ],
            dtype=float,
        )
    )
    p = np.array(
        [
            [0.9, 0.1, 0.5, 0.6],
            [0.1, 0.9, 0.5, 0.6],
            [0.8, 0.2, 0.5, 0.6],
            [0.2, 0.8, 0.5, 0.6],
        ]
    )
    res = evaluate_tasks(y, p, "classification", aggregation_weight=np.array([1, 0, 1, 1]))
    assert res.per_task["roc_auc"].tolist()[:2] == [1.0, 0.0]
    assert math.isnan(res.per_task["roc_auc"][2])
    assert res.aggregate["roc_auc"] == pytest.approx(0.75)
    assert res.aggregate["n_tasks"] == 2
    assert res.aggregate["n_tasks_total"] == 4
    # Weights are weights: 3 on task 0 -> (3 * 1 + 0.5) / 4.
    res_w = evaluate_tasks(y, p, "classification", aggregation_weight=np.array([3, 0, 1, 1]))
    assert res_w.aggregate["roc_auc"] == pytest.approx(3.5 / 4)
    # No task counted: NaN aggregate, not an exception.
    none = evaluate_tasks(y, p, "classification", aggregation_weight=np.zeros(4))
    assert math.isnan(none.aggregate["roc_auc"]) and none.aggregate["n_tasks"] == 0


def test_rows_restrict_evaluation() -> None:
    y, p = _random_cls(3, n_rows=120)
    rows = np.arange(0, 120, 3)
    sub = evaluate_tasks(y[rows], p[rows], "classification")
    by_index = evaluate_tasks(y, p, "classification", rows=rows)
    mask = np.zeros(120, dtype=bool)
    mask[rows] = True
    by_mask = evaluate_tasks(y, p, "classification", rows=mask)
    pd.testing.assert_frame_equal(sub.per_task, by_index.per_task)
    pd.testing.assert_frame_equal(sub.per_task, by_mask.per_task)
    with pytest.raises(EvaluationError, match="outside"):
        evaluate_tasks(y, p, "classification", rows=np.array([0, 500]))
    doubled = sp.coo_matrix(([1.0, -1.0], ([0, 0], [0, 0])), shape=y.shape)  # not summed
    with pytest.raises(
        EvaluationError, match="stores the same \\(row, task\\) entry more than once"
    ):
        evaluate_tasks(doubled, p, "classification")
    with pytest.raises(EvaluationError, match="censor applies to regression tasks only"):
        evaluate_tasks(y, p, "classification", censor=sp.csr_matrix(y.shape))
    with pytest.raises(EvaluationError, match="a boolean rows mask must have length"):
        evaluate_tasks(y, p, "classification", rows=np.ones(3, dtype=bool))
    for rows in (np.array([[0, 1]]), np.array([0.0, 1.0])):  # 2-D, or not integers
        with pytest.raises(EvaluationError, match="1-D array of row indices or a boolean mask"):
            evaluate_tasks(y, p, "classification", rows=rows)


def test_regression_explicit_zero_is_a_measurement_and_censor_aligns() -> None:
    # Task 0 rows 0..3 = [0.0 (explicit), 1.0, 2.0, 3.0]; row 4 unmeasured.
    data = np.array([0.0, 1.0, 2.0, 3.0])
    y = sp.csr_matrix((data, (np.arange(4), np.zeros(4, dtype=int))), shape=(5, 1))
    assert y.nnz == 4  # the explicit zero is stored
    pred = np.array([[0.5], [1.0], [2.0], [2.0], [99.0]])
    # Censor stored only at row 3 ('>' 3.0 predicted 2.0: violated by 1); others absent = 0.
    censor = sp.csr_matrix(([1.0], ([3], [0])), shape=(5, 1))
    res = evaluate_tasks(y, pred, "regression", censor=censor)
    expected = regression_task_metrics(data, pred[:4, 0], np.array([0, 0, 0, 1]))
    row = res.per_task.iloc[0]
    assert row["n"] == 4 and row["n_uncensored"] == 3
    assert row["rmse"] == pytest.approx(expected["rmse"])
    assert row["rmse"] == pytest.approx(math.sqrt((0.25 + 1.0) / 4))
    assert row["rmse_uncensored"] == pytest.approx(math.sqrt(0.25 / 3))
    for bad in (censor.toarray(), sp.csr_matrix((4, 1))):  # dense, or another shape
        with pytest.raises(EvaluationError, match=r"censor must be a scipy sparse matrix"):
            evaluate_tasks(y, pred, "regression", censor=bad)


def test_regression_matches_per_task_function_with_same_pattern_censor() -> None:
    rng = np.random.default_rng(4)
    mask = rng.random((60, 4)) < 0.5
    values = rng.normal(6, 1, (60, 4))
    y = sp.csr_matrix(np.where(mask, values, 0.0))
    flags = np.where(mask, rng.choice([-1.0, 0.0, 1.0], size=(60, 4), p=[0.2, 0.6, 0.2]), 0.0)
    # Same sparsity as y, zeros stored explicitly (docs/prepared-format.md).
    r, c = y.nonzero()
    censor = sp.csr_matrix((flags[r, c], (r, c)), shape=y.shape)
    pred = values + rng.normal(0, 0.5, values.shape)
    res = evaluate_tasks(y, pred, "regression", censor=censor)
    for j in range(4):
        m = mask[:, j]
        exp = regression_task_metrics(values[m, j], pred[m, j], flags[m, j])
        for key, value in exp.items():
            assert res.per_task.iloc[j][key] == pytest.approx(value, nan_ok=True), key


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task_type": "ranking"}, "valid: classification, regression"),
        ({"y_pred": np.zeros((3, 3))}, "shape"),
        ({"aggregation_weight": np.ones(5)}, "aggregation_weight"),
        ({"aggregation_weight": -np.ones(2)}, "non-negative"),
    ],
)
def test_input_errors(kwargs: dict, match: str) -> None:
    args = {
        "y_true": sp.csr_matrix(np.array([[1.0, -1.0], [-1.0, 1.0]])),
        "y_pred": np.full((2, 2), 0.5),
        "task_type": "classification",
    }
    args.update(kwargs)
    with pytest.raises(EvaluationError, match=match):
        evaluate_tasks(**args)


def test_classification_labels_must_be_plus_minus_one() -> None:
    y = sp.csr_matrix(np.array([[1.0], [2.0]]))
    with pytest.raises(EvaluationError, match=r"\+1"):
        evaluate_tasks(y, np.full((2, 1), 0.5), "classification")
    with pytest.raises(EvaluationError, match="sparse"):
        evaluate_tasks(np.ones((2, 1)), np.full((2, 1), 0.5), "classification")  # type: ignore[arg-type]


def test_json_round_trip_has_no_nan() -> None:
    y, p = _random_cls(5)
    y = y.tolil()
    y[:, 0] = 0  # task 0 unmeasured -> NaN metrics
    y = y.tocsr()
    y.eliminate_zeros()
    res = evaluate_tasks(y, p, "classification")
    doc = res.to_json()
    text = json.dumps(doc, allow_nan=False)
    assert doc["per_task"][0]["roc_auc"] is None and doc["per_task"][0]["n_pos"] == 0
    back = EvaluationResult.from_json(json.loads(text))
    pd.testing.assert_frame_equal(back.per_task, res.per_task)
    assert back.aggregate == pytest.approx(res.aggregate)
    with pytest.raises(EvaluationError, match="evaluation result"):
        EvaluationResult.from_json({"task_type": "classification"})


def test_metric_names_per_type() -> None:
    assert metric_names("regression") == ("rmse", "rmse_uncensored", "r2", "pearson_r")
    assert "auc_pr_cal" in metric_names("classification")


def test_package_imports_neither_torch_nor_rdkit() -> None:
    code = (
        "import sys, pharmafl.evaluation; "
        "bad = [m for m in ('torch', 'rdkit') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
