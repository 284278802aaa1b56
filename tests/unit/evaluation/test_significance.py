"""DeLong paired test (fast vs brute force vs hand), Benjamini–Yekutieli, improvement share."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from pharmafl.evaluation import (
    EvaluationError,
    benjamini_yekutieli,
    delong_paired_test,
    significant_improvement_share,
)
from pharmafl.evaluation.significance import delong_covariance, delong_placements


def _brute_force_delong(y: np.ndarray, scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """O(m·n) DeLong et al. (1988): kernel psi over all (positive, negative) pairs."""
    pos, neg = y == 1, y == 0
    m, n = int(pos.sum()), int(neg.sum())
    aucs, v10s, v01s = [], [], []
    for s in scores:
        x, z = s[pos], s[neg]
        psi = np.zeros((m, n))
        for i in range(m):
            for j in range(n):
                psi[i, j] = 1.0 if x[i] > z[j] else 0.5 if x[i] == z[j] else 0.0
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    k = len(scores)
    s10 = np.zeros((k, k))
    s01 = np.zeros((k, k))
    for r in range(k):
        for q in range(k):
            s10[r, q] = np.sum((v10s[r] - aucs[r]) * (v10s[q] - aucs[q])) / (m - 1)
            s01[r, q] = np.sum((v01s[r] - aucs[r]) * (v01s[q] - aucs[q])) / (n - 1)
    return np.array(aucs), s10 / m + s01 / n


def test_delong_hand_example() -> None:
    # Positives a: 0.9, 0.4; negatives a: 0.5, 0.1.
    #   V10_a = [1, 1/2], V01_a = [1/2, 1], AUC_a = 3/4.
    # b = [0.8, 0.7 | 0.3, 0.2] is perfect: V10_b = V01_b = [1, 1], AUC_b = 1.
    # S10_aa = ((1/4)^2 + (1/4)^2) / 1 = 1/8 = S01_aa; b's placements are constant.
    # Var(AUC_b - AUC_a) = S10_aa/2 + S01_aa/2 = 1/8  ->  z = (1/4) / sqrt(1/8) = 1/sqrt(2).
    y = np.array([1, 1, 0, 0])
    a = np.array([0.9, 0.4, 0.5, 0.1])
    b = np.array([0.8, 0.7, 0.3, 0.2])
    auc_a, auc_b, z, p = delong_paired_test(y, a, b)
    assert (auc_a, auc_b) == (pytest.approx(0.75), pytest.approx(1.0))
    assert z == pytest.approx(1 / math.sqrt(2))
    assert p == pytest.approx(2 * (1 - norm.cdf(1 / math.sqrt(2))))
    assert p == pytest.approx(0.4795, abs=1e-4)
    _, _, _, p_greater = delong_paired_test(y, a, b, alternative="greater")
    assert p_greater == pytest.approx(0.4795 / 2, abs=1e-4)
    # Swapping the models flips the sign of z.
    assert delong_paired_test(y, b, a)[2] == pytest.approx(-1 / math.sqrt(2))


@pytest.mark.parametrize("seed", range(8))
def test_fast_delong_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 60))
    y = (rng.random(n) < 0.4).astype(int)
    y[:2], y[2:4] = 1, 0
    a = np.round(rng.random(n) + 0.5 * y, 1)  # rounded: many ties, within and across classes
    b = np.round(0.6 * a + 0.6 * rng.random(n) + 0.3 * y, 1)
    aucs, v10, v01 = delong_placements(y, np.vstack([a, b]))
    cov = delong_covariance(v10, v01)
    aucs_bf, cov_bf = _brute_force_delong(y, [a, b])
    assert aucs == pytest.approx(aucs_bf, abs=1e-12)
    assert cov == pytest.approx(cov_bf, abs=1e-12)
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)], abs=1e-12)
    _, _, z, p = delong_paired_test(y, a, b)
    var_bf = cov_bf[0, 0] + cov_bf[1, 1] - 2 * cov_bf[0, 1]
    assert z == pytest.approx((aucs_bf[1] - aucs_bf[0]) / math.sqrt(var_bf), rel=1e-9)
    assert p == pytest.approx(2 * norm.sf(abs(z)), rel=1e-9)


def test_delong_degenerate_cases() -> None:
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.6, 0.4, 0.5, 0.3, 0.2])
    # Identical scores: difference 0 with zero variance -> z = 0, two-sided p = 1.
    assert delong_paired_test(y, s, s)[2:] == (0.0, 1.0)
    # One class only: everything NaN, no exception.
    assert all(math.isnan(v) for v in delong_paired_test(np.ones(4), s[:4], s[:4]))
    # One positive: AUCs defined, covariance (ddof=1) not.
    auc_a, _, z, p = delong_paired_test(np.array([1, 0, 0]), [0.9, 0.1, 0.2], [0.1, 0.9, 0.2])
    assert auc_a == 1.0 and math.isnan(z) and math.isnan(p)
    with pytest.raises(EvaluationError, match="needs both positives and negatives"):
        delong_placements(np.ones(3), np.array([0.1, 0.2, 0.3]))  # the raw placements do raise
    with pytest.raises(EvaluationError, match="alternative"):
        delong_paired_test(y, s, s, alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="equal length"):
        delong_paired_test(y, s, s[:3])
    with pytest.raises(EvaluationError, match="y_true must hold only 0 and 1"):
        delong_paired_test(np.where(y == 1, 1, -1), s, s)  # pharmafl's -1/+1, not mapped
    with pytest.raises(EvaluationError, match="prob_a and prob_b must be finite"):
        delong_paired_test(y, s, np.where(s > 0.8, np.nan, s))  # a NaN would read as "no change"


def test_benjamini_yekutieli_hand_values() -> None:
    # m = 4, c(4) = 1 + 1/2 + 1/3 + 1/4 = 25/12; thresholds k * 0.05 / (4 * 25/12) = 0.006 k:
    #   0.006, 0.012, 0.018, 0.024. Sorted p: 0.001 (<= .006), 0.0125 (> .012),
    #   0.0175 (<= .018), 0.9. Step-up: the largest k passing is 3 -> reject the 3 smallest,
    #   including 0.0125 which fails its own threshold.
    p = np.array([0.9, 0.0175, 0.001, 0.0125])
    assert benjamini_yekutieli(p, 0.05).tolist() == [False, True, True, True]
    # m = 5, c(5) = 137/60; thresholds k * 0.05 / (5 * 137/60) = k * 0.0043796:
    #   0.0001 yes, 0.004 (<= .00876) yes, 0.005 (<= .01314) yes, 0.03 (> .01752), 0.5 no.
    p5 = np.array([0.03, 0.0001, 0.5, 0.005, 0.004])
    assert benjamini_yekutieli(p5).tolist() == [False, True, False, True, True]


def test_benjamini_yekutieli_is_stricter_than_bh_and_skips_nan() -> None:
    # m = 2, c(2) = 1.5: BY thresholds k * 0.05 / (2 * 1.5) = 0.01667 k.
    # [0.02, 0.03]: 0.03 <= 0.0333 -> both rejected (step-up).
    # [0.02, 0.04]: 0.04 > 0.0333 and 0.02 > 0.01667 -> none; Benjamini-Hochberg (c = 1,
    # thresholds 0.025 k) would reject both (0.04 <= 0.05).
    assert benjamini_yekutieli(np.array([0.02, 0.03])).tolist() == [True, True]
    assert benjamini_yekutieli(np.array([0.02, 0.04])).tolist() == [False, False]
    # NaN (untestable) is never rejected and does not count in m.
    assert benjamini_yekutieli(np.array([np.nan, 0.02, 0.03])).tolist() == [False, True, True]
    assert benjamini_yekutieli(np.array([])).tolist() == []
    with pytest.raises(EvaluationError, match="p_values must be one-dimensional"):
        benjamini_yekutieli(np.array([[0.01, 0.2]]))
    with pytest.raises(EvaluationError, match="alpha"):
        benjamini_yekutieli(np.array([0.1]), alpha=0.0)
    with pytest.raises(EvaluationError, match=r"\[0, 1\]"):
        benjamini_yekutieli(np.array([1.5]))


def _tasks(
    seed: int, n_tasks: int = 8, n_rows: int = 300
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((n_rows, n_tasks)) < 0.3, 1.0, -1.0)
    mask = rng.random((n_rows, n_tasks)) < 0.7
    y = sp.csr_matrix(np.where(mask, labels, 0.0))
    noise = rng.random((n_rows, n_tasks))
    weak = noise  # uninformative
    strong = np.clip(0.3 * noise + 0.7 * (labels > 0), 0, 1)  # near-perfect
    return y, weak, strong


def test_significant_improvement_share() -> None:
    y, weak, strong = _tasks(0)
    res = significant_improvement_share(y, weak, strong)
    assert res.n_tasks_tested == 8
    assert res.share_improved == 1.0 and res.share_worsened == 0.0
    assert res.per_task["improved"].all() and not res.per_task["worsened"].any()
    swapped = significant_improvement_share(y, strong, weak)
    assert swapped.share_worsened == 1.0 and swapped.share_improved == 0.0
    # The same model twice: nothing significant either way.
    same = significant_improvement_share(y, weak, weak)
    assert same.share_improved == 0.0 and same.share_worsened == 0.0
    zero_one = y.copy()
    zero_one.data = (zero_one.data > 0).astype(zero_one.data.dtype)  # 0/1 labels, not ±1
    with pytest.raises(EvaluationError, match=r"must store only \+1 and -1"):
        significant_improvement_share(zero_one, weak, strong)


def test_share_skips_zero_weight_and_untestable_tasks() -> None:
    y, weak, strong = _tasks(1, n_tasks=4)
    dense = y.toarray()
    # Task 3 keeps only one positive -> not testable.
    pos_rows = np.flatnonzero(dense[:, 3] > 0)
    dense[pos_rows[1:], 3] = 0.0
    y2 = sp.csr_matrix(dense)
    res = significant_improvement_share(
        y2, weak, strong, aggregation_weight=np.array([1.0, 0.0, 1.0, 1.0])
    )
    assert res.per_task["task_id"].tolist() == [0, 2]
    assert res.n_tasks_tested == 2
    # Per-task p-values are one-sided DeLong tests on the measured entries only.
    m0 = dense[:, 0] != 0
    expected = delong_paired_test(
        (dense[m0, 0] > 0).astype(int), weak[m0, 0], strong[m0, 0], alternative="greater"
    )
    row = res.per_task.iloc[0]
    assert (row["auc_a"], row["auc_b"], row["z"], row["p_improved"]) == pytest.approx(expected)
    nothing = significant_improvement_share(y2, weak, strong, aggregation_weight=np.zeros(4))
    assert nothing.n_tasks_tested == 0 and math.isnan(nothing.share_improved)
