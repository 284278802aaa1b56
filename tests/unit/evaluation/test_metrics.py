"""Per-task metrics against hand-computed values and against scikit-learn's own functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    auc,
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    log_loss,
    precision_recall_curve,
    roc_auc_score,
)

from pharmafl.evaluation import (
    CLASSIFICATION_METRICS,
    EvaluationError,
    calibrated_precision,
    classification_task_metrics,
    expected_calibration_error,
    regression_task_metrics,
)

# Six samples. Positives score 0.9, 0.8, 0.4; negatives 0.7, 0.3, 0.2.
# Pairs (pos > neg): 0.9 beats 3, 0.8 beats 3, 0.4 beats 2 -> ROC-AUC = 8/9.
# Ranked: 0.9 P, 0.8 P, 0.7 N, 0.4 P, 0.3 N, 0.2 N. Precision/recall at each threshold:
#   0.9: P=1   R=1/3 | 0.8: P=1 R=2/3 | 0.7: P=2/3 R=2/3 | 0.4: P=3/4 R=1 | 0.3: 3/5 | 0.2: 1/2
# AUC-PR (trapezoid): 1/3 + 1/3 + (1/3)(2/3 + 3/4)/2 = 2/3 + 17/72 = 65/72.
# AP (step): (1/3)(1) + (1/3)(1) + (1/3)(3/4) = 11/12.
# F1: at 0.4 -> 2(3/4)(1)/(7/4) = 6/7 (the best); at 0.8 -> 4/5.
# Kappa at 0.5: predicted positive = {0.9, 0.8, 0.7}: tp=2 fp=1 fn=1 tn=2;
#   p_o = 4/6, p_e = (3*3 + 3*3)/36 = 1/2 -> kappa = (2/3 - 1/2)/(1/2) = 1/3.
# Brier: (0.01 + 0.04 + 0.36 + 0.49 + 0.09 + 0.04)/6 = 1.03/6.
# ECE: every sample alone in its bin -> mean |y - p| = (0.1+0.2+0.6+0.7+0.3+0.2)/6 = 0.35.
Y6 = np.array([1, 1, 1, 0, 0, 0])
P6 = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2])


def test_classification_metrics_by_hand() -> None:
    m = classification_task_metrics(Y6, P6)
    assert m["roc_auc"] == pytest.approx(8 / 9)
    assert m["auc_pr"] == pytest.approx(65 / 72)
    assert m["avg_prec"] == pytest.approx(11 / 12)
    assert m["f1_max"] == pytest.approx(6 / 7)
    assert m["kappa"] == pytest.approx(1 / 3)
    assert m["brier"] == pytest.approx(1.03 / 6)
    expected_ll = -(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.3) + np.log(0.7))
    expected_ll -= np.log(0.8)
    assert m["logloss"] == pytest.approx(expected_ll / 6)
    assert m["ece"] == pytest.approx(0.35)
    assert (m["n_pos"], m["n_neg"]) == (3, 3)


def test_calibrated_auc_pr_by_hand_at_positive_rate_one_half() -> None:
    # Positive rate 0.5, pi0 = 0.1: factor f = 0.5 * 0.9 / (0.1 * 0.5) = 9 and
    # P_cal = 1 / ((1/P - 1) * 9 + 1): P=1 -> 1, P=2/3 -> 2/11, P=3/4 -> 1/4.
    # Area: 2/3 (recall 0..2/3 at 1) + (1/3)(2/11 + 1/4)/2 = 2/3 + 19/264 = 65/88.
    m = classification_task_metrics(Y6, P6)
    assert m["auc_pr_cal"] == pytest.approx(65 / 88)
    cal = calibrated_precision(np.array([1.0, 2 / 3, 0.75, 0.6, 0.5, 0.0]), 0.5, 0.1)
    assert cal == pytest.approx([1.0, 2 / 11, 1 / 4, 1 / 7, 1 / 10, 0.0])


def test_calibrated_auc_pr_equals_plain_at_reference_rate() -> None:
    rng = np.random.default_rng(3)
    y = np.zeros(50, dtype=int)
    y[:5] = 1  # positive rate exactly 0.1
    p = np.clip(rng.random(50) * 0.6 + 0.4 * y, 0, 1)
    m = classification_task_metrics(y, p)
    assert m["auc_pr_cal"] == pytest.approx(m["auc_pr"], abs=1e-12)
    # ... and differs from it elsewhere (pi0 = 0.2 at the same data).
    assert classification_task_metrics(y, p, pi_zero=0.2)["auc_pr_cal"] > m["auc_pr"]


def test_ece_with_shared_bins_by_hand() -> None:
    # Bin (0.1, 0.2]: p = .12 .18 .15, y = 0 1 0 -> |1 - 0.45| = 0.55
    # Bin (0.8, 0.9]: p = .85 .90,     y = 1 0   -> |1 - 1.75| = 0.75 (0.9 in the closed right end)
    # Bin (0.9, 1.0]: p = .95,         y = 1     -> 0.05
    # ECE = (0.55 + 0.75 + 0.05) / 6 = 0.225
    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.12, 0.18, 0.15, 0.85, 0.95, 0.9])
    assert expected_calibration_error(y, p, 10) == pytest.approx(0.225)
    assert classification_task_metrics(y, p)["ece"] == pytest.approx(0.225)
    # A probability of exactly 0 falls in the first bin (not dropped).
    assert expected_calibration_error(np.array([0, 1]), np.array([0.0, 1.0])) == 0.0


@pytest.mark.parametrize("seed", range(6))
def test_classification_metrics_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 300))
    y = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
    y[:2] = [0, 1]
    # Rounded scores create many ties; include exact 0 and 1.
    p = np.round(np.clip(rng.random(n) * 0.7 + 0.3 * y, 0, 1), 1)
    m = classification_task_metrics(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["avg_prec"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["auc_pr"] == pytest.approx(auc(recall, precision), abs=1e-12)
    f1 = 2 * precision * recall / np.where(precision + recall > 0, precision + recall, 1)
    assert m["f1_max"] == pytest.approx(f1.max(), abs=1e-12)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, (p >= 0.5).astype(int)), abs=1e-12)
    assert m["logloss"] == pytest.approx(log_loss(y, p, labels=[0, 1]), abs=1e-12)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_curves_match_sklearn_without_ties() -> None:
    # Continuous scores (every point distinct) and a large task: same areas as sklearn.
    rng = np.random.default_rng(7)
    y = (rng.random(5000) < 0.2).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=5000) + 1.5 * y)))
    m = classification_task_metrics(y, p)
    precision, recall, _ = precision_recall_curve(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["auc_pr"] == pytest.approx(auc(recall, precision), abs=1e-12)
    assert m["avg_prec"] == pytest.approx(average_precision_score(y, p), abs=1e-12)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0], []])
def test_single_class_gives_nan_not_exception(labels: list[int]) -> None:
    y = np.array(labels, dtype=int)
    m = classification_task_metrics(y, np.linspace(0.1, 0.9, y.size))
    assert all(math.isnan(m[k]) for k in CLASSIFICATION_METRICS)
    assert m["n_pos"] + m["n_neg"] == y.size


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, 1], [0.1, 1.2], r"\[0, 1\]"),
        ([0, 1], [0.1, np.nan], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "same measurements"),
    ],
)
def test_classification_input_errors(y: list[int], p: list[float], match: str) -> None:
    with pytest.raises(EvaluationError, match=match):
        classification_task_metrics(np.array(y), np.array(p))


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"pi_zero": 0.0}, r"pi_zero must lie in \(0, 1\), got 0.0"),
        ({"pi_zero": 1.0}, r"pi_zero must lie in \(0, 1\), got 1.0"),
        ({"n_bins": 0}, "n_bins must be at least 1, got 0"),
    ],
)
def test_classification_option_errors(option: dict[str, float], match: str) -> None:
    """A calibration rate of 0 or 1, or no bins, would divide by zero deep inside."""
    with pytest.raises(EvaluationError, match=match):
        classification_task_metrics(np.array([0, 1, 1]), np.array([0.2, 0.7, 0.9]), **option)


def test_censored_rmse_by_hand() -> None:
    # i0 '=' 5.0 predicted 5.5 -> 0.25
    # i1 '>' 6.0 predicted 5.0 (below: violates) -> (6 - 5)^2 = 1
    # i2 '>' 7.0 predicted 8.0 (above: allowed)  -> 0
    # i3 '<' 4.0 predicted 3.0 (below: allowed)  -> 0
    # i4 '<' 4.0 predicted 4.5 (above: violates) -> 0.25
    y = np.array([5.0, 6.0, 7.0, 4.0, 4.0])
    p = np.array([5.5, 5.0, 8.0, 3.0, 4.5])
    c = np.array([0, 1, 1, -1, -1])
    m = regression_task_metrics(y, p, c)
    assert m["rmse"] == pytest.approx(math.sqrt(1.5 / 5))
    assert m["rmse_uncensored"] == pytest.approx(0.5)
    assert (m["n"], m["n_uncensored"]) == (5, 1)
    assert math.isnan(m["r2"]) and math.isnan(m["pearson_r"])  # one uncensored value
    # Without censor flags every value is an exact measurement.
    plain = regression_task_metrics(y, p)
    assert plain["rmse"] == pytest.approx(math.sqrt((0.25 + 1 + 1 + 1 + 0.25) / 5))


def test_r2_and_pearson_by_hand() -> None:
    # SS_res = .25 + 0 + .25 + .25 = .75, SS_tot = 5 -> R2 = 0.85.
    # Deviations y: -1.5 -.5 .5 1.5; p (mean 2.625): -1.125 -.625 -.125 1.875
    # r = 4.75 / sqrt(5 * 5.1875)
    m = regression_task_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.5, 4.5])
    assert m["r2"] == pytest.approx(0.85)
    assert m["pearson_r"] == pytest.approx(4.75 / math.sqrt(5 * 5.1875))
    assert m["rmse"] == pytest.approx(math.sqrt(0.75 / 4))


def test_r2_is_scikit_learns() -> None:
    """R² is written out (importing sklearn.metrics costs a flow run 2 s); it must stay
    scikit-learn's."""
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    for n in (2, 5, 200):
        y, p = rng.normal(6.0, 1.5, n), rng.normal(6.0, 2.0, n)
        assert regression_task_metrics(y, p)["r2"] == pytest.approx(r2_score(y, p), abs=1e-12)


def test_regression_degenerate_cases_are_nan() -> None:
    empty = regression_task_metrics(np.array([]), np.array([]))
    assert empty["n"] == 0 and math.isnan(empty["rmse"])
    constant = regression_task_metrics([3.0, 3.0, 3.0], [2.0, 3.0, 4.0])
    assert math.isnan(constant["r2"]) and math.isnan(constant["pearson_r"])
    assert constant["rmse"] == pytest.approx(math.sqrt(2 / 3))
    all_censored = regression_task_metrics([1.0, 2.0], [0.0, 3.0], [1, -1])
    assert all_censored["rmse"] == pytest.approx(math.sqrt(0.5 * (1 + 1)))
    assert math.isnan(all_censored["rmse_uncensored"])


def test_regression_input_errors() -> None:
    with pytest.raises(EvaluationError, match="censor"):
        regression_task_metrics([1.0], [1.0], [2])
    with pytest.raises(EvaluationError, match="NaN"):
        regression_task_metrics([1.0, np.nan], [1.0, 2.0])


def test_values_must_be_one_task_flat() -> None:
    with pytest.raises(EvaluationError, match="must be one-dimensional, got shape"):
        classification_task_metrics(np.array([[0, 1]]), np.array([[0.2, 0.7]]))
