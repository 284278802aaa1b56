"""What a partner reports for a contribution-study coalition: its gain and, from enough
tasks only, the gain's standard error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pharmafl.contract import GAIN_SE_MIN_TASKS
from pharmafl.evaluation import MetricsReport, SplitMetrics, TaskTypeMetrics
from pharmafl.partner.federated import _test_gain


def _report(scores: dict[int, float]) -> MetricsReport:
    rows = [{"task_id": t, "auc_pr": v, "aggregation_weight": 1} for t, v in scores.items()]
    mean = float(np.mean(list(scores.values())))
    part = TaskTypeMetrics(task_type="classification", aggregate={"auc_pr": mean}, per_task=rows)
    split = SplitMetrics(folds=[0], n_rows=10, classification=part)
    return MetricsReport(model_name="x", fold_va=1, fold_te=0, epochs_trained=1, test=split)


@pytest.mark.parametrize("n", [2, GAIN_SE_MIN_TASKS - 1, GAIN_SE_MIN_TASKS, 12])
def test_a_gains_error_is_reported_only_from_enough_tasks(n: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(n)
    local = {t: float(x) for t, x in enumerate(rng.uniform(0.2, 0.6, n))}
    fed = {
        t: x + float(d) for (t, x), d in zip(local.items(), rng.normal(0.02, 0.03, n), strict=True)
    }
    gain, se = _test_gain(_report(local), _report(fed), tmp_path)
    diffs = np.array([fed[t] - local[t] for t in local])
    assert gain == pytest.approx(diffs.mean(), abs=1e-6)
    if n < GAIN_SE_MIN_TASKS:  # with two, gain ± se would be the two per-task gains
        assert se is None
    else:
        assert se == pytest.approx(diffs.std(ddof=1) / math.sqrt(n), abs=1e-6)
