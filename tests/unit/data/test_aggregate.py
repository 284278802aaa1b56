"""Replicate aggregation, credibility ranges, variance filter and rounding (TUNER §1.9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.params import TaskParams
from pharmafl.data import aggregate_activities
from pharmafl.data.aggregate import low_variance_assays, map_qualifiers

P = TaskParams()


def _t1(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=["input_compound_id", "input_assay_id", "standard_qualifier", "standard_value"],
    )


def _t5(n: int, *, nfolds: int = 1, same: dict[int, int] | None = None) -> pd.DataFrame:
    """Compound i → descriptor vector i (or ``same[i]``), fold dv % nfolds."""
    dv = np.array([(same or {}).get(i, i) for i in range(n)], dtype=np.int64)
    return pd.DataFrame(
        {"input_compound_id": np.arange(n), "descriptor_vector_id": dv, "fold_id": dv % nfolds}
    )


def _spread(assay: int, start: int, values: list[float]) -> list[tuple[int, int, str, float]]:
    """Filler measurements (distinct compounds) so the variance filter passes."""
    return [(start + i, assay, "=", v) for i, v in enumerate(values)]


def _agg(t0: pd.DataFrame, t1: pd.DataFrame, n: int, same: dict[int, int] | None = None):
    # nfolds=1 and a spread of values keeps the variance filter out of the way
    return aggregate_activities(t0, t1, _t5(n, same=same), P, 1)


def _rec(res, assay: int, dv: int) -> tuple[str, float]:
    r = res.t4r[(res.t4r.input_assay_id == assay) & (res.t4r.descriptor_vector_id == dv)]
    assert len(r) == 1
    return str(r.standard_qualifier.iloc[0]), float(r.standard_value.iloc[0])


@pytest.mark.parametrize(
    ("reps", "expected"),
    [
        ([("=", 5.0), ("<", 7.0), (">", 6.0)], (">", 6.0)),  # "<" ignored when = or > exist
        ([("<", 5.0), ("<", 6.0)], ("<", 6.0)),  # only "<": plain maximum
        ([("=", 6.0), (">", 6.0)], ("=", 6.0)),  # tie on value: first record wins
        ([("<", 9.0), ("=", 4.0)], ("=", 4.0)),
    ],
)
def test_dose_response_takes_the_most_potent(make_t0, reps, expected) -> None:
    t0 = make_t0([{"input_assay_id": 1, "assay_type": "OTHER"}])
    t1 = _t1([(0, 1, q, v) for q, v in reps] + _spread(1, 1, [4.0, 5.0, 6.0]))
    res = _agg(t0, t1, 4)
    assert _rec(res, 1, 0) == expected


@pytest.mark.parametrize(
    ("reps", "expected"),
    [
        ([("=", 1.0), ("=", 2.0), ("<", 10.0)], ("=", 2.0)),
        ([("<", 1.0), ("<", 2.0), ("=", 3.0)], ("<", 2.0)),
        ([("=", 1.0), ("=", 2.0), ("<", 3.0), ("<", 4.0)], ("=", 2.5)),  # = wins a tie
        ([(">", 1.0), ("<", 2.0), (">", 3.0), ("=", 4.0), ("=", 5.0)], ("=", 3.0)),
        ([("=", 1.0), ("<", 2.0), (">", 3.0)], ("=", 2.0)),  # three-way tie → =
    ],
)
def test_adme_median_and_most_frequent_qualifier(make_t0, reps, expected) -> None:
    t0 = make_t0([{"input_assay_id": 7, "assay_type": "ADME"}])
    t1 = _t1([(0, 7, q, v) for q, v in reps] + _spread(7, 1, [0.5, 1.5, 2.5]))
    assert _rec(_agg(t0, t1, 4), 7, 0) == expected


def test_adme_tie_between_lt_and_gt_is_a_conflict(make_t0) -> None:
    t0 = make_t0([{"input_assay_id": 7, "assay_type": "ADME"}])
    t1 = _t1([(0, 7, "<", 1.0), (0, 7, ">", 2.0), *_spread(7, 1, [0.5, 1.5, 2.5])])
    res = _agg(t0, t1, 4)
    assert 0 not in res.t4r.descriptor_vector_id.tolist()
    rej = res.rejections[res.rejections.reason == "aggregation_conflict"]
    assert rej[["input_assay_id", "descriptor_vector_id"]].values.tolist() == [[7, 0]]
    assert res.counts["records_aggregation_conflict"] == 1


@pytest.mark.parametrize(
    ("values", "expected"), [([1, 1, -1], 1.0), ([1, -1], 1.0), ([-1, -1, 1], -1.0)]
)
def test_binary_majority_tie_gives_plus_one(make_t0, values, expected) -> None:
    t0 = make_t0([{"input_assay_id": 3, "is_binary": True, "use_in_regression": False}])
    t1 = _t1([(0, 3, "=", float(v)) for v in values] + _spread(3, 1, [1.0, -1.0, 1.0]))
    assert _rec(_agg(t0, t1, 4), 3, 0) == ("=", expected)


def test_direction_rules_for_catalog_and_aux(make_t0) -> None:
    t0 = make_t0(
        [
            {
                "input_assay_id": 1,
                "assay_type": "CATALOG-PANEL",
                "direction": "low",
                "catalog_assay_id": 100,
            },
            {"input_assay_id": 2, "assay_type": "AUX_HTS", "direction": None},
            {"input_assay_id": 3, "assay_type": "AUX_HTS", "direction": "high"},
        ]
    )
    t1 = _t1(
        [
            (0, 1, "=", 6.0),
            (0, 1, "<", 5.0),
            (0, 1, "=", 7.0),
            (0, 2, "=", 2.0),
            (0, 2, "=", -5.0),
            (0, 2, "=", 4.0),
            (0, 3, "<", 8.0),
            (0, 3, "=", -1.0),
            *_spread(1, 1, [4.0, 5.0]),
            *_spread(2, 1, [1.0, 2.0]),
            *_spread(3, 1, [1.0, 2.0]),
        ]
    )
    res = _agg(t0, t1, 3)
    assert _rec(res, 1, 0) == ("<", 5.0)  # low → minimum (qualifiers not screened)
    assert _rec(res, 2, 0) == ("=", -5.0)  # unset → largest |value|
    assert _rec(res, 3, 0) == ("=", -1.0)  # high → maximum ignoring "<"


def test_replicates_from_different_compounds_of_one_descriptor_vector(make_t0) -> None:
    t0 = make_t0([{"input_assay_id": 1}])
    t1 = _t1([(0, 1, "=", 5.0), (1, 1, "=", 6.5), *_spread(1, 2, [4.0, 7.0])])
    res = _agg(t0, t1, 4, same={1: 0})
    assert _rec(res, 1, 0) == ("=", 6.5)
    assert res.counts["records_aggregated"] == 3


def test_screening_reasons(make_t0) -> None:
    t0 = make_t0(
        [
            {"input_assay_id": 1, "assay_type": "OTHER"},
            {"input_assay_id": 2, "assay_type": "ADME"},
            {"input_assay_id": 3, "is_binary": True},
            {"input_assay_id": 4, "assay_type": "CATALOG-PANEL", "catalog_assay_id": 9},
        ]
    )
    t1 = _t1(
        [
            (0, 1, "=", 2.5),  # below 3
            (1, 1, "=", 10.5),  # above 10
            (2, 1, "=", np.nan),
            (3, 99, "=", 5.0),  # assay not in T0
            (4, 1, "??", 5.0),
            (5, 1, "=", 5.0),  # compound 5 failed standardization (not in T5)
            (6, 3, "=", 0.5),  # binary must be ±1
            (7, 4, "=", 11.0),  # catalogue range is applied too
            (8, 2, "=", 1e6),  # ADME: wide range → kept
            (9, 1, "=", 3.0),  # bounds inclusive
            (10, 1, "=", 10.0),
            (11, 2, "=", 2.0),
        ]
    )
    t5 = _t5(12).query("input_compound_id != 5")
    res = aggregate_activities(t0, t1, t5, P, 1)
    got = dict(
        zip(res.rejections.input_compound_id.astype(int), res.rejections.reason, strict=True)
    )
    assert got == {
        0: "out_of_range",
        1: "out_of_range",
        2: "missing_value",
        3: "unknown_assay",
        4: "unknown_qualifier",
        5: "failed_structure",
        6: "binary_value",
        7: "out_of_range",
    }
    assert set(res.rejections.step) == {"aggregate"}
    assert res.counts["measurements_rejected_out_of_range"] == 3
    assert res.counts["measurements_kept"] == 4


def test_qualifier_spellings_map_like_tuner() -> None:
    q = pd.Series(["<", "<=", "<<", ">", ">=", ">>", "=", "~", "", None, "x"])
    assert map_qualifiers(q).tolist()[:10] == ["<", "<", "<", ">", ">", ">", "=", "=", "=", "="]
    assert pd.isna(map_qualifiers(q).iloc[10])


def test_dose_response_values_rounded_to_two_decimals_adme_not(make_t0) -> None:
    t0 = make_t0([{"input_assay_id": 1}, {"input_assay_id": 2, "assay_type": "ADME"}])
    t1 = _t1([(0, 1, "=", 5.12345), (1, 1, "=", 6.0), (0, 2, "=", 1.23456), (1, 2, "=", 2.0)])
    res = _agg(t0, t1, 2)
    assert _rec(res, 1, 0) == ("=", 5.12)
    assert _rec(res, 2, 0) == ("=", 1.23456)


def test_variance_filter_per_fold(make_t0) -> None:
    t0 = make_t0(
        [
            {"input_assay_id": 1},  # varies in both folds → kept
            {"input_assay_id": 2},  # constant in fold 1 → dropped
            {"input_assay_id": 3},  # no record in fold 1 → dropped
            {"input_assay_id": 4, "assay_type": "CATALOG-PANEL", "catalog_assay_id": 5},
        ]
    )
    # compounds 0..3 → dv 0..3, folds 0,1,0,1
    t1 = _t1(
        [
            (0, 1, "=", 5.0),
            (1, 1, "=", 6.0),
            (2, 1, "=", 7.0),
            (3, 1, "=", 8.0),
            (0, 2, "=", 5.0),
            (1, 2, "=", 6.0),
            (2, 2, "=", 7.0),
            (3, 2, "=", 6.0),
            (0, 3, "=", 5.0),
            (2, 3, "=", 7.0),
            (0, 4, "=", 5.0),
            (1, 4, "=", 6.0),
            (2, 4, "=", 7.0),
            (3, 4, "=", 6.0),
        ]
    )
    res = aggregate_activities(t0, t1, _t5(4, nfolds=2), P, 2)
    assert sorted(res.t4r.input_assay_id.unique()) == [1, 4]
    upd = res.t0_upd.set_index("input_assay_id")
    assert upd.variance_quorum_OK.to_dict() == {1: True, 2: False, 3: False, 4: True}
    assert upd.use_in_regression.to_dict() == {1: True, 2: True, 3: True, 4: False}
    low = res.rejections[res.rejections.reason == "low_variance"]
    assert sorted(low.input_assay_id.unique()) == [2, 3] and len(low) == 6
    assert res.counts["assays_low_variance_catalog_kept"] == 1


def test_low_variance_threshold_is_inclusive() -> None:
    t4r = pd.DataFrame(
        {
            "input_assay_id": [1, 1],
            "descriptor_vector_id": [0, 1],
            "fold_id": [0, 0],
            "standard_qualifier": ["=", "="],
            "standard_value": [5.0, 5.0],
        }
    )
    assert low_variance_assays(t4r, 1, 0.0).tolist() == [1]
    assert low_variance_assays(t4r.assign(standard_value=[5.0, 6.0]), 1, 0.7).tolist() == []
    assert low_variance_assays(t4r.assign(standard_value=[5.0, 6.0]), 1, 0.8).tolist() == [1]


def test_folds_outside_range_are_an_error(make_t0) -> None:
    from pharmafl.common.errors import PreparationError

    t0 = make_t0([{"input_assay_id": 1}])
    with pytest.raises(PreparationError, match="fold ids outside"):
        aggregate_activities(t0, _t1([(0, 1, "=", 5.0)]), _t5(1, nfolds=1).assign(fold_id=5), P, 5)
