"""The compound bootstrap: its metrics equal the full ones, and its intervals behave."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from pharmafl.common.errors import EvaluationError
from pharmafl.evaluation import (
    classification_task_metrics,
    compound_bootstrap,
    fast_task_metric,
    regression_task_metrics,
)


def test_fast_metrics_equal_the_full_ones() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    p = np.round(rng.random(60), 1)  # ties included
    full = classification_task_metrics(y, p)
    for m in ("roc_auc", "auc_pr"):
        assert fast_task_metric("classification", m, y, p) == pytest.approx(full[m])
    v = rng.normal(6, 1, 40)
    pred = v + rng.normal(0, 0.5, 40)
    c = rng.choice([-1.0, 0.0, 1.0], 40, p=[0.2, 0.6, 0.2])
    full = regression_task_metrics(v, pred, c)
    for m in ("r2", "rmse", "rmse_uncensored"):
        assert fast_task_metric("regression", m, v, pred, c) == pytest.approx(full[m])
    assert math.isnan(fast_task_metric("classification", "roc_auc", np.ones(5), np.ones(5)))
    with pytest.raises(EvaluationError, match="unknown metric"):
        fast_task_metric("classification", "r2", y, p)


def _problem(seed: int = 0, n: int = 80, tasks: int = 6) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((n, tasks)) < 0.5, 1.0, -1.0)
    labels[rng.random((n, tasks)) < 0.3] = 0.0  # unmeasured
    y = sp.csr_matrix(labels)
    y.eliminate_zeros()
    return y, labels


def test_a_better_model_gets_an_interval_above_zero() -> None:
    y, labels = _problem()
    rng = np.random.default_rng(2)
    noise = rng.random(labels.shape)
    weak = 0.5 * (labels > 0) + noise  # some signal
    strong = 2.0 * (labels > 0) + noise  # much more
    weak, strong = weak / weak.max(), strong / strong.max()
    res = compound_bootstrap(y, weak, strong, "classification", resamples=300)
    assert res.metrics == ("roc_auc", "auc_pr") and res.n_tasks == 6 and res.n_compounds == 80
    lo, hi = res.interval[0]
    assert 0.0 < lo <= res.mean_delta[0] <= hi
    again = compound_bootstrap(y, weak, strong, "classification", resamples=300)
    assert again.interval == res.interval  # fixed seed: same interval
    for bad in ({"level": 1.0}, {"resamples": 0}):
        with pytest.raises(EvaluationError, match="need 0 < level < 1 and resamples"):
            compound_bootstrap(y, weak, strong, "classification", **bad)  # type: ignore[arg-type]


def test_identical_models_differ_by_exactly_zero() -> None:
    y, labels = _problem(3)
    p = np.random.default_rng(4).random(labels.shape)
    res = compound_bootstrap(y, p, p, "classification", resamples=50)
    assert res.mean_delta.tolist() == [0.0, 0.0]
    assert res.interval == [(0.0, 0.0), (0.0, 0.0)]


def test_only_used_tasks_and_their_compounds_are_resampled() -> None:
    y, labels = _problem(5, n=40, tasks=3)
    p = np.random.default_rng(6).random(labels.shape)
    one = compound_bootstrap(y, p, p, "classification", use=[True, False, False], resamples=10)
    assert one.n_tasks == 1 and one.interval == [None, None]  # one task: no interval
    assert one.n_compounds == int((labels[:, 0] != 0).sum())


def test_regression_is_censor_aware() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(6, 1, (50, 2))
    y = sp.csr_matrix(values)
    censor = sp.csr_matrix((np.zeros(100), y.nonzero()), shape=y.shape)
    good = values + rng.normal(0, 0.1, values.shape)
    bad = values + rng.normal(0, 1.0, values.shape)
    res = compound_bootstrap(y, bad, good, "regression", censor=censor, resamples=200)
    assert res.metrics == ("r2", "rmse", "rmse_uncensored")
    assert res.mean_delta[0] > 0 and res.mean_delta[1] < 0  # R² up, RMSE down
    assert res.interval[1] is not None and res.interval[1][1] < 0


def test_a_resample_scores_as_the_repeated_entries_would() -> None:
    from pharmafl.evaluation.bootstrap import _weighted

    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 30).astype(np.float64)
    p = np.round(rng.random(30), 1)
    w = rng.integers(0, 3, (4, 30))  # zeros: entries not drawn
    for b in range(4):
        rep = classification_task_metrics(np.repeat(y, w[b]).astype(int), np.repeat(p, w[b]))
        for m in ("roc_auc", "auc_pr"):
            got = _weighted("classification", m, y, p, None, w[b : b + 1].astype(float))[0]
            assert got == pytest.approx(rep[m])
    v, pred = rng.normal(6, 1, 30), rng.normal(6, 1, 30)
    c = rng.choice([-1.0, 0.0, 1.0], 30, p=[0.2, 0.6, 0.2])
    for b in range(4):
        rep = regression_task_metrics(np.repeat(v, w[b]), np.repeat(pred, w[b]), np.repeat(c, w[b]))
        for m in ("r2", "rmse", "rmse_uncensored"):
            got = _weighted("regression", m, v, pred, c, w[b : b + 1].astype(float))[0]
            assert got == pytest.approx(rep[m])
