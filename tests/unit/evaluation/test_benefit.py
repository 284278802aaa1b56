"""Deltas, relative deltas (RIPtoP), ECDF differences and the shareable benefit summary."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pharmafl.evaluation import (
    SCHEMA_MODELS,
    BenefitSummary,
    EvaluationError,
    benefit_summary,
    bootstrap_mean_ci,
    delta_metrics,
    ecdf_difference,
    evaluate_tasks,
    significant_improvement_share,
)
from pharmafl.schema_registry import render_schema


def _tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    a = pd.DataFrame(
        {
            "task_id": [0, 1, 2, 3, 4],
            "aggregation_weight": [1.0, 1.0, 1.0, 1.0, 0.0],
            "roc_auc": [0.8, 0.0, 1.0, 1.0, np.nan],
            "rmse": [1.0, 0.0, 2.0, 0.5, 1.0],
            "r2": [0.5, -3.0, 1.0, 0.2, 0.0],
        }
    )
    # b lists the tasks in another order: matching is by task_id.
    b = pd.DataFrame(
        {
            "task_id": [4, 3, 2, 1, 0],
            "roc_auc": [0.7, 0.9, 1.0, 0.5, 0.9],
            "rmse": [1.0, 0.5, 1.0, 0.0, 0.5],
            "r2": [0.0, 0.2, 0.5, 0.0, 0.75],
        }
    )
    return a, b


def test_delta_metrics_by_hand() -> None:
    a, b = _tables()
    d = delta_metrics(a, b, ("roc_auc", "rmse", "r2")).set_index("task_id")
    # Task 0: AUC .8 -> .9: delta .1, relative .1/.8, RIPtoP .1/.2.
    assert d.loc[0, "roc_auc_delta"] == pytest.approx(0.1)
    assert d.loc[0, "roc_auc_relative_improve"] == pytest.approx(0.125)
    assert d.loc[0, "roc_auc_improve_to_perfect"] == pytest.approx(0.5)
    # Task 1: baseline 0 -> relative improvement is the absolute delta (MELLODDY convention).
    assert d.loc[1, "roc_auc_relative_improve"] == pytest.approx(0.5)
    # Task 2: both perfect -> RIPtoP 0; task 3: only baseline perfect -> absolute delta.
    assert d.loc[2, "roc_auc_improve_to_perfect"] == 0.0
    assert d.loc[3, "roc_auc_improve_to_perfect"] == pytest.approx(-0.1)
    # Task 4: NaN baseline stays NaN.
    assert math.isnan(d.loc[4, "roc_auc_delta"])
    # RMSE (perfect 0): 1 -> .5 is delta -.5, relative -.5, RIPtoP (.5 - 1)/(0 - 1) = +.5.
    assert d.loc[0, "rmse_delta"] == pytest.approx(-0.5)
    assert d.loc[0, "rmse_relative_improve"] == pytest.approx(-0.5)
    assert d.loc[0, "rmse_improve_to_perfect"] == pytest.approx(0.5)
    assert d.loc[2, "rmse_improve_to_perfect"] == pytest.approx(0.5)  # 2 -> 1
    assert d.loc[1, "rmse_improve_to_perfect"] == 0.0  # both perfect (0)
    # R2 .5 -> .75: raw delta .25; range fractions .75 -> .875: relative .125/.75, RIPtoP .5.
    assert d.loc[0, "r2_delta"] == pytest.approx(0.25)
    assert d.loc[0, "r2_relative_improve"] == pytest.approx(1 / 6)
    assert d.loc[0, "r2_improve_to_perfect"] == pytest.approx(0.5)
    # R2 -3 (clipped to -1, fraction 0) -> 0 (fraction .5): relative = absolute .5, RIPtoP .5.
    assert d.loc[1, "r2_delta"] == pytest.approx(3.0)
    assert d.loc[1, "r2_relative_improve"] == pytest.approx(0.5)
    assert d.loc[1, "r2_improve_to_perfect"] == pytest.approx(0.5)
    assert d.loc[0, "roc_auc_a"] == 0.8 and d.loc[0, "roc_auc_b"] == 0.9
    assert d.loc[4, "aggregation_weight"] == 0.0


def test_delta_metrics_errors() -> None:
    a, b = _tables()
    with pytest.raises(EvaluationError, match=r"valid: .*roc_auc"):
        delta_metrics(a, b, ("accuracy",))
    with pytest.raises(EvaluationError, match="different tasks"):
        delta_metrics(a, b.iloc[:4], ("roc_auc",))
    with pytest.raises(EvaluationError, match="lacks"):
        delta_metrics(a, b.drop(columns="rmse"), ("rmse",))


def test_ecdf_difference_by_hand() -> None:
    # a: .1 .5 .9 ; b: .6 .7 .95 (NaN dropped). ECDF = share of values <= x.
    # x = 0:   a 0,   b 0     -> 0
    # x = .5:  a 2/3, b 0     -> -2/3 (b's tasks lie to the right)
    # x = .7:  a 2/3, b 2/3   -> 0
    # x = 1:   a 1,   b 1     -> 0
    out = ecdf_difference([0.1, 0.5, 0.9], [0.6, 0.7, 0.95, np.nan], [0.0, 0.5, 0.7, 1.0])
    assert out["ecdf_a"].tolist() == pytest.approx([0, 2 / 3, 2 / 3, 1])
    assert out["ecdf_b"].tolist() == pytest.approx([0, 0, 2 / 3, 1])
    assert out["difference"].tolist() == pytest.approx([0, -2 / 3, 0, 0])
    default = ecdf_difference([0.5], [0.5])
    assert len(default) == 101 and default["value"].iloc[-1] == 1.0
    assert math.isnan(ecdf_difference([], [0.5], [0.5])["ecdf_a"].iloc[0])
    for grid in ([[0.0, 1.0]], [0.0, np.inf]):
        with pytest.raises(EvaluationError, match="grid must be a 1-D array of finite values"):
            ecdf_difference([0.5], [0.5], grid)


def test_benefit_summary_from_tables() -> None:
    a, b = _tables()
    s = benefit_summary(a, b, "classification", metrics=("roc_auc", "rmse"))
    assert s.n_tasks == 4  # task 4 has aggregation weight 0
    with pytest.raises(EvaluationError, match="per_task_b lists a task_id more than once"):
        benefit_summary(a, pd.concat([b, b.iloc[:1]]), "classification", metrics=("roc_auc",))
    with pytest.raises(EvaluationError, match="unknown task_type 'binary'; valid: classification"):
        benefit_summary(a, b, "binary")  # type: ignore[arg-type]
    auc = s.metrics[0]
    assert auc.metric == "roc_auc" and auc.n_tasks == 4
    # Deltas over tasks 0-3: .1, .5, 0, -.1
    assert auc.mean_delta == pytest.approx(0.125)
    assert auc.median_delta == pytest.approx(0.05)
    assert auc.mean_a == pytest.approx(0.7) and auc.mean_b == pytest.approx(0.825)
    assert auc.mean_improve_to_perfect == pytest.approx((0.5 + 0.5 + 0.0 - 0.1) / 4)
    assert auc.share_tasks_better == pytest.approx(0.5)
    rmse = s.metrics[1]
    # RMSE deltas: -.5, 0, -1, 0 -> better (lower) on 2 of 4.
    assert rmse.mean_delta == pytest.approx(-0.375) and rmse.share_tasks_better == 0.5
    assert s.significance is None
    # Bootstrap interval of the mean over the 4 tasks: inside [min, max] delta, around the mean.
    lo, hi = auc.mean_delta_ci95
    assert -0.1 <= lo < 0.125 < hi <= 0.5
    text = s.model_dump_json()
    assert "task_id" not in text  # aggregates only
    assert BenefitSummary.model_validate_json(text) == s


def test_bootstrap_mean_ci() -> None:
    rng = np.random.default_rng(3)
    d = rng.normal(0.02, 0.05, size=400)
    lo, hi = bootstrap_mean_ci(d)
    # Normal theory: mean ± 1.96 sd/sqrt(n); the bootstrap agrees to within a few percent.
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert lo == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert hi == pytest.approx(d.mean() + half, abs=0.1 * half)
    assert bootstrap_mean_ci(d) == (lo, hi)  # fixed seed: reproducible
    narrow = bootstrap_mean_ci(d, level=0.5)
    assert narrow is not None and lo < narrow[0] < narrow[1] < hi
    assert bootstrap_mean_ci(np.array([0.1, np.nan])) is None
    assert bootstrap_mean_ci(np.array([0.1, 0.1, 0.1])) == pytest.approx((0.1, 0.1))
    with pytest.raises(EvaluationError):
        bootstrap_mean_ci(d, level=1.0)


def test_benefit_summary_end_to_end_with_significance() -> None:
    rng = np.random.default_rng(7)
    n_rows, n_tasks = 400, 5
    labels = np.where(rng.random((n_rows, n_tasks)) < 0.3, 1.0, -1.0)
    y = sp.csr_matrix(np.where(rng.random((n_rows, n_tasks)) < 0.6, labels, 0.0))
    local = np.clip(0.7 * rng.random((n_rows, n_tasks)) + 0.3 * (labels > 0), 0, 1)
    federated = np.clip(0.3 * rng.random((n_rows, n_tasks)) + 0.7 * (labels > 0), 0, 1)
    ra = evaluate_tasks(y, local, "classification")
    rb = evaluate_tasks(y, federated, "classification")
    sig = significant_improvement_share(y, local, federated)
    s = benefit_summary(ra.per_task, rb.per_task, "classification", significance=sig)
    assert [m.metric for m in s.metrics] == ["roc_auc", "auc_pr", "auc_pr_cal"]
    assert all(m.mean_delta is not None and m.mean_delta > 0 for m in s.metrics)
    assert s.metrics[0].mean_delta == pytest.approx(
        rb.aggregate["roc_auc"] - ra.aggregate["roc_auc"]
    )
    assert s.significance is not None
    assert s.significance.share_improved == 1.0 and s.significance.n_tasks_tested == 5
    # The document is valid JSON without NaN and passes its own schema model.
    json.loads(json.dumps(s.model_dump(mode="json"), allow_nan=False))
    reg = benefit_summary(
        ra.per_task.assign(r2=0.1, rmse=1.0), rb.per_task.assign(r2=0.2, rmse=0.9), "regression"
    )
    assert [m.metric for m in reg.metrics] == ["r2", "rmse"]


def test_schema_model_renders() -> None:
    assert {"benefit_summary": BenefitSummary} == SCHEMA_MODELS
    schema = json.loads(render_schema(BenefitSummary))
    assert schema["title"] == "BenefitSummary"
    assert {"MetricBenefit", "SignificanceSummary"} <= set(schema["$defs"])
