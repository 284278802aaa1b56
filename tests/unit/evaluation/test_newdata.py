"""Scoring models on new measurements: statuses, means, comparisons, never a bare NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from pharmafl.evaluation import (
    LabelQuorum,
    ModelPredictions,
    NewLabels,
    TaskRef,
    score_new_data,
)


def _labels(n: int = 60, seed: int = 0) -> tuple[NewLabels, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    cls = np.where(rng.random((n, 4)) < 0.5, 1.0, -1.0)
    cls[:, 2] = 0.0
    cls[:3, 2] = 1.0  # task 2: 3 actives, no inactive
    cls[rng.random((n, 4)) < 0.2] = 0.0
    y_cls = sp.csr_matrix(cls)
    y_cls.eliminate_zeros()
    values = rng.normal(6, 1, (n, 1))
    y_reg = sp.csr_matrix(values)
    censor = sp.csr_matrix((np.zeros(n), y_reg.nonzero()), shape=y_reg.shape)
    cls_tasks = [
        TaskRef(task=f"A{j} >=6 (cls)", assay_id=f"A{j}", kind="classification", threshold=6.0)
        for j in range(3)
    ] + [TaskRef("A3 >=7 (cls)", "A3", "classification", 7.0, "high", is_auxiliary=True)]
    reg_tasks = [TaskRef(task="A0 (reg)", assay_id="A0", kind="regression")]
    labels = NewLabels(y_cls, y_reg, censor, cls_tasks, reg_tasks)
    return labels, cls, values


def _models(cls: np.ndarray, values: np.ndarray) -> list[ModelPredictions]:
    rng = np.random.default_rng(1)
    noise = rng.random(cls.shape)
    local = np.clip(0.3 * (cls > 0) + 0.7 * noise, 0, 1)
    fed = np.clip(0.8 * (cls > 0) + 0.2 * noise, 0, 1)
    return [
        ModelPredictions(
            "local", "m/local", "local", local, values + rng.normal(0, 1, values.shape)
        ),
        ModelPredictions(
            "federated", "m/fed", "local", fed, values + rng.normal(0, 0.2, values.shape)
        ),
    ]


def test_tasks_are_scored_or_say_why_not() -> None:
    labels, cls, values = _labels()
    scores = score_new_data(labels, _models(cls, values), resamples=200)
    by_task = {t.task: t for t in scores.tasks}
    assert set(by_task) == {
        "A0 >=6 (cls)",
        "A1 >=6 (cls)",
        "A2 >=6 (cls)",
        "A3 >=7 (cls)",
        "A0 (reg)",
    }
    few = by_task["A2 >=6 (cls)"]
    assert few.status == "too_few_labels" and few.scores == {}
    assert few.note == "not scored: 3 actives and 0 inactives, needs ≥ 5 and ≥ 5"
    assert by_task["A3 >=7 (cls)"].status == "auxiliary"
    scored = by_task["A0 >=6 (cls)"]
    assert scored.status == "scored" and scored.assay_id == "A0" and scored.threshold == 6.0
    assert set(scored.scores) == {"local", "federated"}
    assert scored.scores["federated"]["roc_auc"] > scored.scores["local"]["roc_auc"]
    local = scores.models[0]
    assert local.classification is not None and local.classification.n_tasks == 2  # not aux
    assert local.regression is not None and local.regression.n_tasks == 1
    assert "NaN" not in scores.model_dump_json() and "nan" not in json.dumps(
        scores.model_dump(mode="json")
    )


def test_federated_minus_local_has_intervals_over_tasks_and_compounds() -> None:
    labels, cls, values = _labels(n=120)
    scores = score_new_data(labels, _models(cls, values), resamples=300)
    kinds = {c.task_type: c for c in scores.comparisons}
    c = kinds["classification"]
    assert (c.baseline, c.compared) == ("local", "federated")
    roc = c.over_tasks.metric("roc_auc")
    assert roc is not None and roc.n_tasks == 2 and roc.mean_delta is not None
    assert roc.mean_delta_ci95 is not None and roc.mean_delta_ci95[0] > 0
    comp = {i.metric: i for i in c.over_compounds}["roc_auc"]
    assert comp.n_tasks == 2 and comp.n_compounds > 50 and comp.resamples == 300
    assert comp.ci95 is not None and comp.ci95[0] > 0
    assert comp.mean_delta == pytest.approx(roc.mean_delta)  # one difference, two intervals
    assert c.over_tasks.significance is not None  # DeLong per task, BY-corrected
    assert c.note == "only 2 scored tasks: the interval over tasks is rough"
    reg = kinds["regression"]
    assert reg.over_tasks.n_tasks == 1 and reg.note == "fewer than 2 scored tasks: no interval"


def test_no_scorable_task_says_what_it_needs() -> None:
    labels, cls, values = _labels(n=8)
    scores = score_new_data(
        labels, _models(cls, values), quorum=LabelQuorum(min_actives=50), resamples=10
    )
    agg = scores.models[0].classification
    assert agg is not None and agg.n_tasks == 0 and agg.means["roc_auc"] is None
    assert agg.note is not None and "≥ 50 actives" in agg.note
    assert all(t.status == "too_few_labels" for t in scores.tasks if t.kind == "classification")


def test_without_the_baseline_nothing_is_compared() -> None:
    labels, cls, values = _labels()
    scores = score_new_data(labels, _models(cls, values)[1:], resamples=10)
    assert scores.comparisons == [] and len(scores.models) == 1
