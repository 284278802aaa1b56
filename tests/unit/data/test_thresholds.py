"""Thresholds and censor-aware labels (TUNER §1.10), every branch by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.params import TaskParams
from pharmafl.data import class_labels, make_classification_tasks

P = TaskParams()
L2 = math.log10(2.0)


def _tasks(res, assay: int) -> list[tuple[float, str]]:
    t = res.t3c[res.t3c.input_assay_id == assay]
    return [
        (round(float(a), 6), str(b)) for a, b in zip(t.threshold, t.threshold_method, strict=True)
    ]


def _labels(res, assay: int, threshold: float) -> dict[int, int]:
    tid = res.t3c[
        (res.t3c.input_assay_id == assay) & np.isclose(res.t3c.threshold, threshold)
    ].classification_task_id.item()
    t4 = res.t4c[res.t4c.classification_task_id == tid]
    return dict(zip(t4.descriptor_vector_id, t4.class_label.astype(int), strict=True))


@pytest.mark.parametrize(
    ("qual", "value", "high", "low"),
    [
        ("=", 7.0, 1, -1),
        ("=", 6.0, 1, 1),  # on the threshold: active either way
        ("=", 5.0, -1, 1),
        ("<", 5.0, -1, 1),
        ("<", 6.0, -1, 1),  # "< t": inactive (high); active (low)
        ("<", 7.0, None, None),  # "< 7" could be either side of 6 (high); ambiguous (low)
        (">", 7.0, 1, -1),
        (">", 6.0, 1, -1),  # "> t": active (high); inactive (low)
        (">", 5.0, None, None),
    ],
)
def test_censor_aware_labels(qual, value, high, low) -> None:
    for is_low, want in ((False, high), (True, low)):
        got = class_labels(
            np.array([value]), np.array([qual], dtype=object), np.array([6.0]), np.array([is_low])
        )[0]
        if want is None:
            assert np.isnan(got), (qual, value, is_low)
        else:
            assert got == want, (qual, value, is_low)


def test_low_direction_ambiguity_is_mirrored() -> None:
    # direction low, t = 6: "> 5" may be below 6 → ambiguous; "< 7" may be above → ambiguous
    got = class_labels(
        np.array([5.0, 7.0, 7.0, 5.0]),
        np.array([">", "<", ">", "<"], dtype=object),
        np.full(4, 6.0),
        np.ones(4, dtype=bool),
    )
    assert np.isnan(got[0]) and np.isnan(got[1]) and got[2] == -1 and got[3] == 1


def test_more_than_three_experts_are_used_alone(make_t0_upd, make_t4r) -> None:
    t0 = make_t0_upd(
        [
            {
                "input_assay_id": 1,
                "expert_threshold_1": 5.0,
                "expert_threshold_2": 6.0,
                "expert_threshold_3": 7.0,
                "expert_threshold_4": 8.0,
            }
        ]
    )
    res = make_classification_tasks(t0, make_t4r(1, [("=", 6.5), ("=", 4.0)]), P)
    assert _tasks(res, 1) == [(5.0, "expert"), (6.0, "expert"), (7.0, "expert"), (8.0, "expert")]
    assert not res.t3c.is_auxiliary.any()


def test_one_to_three_experts_get_the_sandwich(make_t0_upd, make_t4r) -> None:
    t0 = make_t0_upd([{"input_assay_id": 1, "expert_threshold_1": 6.0, "expert_threshold_3": 5.0}])
    t4r = make_t4r(1, [("=", 6.5), ("=", 4.0)])
    res = make_classification_tasks(t0, t4r, P)
    assert _tasks(res, 1) == [(4.5, "aux_low"), (5.0, "expert"), (6.0, "expert"), (6.5, "aux_high")]
    assert res.t3c.is_auxiliary.tolist() == [True, False, False, True]
    assert res.t3c.classification_task_id.tolist() == [1, 2, 3, 4]
    assert _labels(res, 1, 6.5) == {0: 1, 1: -1}
    off = make_classification_tasks(t0, t4r, TaskParams(aux_sandwich=False))
    assert _tasks(off, 1) == [(5.0, "expert"), (6.0, "expert")]


def test_adaptive_ladder_takes_the_first_threshold_with_20pc_and_quorum(
    make_t0_upd, make_t4r
) -> None:
    # 10 at 8.5, 20 at 7.5, 70 at 5.0: t=8 gives 10 % actives; t=7 gives 30 / 70 → 7.0
    recs = [("=", 8.5)] * 10 + [("=", 7.5)] * 20 + [("=", 5.0)] * 70
    res = make_classification_tasks(make_t0_upd([{"input_assay_id": 1}]), make_t4r(1, recs), P)
    assert _tasks(res, 1) == [(6.5, "aux_low"), (7.0, "fixed_adaptive"), (7.5, "aux_high")]
    # 24 actives at 8 is below the quorum even though ≥ 20 %: the ladder moves on to 7
    recs = [("=", 8.5)] * 24 + [("=", 7.5)] * 6 + [("=", 5.0)] * 70
    res = make_classification_tasks(make_t0_upd([{"input_assay_id": 1}]), make_t4r(1, recs), P)
    assert _tasks(res, 1)[1] == (7.0, "fixed_adaptive")
    # censored records that are ambiguous at a rung are not counted
    recs = [("<", 9.0)] * 30 + [("=", 8.5)] * 25 + [("=", 5.0)] * 70
    res = make_classification_tasks(make_t0_upd([{"input_assay_id": 1}]), make_t4r(1, recs), P)
    assert _tasks(res, 1)[1] == (8.0, "fixed_adaptive")
    assert len(res.ambiguous) == 30 * 3  # "< 9" is ambiguous at 7.5, 8 and 8.5


def test_median_fallback_shifts_censored_values(make_t0_upd, make_t4r) -> None:
    # too few records for any rung's quorum → median of shifted values
    recs = [("=", 4.0), ("=", 6.0), ("<", 5.0)]  # shifted: 4, 6, 5 - log10(2) = 4.699
    res = make_classification_tasks(make_t0_upd([{"input_assay_id": 1}]), make_t4r(1, recs), P)
    med = 5.0 - L2
    assert _tasks(res, 1) == [
        (round(med - 0.5, 6), "aux_low"),
        (round(med, 6), "median"),
        (round(med + 0.5, 6), "aux_high"),
    ]
    recs = [("=", 4.0), ("=", 6.0), (">", 5.0), (">", 7.0)]  # 4, 5.301, 6, 7.301 → 5.6505
    res = make_classification_tasks(make_t0_upd([{"input_assay_id": 1}]), make_t4r(1, recs), P)
    assert _tasks(res, 1)[1] == (round((5.0 + L2 + 6.0) / 2, 6), "median")


def test_dose_response_direction_low_labels_are_mirrored(make_t0_upd, make_t4r) -> None:
    t0 = make_t0_upd([{"input_assay_id": 1, "direction": "low", "expert_threshold_1": 6.0}])
    recs = [("=", 5.0), ("=", 7.0), ("<", 5.0), (">", 5.0), ("=", 6.0), (">", 6.0)]
    res = make_classification_tasks(t0, make_t4r(1, recs), TaskParams(aux_sandwich=False))
    assert _labels(res, 1, 6.0) == {0: 1, 1: -1, 2: 1, 4: 1, 5: -1}
    assert res.ambiguous.descriptor_vector_id.tolist() == [3]
    assert res.t3c.direction.tolist() == ["low"]


def test_ladder_counts_with_direction_high_as_tuner(make_t0_upd, make_t4r) -> None:
    # TUNER chooses the rung with direction high even for a "low" assay
    recs = [("=", 8.5)] * 10 + [("=", 7.5)] * 20 + [("=", 5.0)] * 70
    res = make_classification_tasks(
        make_t0_upd([{"input_assay_id": 1, "direction": "low"}]), make_t4r(1, recs), P
    )
    assert _tasks(res, 1)[1] == (7.0, "fixed_adaptive")
    labels = _labels(res, 1, 7.0)
    assert sum(v == 1 for v in labels.values()) == 70  # low values are active


def test_adme_median_and_quartile(make_t0_upd, make_t4r) -> None:
    recs = [("=", 1.0), ("=", 2.0), ("=", 3.0), ("=", 4.0), ("=", 5.0), ("<", 100.0)]
    t0 = make_t0_upd(
        [
            {"input_assay_id": 1, "assay_type": "ADME", "direction": "high"},
            {"input_assay_id": 2, "assay_type": "ADME", "direction": "low"},
            {"input_assay_id": 3, "assay_type": "ADME", "direction": None},
            {"input_assay_id": 4, "assay_type": "ADME"},  # one uncensored value only
            {"input_assay_id": 5, "assay_type": "ADME", "expert_threshold_1": 2.5},
            {"input_assay_id": 6, "assay_type": "ADME"},  # median == quartile
        ]
    )
    t4r = pd.concat(
        [
            make_t4r(1, recs),
            make_t4r(2, recs),
            make_t4r(3, recs),
            make_t4r(4, [("=", 1.0), ("<", 2.0)]),
            make_t4r(5, recs),
            make_t4r(6, [("=", 1.0), ("=", 2.0), ("=", 2.0), ("=", 2.0)]),
        ],
        ignore_index=True,
    )
    res = make_classification_tasks(t0, t4r, P)
    assert _tasks(res, 1) == [(3.0, "median"), (4.0, "quartile")]
    assert _tasks(res, 2) == [(2.0, "quartile"), (3.0, "median")]
    assert _tasks(res, 3) == [(3.0, "median"), (4.0, "quartile")]  # unset → upper quartile
    assert _tasks(res, 4) == []
    assert _tasks(res, 5) == [(2.5, "expert")]  # experts, no sandwich for ADME
    assert _tasks(res, 6) == [(2.0, "median")]
    assert res.no_task_assays.tolist() == [4]
    assert not res.t3c.is_auxiliary.any()


def test_aux_hts_global_threshold_by_direction(make_t0_upd, make_t4r) -> None:
    recs = [("=", 3.5), ("=", -3.5), ("=", 0.0), ("<", 3.0), ("=", -3.0)]
    t0 = make_t0_upd(
        [
            {
                "input_assay_id": i,
                "assay_type": "AUX_HTS",
                "direction": d,
                "use_in_regression": False,
            }
            for i, d in ((1, "high"), (2, "low"), (3, None))
        ]
    )
    t4r = pd.concat([make_t4r(i, recs) for i in (1, 2, 3)], ignore_index=True)
    res = make_classification_tasks(t0, t4r, P)
    assert _tasks(res, 1) == [(3.0, "fixed")]
    assert _tasks(res, 2) == [(-3.0, "fixed")]
    assert _labels(res, 1, 3.0) == {0: 1, 1: -1, 2: -1, 3: 1, 4: -1}  # qualifiers ignored
    assert _labels(res, 2, -3.0) == {0: -1, 1: 1, 2: -1, 3: -1, 4: 1}
    assert _labels(res, 3, 3.0) == {0: 1, 1: 1, 2: -1, 3: 1, 4: 1}
    assert res.t3c.is_auxiliary.all() and len(res.ambiguous) == 0


def test_binary_values_are_the_labels(make_t0_upd, make_t4r) -> None:
    t0 = make_t0_upd([{"input_assay_id": 1, "is_binary": True, "expert_threshold_1": 6.0}])
    res = make_classification_tasks(t0, make_t4r(1, [("=", 1.0), ("=", -1.0)]), P)
    assert _tasks(res, 1) == [(0.0, "expert")]
    assert _labels(res, 1, 0.0) == {0: 1, 1: -1}
    assert res.t4c.class_label.dtype == np.int8


def test_assays_failing_variance_get_no_task_and_ids_follow_assay_then_threshold(
    make_t0_upd, make_t4r
) -> None:
    t0 = make_t0_upd(
        [
            {"input_assay_id": 9, "expert_threshold_1": 6.0},
            {"input_assay_id": 2, "expert_threshold_1": 7.0},
            {"input_assay_id": 5, "expert_threshold_1": 5.0},
        ]
    )
    t0.loc[t0.input_assay_id == 5, "variance_quorum_OK"] = False
    t4r = pd.concat([make_t4r(9, [("=", 6.0)]), make_t4r(2, [("=", 6.0)], dv0=1)])
    res = make_classification_tasks(t0, t4r, P)
    assert res.t3c[["classification_task_id", "input_assay_id", "threshold"]].values.tolist() == [
        [1, 2, 6.5],
        [2, 2, 7.0],
        [3, 2, 7.5],
        [4, 9, 5.5],
        [5, 9, 6.0],
        [6, 9, 6.5],
    ]
    assert 5 not in res.t3c.input_assay_id.tolist()
