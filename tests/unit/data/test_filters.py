"""Quorums and weights (TUNER §1.11–1.12) on hand-built tasks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.params import ClassificationQuorum, TaskParams
from pharmafl.data import (
    censored_weight,
    filter_classification,
    filter_regression,
    make_classification_tasks,
)

P = TaskParams()
NOSW = TaskParams(aux_sandwich=False)
_dv = iter(range(10**9))


def _recs(assay: int, spec: list[tuple[str, float, int, int]]) -> pd.DataFrame:
    """Records from (qualifier, value, fold, count) blocks; fresh descriptor vectors."""
    rows = [(assay, next(_dv), fold, q, v) for q, v, fold, k in spec for _ in range(k)]
    return pd.DataFrame(
        rows,
        columns=[
            "input_assay_id",
            "descriptor_vector_id",
            "fold_id",
            "standard_qualifier",
            "standard_value",
        ],
    )


def _cls(t0, t4r, params=P, nfolds=2):
    thr = make_classification_tasks(t0, t4r, params)
    return filter_classification(thr.t3c, thr.t4c, params, nfolds)


def _row(t8, assay: int, threshold: float | None = None) -> pd.Series:
    sel = t8.input_assay_id == assay
    if threshold is not None:
        sel &= np.isclose(t8.threshold, threshold)
    assert sel.sum() == 1
    return t8[sel].iloc[0]


def test_classification_training_quorum_and_weight_division(make_t0_upd) -> None:
    t0 = make_t0_upd([{"input_assay_id": a, "expert_threshold_1": 6.0} for a in (1, 2, 3)])
    t4r = pd.concat(
        [
            _recs(1, [("=", 7.0, 0, 13), ("=", 7.0, 1, 12), ("=", 5.0, 0, 12), ("=", 5.0, 1, 13)]),
            _recs(2, [("=", 7.0, 0, 12), ("=", 7.0, 1, 12), ("=", 5.0, 0, 13), ("=", 5.0, 1, 12)]),
            # 6.5 (aux_high) has no active → only 5.5 and 6.0 are trained
            _recs(3, [("=", 6.2, 0, 13), ("=", 6.2, 1, 12), ("=", 5.0, 0, 13), ("=", 5.0, 1, 12)]),
        ],
        ignore_index=True,
    )
    t8c, t10c, filtered = _cls(t0, t4r)
    a1 = t8c[t8c.input_assay_id == 1]
    assert a1.training_quorum_OK.all() and np.allclose(a1.weight, 1 / 3)
    assert a1.aggregation_weight.tolist() == [0.0, 1.0, 0.0]  # aux tasks never aggregate
    assert (a1.n_tasks == 3).all()
    assert not t8c[t8c.input_assay_id == 2].training_quorum_OK.any()  # 24 actives
    assert t8c[t8c.input_assay_id == 2].cont_classification_task_id.isna().all()
    assert set(filtered.input_assay_id) == {2, 3}
    a3 = t8c[t8c.input_assay_id == 3]
    assert a3.training_quorum_OK.tolist() == [True, True, False]
    assert np.allclose(a3.weight.iloc[:2], 0.5) and np.isnan(a3.weight.iloc[2])
    assert _row(t8c, 3, 6.0).num_total_actives == 25 and _row(t8c, 3, 6.5).num_total_actives == 0
    # continuous ids in classification_task_id order, only for trained tasks
    trained = t8c[t8c.training_quorum_OK]
    assert trained.cont_classification_task_id.tolist() == list(range(5))
    assert sorted(t10c.cont_classification_task_id.unique()) == list(range(5))
    assert set(t10c.class_label.unique()) == {-1, 1}
    # per assay, training weights sum to the initial weight
    assert np.allclose(trained.groupby("input_assay_id").weight.sum(), 1.0)


@pytest.mark.parametrize(("fold1_actives", "ok"), [(10, True), (9, False)])
def test_evaluation_quorum_needs_10_per_fold(make_t0_upd, fold1_actives, ok) -> None:
    t0 = make_t0_upd([{"input_assay_id": 1, "expert_threshold_1": 6.0}])
    t4r = _recs(
        1,
        [
            ("=", 7.0, 0, 25 - fold1_actives + 5),
            ("=", 7.0, 1, fold1_actives),
            ("=", 5.0, 0, 15),
            ("=", 5.0, 1, 10),
        ],
    )
    t8c, _, _ = _cls(t0, t4r, NOSW)
    r = _row(t8c, 1)
    assert r.num_fold_min_actives == fold1_actives and r.num_fold_min_inactives == 10
    assert bool(r.training_quorum_OK) and bool(r.evaluation_quorum_OK) is ok
    assert r.aggregation_weight == (1.0 if ok else 0.0)


def test_a_fold_without_records_fails_evaluation(make_t0_upd) -> None:
    t0 = make_t0_upd([{"input_assay_id": 1, "expert_threshold_1": 6.0}])
    t4r = _recs(1, [("=", 7.0, 0, 30), ("=", 5.0, 0, 30)])
    t8c, _, _ = _cls(t0, t4r, NOSW, nfolds=3)
    r = _row(t8c, 1)
    assert bool(r.training_quorum_OK) and not bool(r.evaluation_quorum_OK)
    assert r.num_fold_min_actives == 0


def test_aux_hts_quorum_and_initial_weight(make_t0_upd) -> None:
    t0 = make_t0_upd(
        [
            {
                "input_assay_id": 1,
                "assay_type": "AUX_HTS",
                "direction": "high",
                "use_in_regression": False,
            }
        ]
    )
    t4r = _recs(1, [("=", 4.0, 0, 10), ("=", 4.0, 1, 10), ("=", 0.0, 0, 20), ("=", 0.0, 1, 20)])
    t8c, _, _ = _cls(t0, t4r)
    assert not _row(t8c, 1).training_quorum_OK  # 10 000 inactives needed
    loose = TaskParams(
        classification_quorum={
            "AUX_HTS": ClassificationQuorum(num_active_total=10, num_inactive_total=10)
        }
    )
    t8c, _, _ = _cls(t0, t4r, loose)
    r = _row(t8c, 1)
    assert bool(r.training_quorum_OK) and r.weight == pytest.approx(0.1)
    assert r.aggregation_weight == 0.0 and bool(r.is_auxiliary)


def test_catalog_tasks_use_the_catalog_quorum_or_are_demoted(make_t0_upd) -> None:
    t0 = make_t0_upd(
        [
            {
                "input_assay_id": 1,
                "assay_type": "CATALOG-PANEL",
                "catalog_assay_id": 77,
                "expert_threshold_1": 6.0,
            },
            {"input_assay_id": 2, "assay_type": "CATALOG-PANEL", "expert_threshold_1": 6.0},
        ]
    )
    spec = [("=", 7.0, 0, 10), ("=", 7.0, 1, 10), ("=", 5.0, 0, 190), ("=", 5.0, 1, 190)]
    t4r = pd.concat([_recs(1, spec), _recs(2, spec)], ignore_index=True)
    t8c, _, _ = _cls(t0, t4r, NOSW)
    r = _row(t8c, 1)  # 400 labels ≥ 400 → trained although only 20 actives
    assert bool(r.training_quorum_OK) and r.assay_type == "CATALOG-PANEL"
    assert pd.isna(r.catalog_check_INFO) and bool(r.evaluation_quorum_OK)
    r2 = _row(t8c, 2)  # no catalogue id → demoted, 20 actives < 25
    assert r2.catalog_check_INFO == "missing_ref_task" and r2.assay_type == "NON-CATALOG-PANEL"
    assert not r2.training_quorum_OK
    strict = TaskParams(aux_sandwich=False, catalog_num_total=401)
    t8c, _, _ = _cls(t0, t4r, strict)
    r = _row(t8c, 1)
    assert r.catalog_check_INFO == "failed_quorum" and r.assay_type == "NON-CATALOG-PANEL"
    assert not r.training_quorum_OK


def test_censored_weight_formula() -> None:
    w = censored_weight(np.array([0.0, 0.05, 0.5, 1.0]), 0.05)
    assert w[:2].tolist() == [1.0, 1.0]  # f ≤ b → 1
    assert w[2] == pytest.approx(0.05 * 0.5 / (0.5 * 0.95)) and round(w[2], 4) == 0.0526
    assert w[3] == 0.0


def _reg_t0(make_t0_upd):
    return make_t0_upd(
        [
            {"input_assay_id": 1},
            {"input_assay_id": 2},
            {"input_assay_id": 3},
            {"input_assay_id": 4},
            {"input_assay_id": 5},
            {"input_assay_id": 6, "assay_type": "ADME"},
            {"input_assay_id": 7, "is_binary": True},
            {"input_assay_id": 8, "use_in_regression": False},
            {"input_assay_id": 9, "assay_type": "CATALOG-PANEL", "catalog_assay_id": 3},
            {"input_assay_id": 10, "assay_type": "AUX_HTS"},
            {"input_assay_id": 11},
        ]
    )


def _spread(q: str, fold: int, n: int, centre: float = 6.0, width: float = 2.0):
    return [(q, v, fold, 1) for v in np.linspace(centre - width, centre + width, n)]


def test_regression_quorums_weights_and_std_filter(make_t0_upd) -> None:
    t4r = pd.concat(
        [
            _recs(1, _spread("=", 0, 13) + _spread("=", 1, 12) + _spread("<", 0, 25)),
            _recs(2, _spread("=", 0, 25) + _spread("=", 1, 24)),  # 49 values
            _recs(3, _spread("=", 0, 12) + _spread("=", 1, 12) + _spread(">", 1, 26)),  # 24 '='
            _recs(4, _spread("=", 0, 29) + _spread("=", 1, 29) + _spread("<", 1, 2)),
            _recs(5, _spread("=", 0, 30, width=0.1) + _spread("=", 1, 30, width=0.1)),
            _recs(6, _spread("=", 0, 30, width=0.1) + _spread("=", 1, 30, width=0.1)),
            _recs(7, [("=", 1.0, 0, 30), ("=", -1.0, 1, 30)]),
            _recs(8, _spread("=", 0, 30) + _spread("=", 1, 30)),
            _recs(9, _spread("=", 0, 30) + _spread("=", 1, 30)),
            _recs(10, _spread("=", 0, 30) + _spread("=", 1, 30)),
            _recs(11, _spread("=", 0, 36) + _spread("=", 1, 24)),
        ],
        ignore_index=True,
    )
    t8r, t10r, filtered = filter_regression(_reg_t0(make_t0_upd), t4r, P, 2)
    assert t8r.input_assay_id.tolist() == [1, 2, 3, 4, 5, 6, 9, 10, 11]  # no binary, no 8
    ok = dict(zip(t8r.input_assay_id, t8r.training_quorum_OK, strict=True))
    assert ok == {
        1: True,
        2: False,
        3: False,
        4: True,
        5: True,
        6: True,
        9: True,
        10: True,
        11: True,
    }
    r1 = _row(t8r, 1)
    assert r1.fraction_censored == 0.5 and r1.censored_weight == pytest.approx(0.0526315789)
    assert r1.num_uncensored_fold_min == 12 and not r1.evaluation_quorum_OK
    r4 = _row(t8r, 4)
    assert r4.censored_weight == 1.0 and bool(r4.evaluation_quorum_OK)
    assert r4.aggregation_weight == 1.0 and r4.num_censored_total == 2
    r5, r6 = _row(t8r, 5), _row(t8r, 6)
    assert not r5.evaluation_stdv_quorum_OK and r5.aggregation_weight == 0.0
    assert bool(r6.evaluation_stdv_quorum_OK) and r6.aggregation_weight == 1.0  # ADME exempt
    assert _row(t8r, 9).assay_type == "NON-CATALOG-PANEL"
    r10 = _row(t8r, 10)
    assert bool(r10.is_auxiliary) and r10.weight == pytest.approx(0.1)
    assert r10.aggregation_weight == 0.0
    assert not _row(t8r, 11).evaluation_quorum_OK  # 24 uncensored in fold 1
    trained = t8r[t8r.training_quorum_OK]
    assert trained.cont_regression_task_id.tolist() == list(range(7))
    assert set(filtered.input_assay_id) == {2, 3}
    assert t10r.groupby("cont_regression_task_id").size().tolist() == [50, 60, 60, 60, 60, 60, 60]
    assert list(t10r.columns) == [
        "input_assay_id",
        "descriptor_vector_id",
        "fold_id",
        "standard_qualifier",
        "standard_value",
        "cont_regression_task_id",
    ]


def test_empty_inputs_give_empty_tables(make_t0_upd) -> None:
    t0 = make_t0_upd([{"input_assay_id": 1}])
    empty = _recs(1, [])
    thr = make_classification_tasks(t0, empty, P)
    t8c, t10c, _ = filter_classification(thr.t3c, thr.t4c, P, 5)
    t8r, t10r, _ = filter_regression(t0, empty, P, 5)
    assert len(t8c) == len(t10c) == len(t8r) == len(t10r) == 0
