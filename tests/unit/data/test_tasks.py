"""The whole activity half, on hand-made data and on real FS-Mol measurements."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from pharmafl.common.params import TaskParams
from pharmafl.common.settings import data_dir
from pharmafl.data import activities_to_tasks, dedupe_descriptors
from pharmafl.data._common import REJECTION_COLUMNS

P = TaskParams()
NFOLDS = 5
KNOWN_REASONS = {
    "unknown_assay",
    "unknown_qualifier",
    "missing_value",
    "binary_value",
    "out_of_range",
    "failed_structure",
    "aggregation_conflict",
    "low_variance",
    "ambiguous_label",
    "no_threshold",
    "training_quorum",
}


def _t0(ids: np.ndarray, types: np.ndarray) -> pd.DataFrame:
    t0 = pd.DataFrame(
        {
            "input_assay_id": ids,
            "assay_type": types,
            "use_in_regression": True,
            "is_binary": False,
            "direction": "high",
            "catalog_assay_id": np.nan,
        }
    )
    for i in range(1, 6):
        t0[f"expert_threshold_{i}"] = np.nan
    return t0


def test_small_end_to_end_with_dedupe(make_t0) -> None:
    rng = np.random.default_rng(3)
    n = 300
    # 300 compounds, pairs (2k, 2k+1) share a fingerprint → 150 descriptor vectors
    bits = rng.integers(0, 64, (n // 2, 6))
    x = csr_matrix(
        (
            np.ones(n * 6, np.float32),
            np.repeat(bits, 2, axis=0).ravel(),
            np.arange(0, n * 6 + 1, 6),
        ),
        shape=(n, 64),
    )
    folds = np.repeat(np.arange(n // 2) % NFOLDS, 2)
    t5, xu, fu = dedupe_descriptors(np.arange(1000, 1000 + n), x, folds)
    assert xu.shape[0] == 150
    t0 = make_t0([{"input_assay_id": 1, "expert_threshold_1": 6.0}, {"input_assay_id": 2}])
    cid = np.arange(1000, 1000 + n)
    t1 = pd.DataFrame(
        {
            "input_compound_id": np.r_[cid, cid[:10], 5000],
            "input_assay_id": np.r_[np.full(n, 1), np.full(10, 2), 1],
            "standard_qualifier": "=",
            "standard_value": np.r_[
                np.where(np.arange(n) % 3 == 0, 7.0, 5.0) + rng.normal(0, 0.2, n),
                np.full(10, 6.0),
                6.0,
            ],
        }
    )
    res = activities_to_tasks(t0, t1, t5, xu, fu, P, NFOLDS)
    m = res.matrices
    assert list(res.rejections.columns) == list(REJECTION_COLUMNS)
    rej = res.rejections.groupby(["step", "reason"]).size().to_dict()
    assert rej[("aggregate", "failed_structure")] == 1  # compound 5000 is not in T5
    assert rej[("aggregate", "low_variance")] == 5  # assay 2: constant, 10 cpds → 5 vectors
    assert m.y_cls.shape == (150, 3) and m.y_reg.shape == (150, 1)
    assert res.counts["records_aggregated"] == 155 and res.counts["t4r_records"] == 150
    assert res.catalogue.n_classification_tasks == 3
    assert set(np.unique(m.y_cls.data)) == {-1.0, 1.0}
    assert res.seconds.keys() == {"aggregate", "threshold", "filter", "matrices"}


def test_no_measurements_still_gives_well_formed_empty_matrices(make_t0) -> None:
    t1 = pd.DataFrame(
        {
            "input_compound_id": np.array([], np.int64),
            "input_assay_id": np.array([], np.int64),
            "standard_qualifier": pd.Series([], dtype=object),
            "standard_value": np.array([], np.float64),
        }
    )
    t5 = pd.DataFrame({"input_compound_id": [0], "descriptor_vector_id": [0], "fold_id": [0]})
    x = csr_matrix((1, 8), dtype=np.float32)
    res = activities_to_tasks(make_t0([{"input_assay_id": 1}]), t1, t5, x, np.array([0]), P, 5)
    m = res.matrices
    assert m.x.shape == (0, 8) and m.y_cls.shape == (0, 0) and m.y_reg.shape == (0, 0)
    assert res.tables["t4r"]["input_assay_id"].dtype == np.int64
    assert len(res.rejections) == 0 and res.catalogue.tasks == []


def _fsmol(n_measurements: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = data_dir("fsmol") / "fsmol_chembl27_measurements.csv.gz"
    df = pd.read_csv(path, usecols=["assay_chembl_id", "smiles", "relation", "pXC50", "assay_type"])
    df = df[df["pXC50"].notna()]
    sizes = df.groupby("assay_chembl_id").size()
    rng = np.random.default_rng(seed)
    pool = sizes[(sizes >= 80) & (sizes <= 400)].index.to_numpy()
    chosen, total = [], 0
    for a in rng.permutation(pool):
        if total >= n_measurements:
            break
        chosen.append(a)
        total += int(sizes[a])
    d = df[df["assay_chembl_id"].isin(chosen)]
    aid = {a: i + 1 for i, a in enumerate(sorted(chosen))}
    cid = {s: i for i, s in enumerate(sorted(d["smiles"].unique()))}
    # relation refers to value_nM, so it flips for pXC50 (> 30 µM is pXC50 < 4.52)
    mirror = {"<": ">", "<=": ">", "<<": ">", ">": "<", ">=": "<", ">>": "<", "=": "=", "~": "="}
    t1 = pd.DataFrame(
        {
            "input_compound_id": d["smiles"].map(cid).to_numpy(np.int64),
            "input_assay_id": d["assay_chembl_id"].map(aid).to_numpy(np.int64),
            "standard_qualifier": d["relation"].map(mirror).fillna("=").to_numpy(object),
            "standard_value": d["pXC50"].to_numpy(np.float64),
        }
    )
    types = d.groupby("assay_chembl_id")["assay_type"].first().reindex(sorted(chosen))
    t0 = _t0(np.arange(1, len(chosen) + 1), np.where(types.to_numpy() == "A", "ADME", "OTHER"))
    return t0, t1


def _random_descriptors(t1: pd.DataFrame, seed: int):
    rng = np.random.default_rng(seed)
    n_cpd = int(t1["input_compound_id"].max()) + 1
    n_dv = max(1, int(n_cpd * 0.95))  # some compounds collapse → replicates
    dv = rng.integers(0, n_dv, n_cpd)
    fold_of_dv = rng.integers(0, NFOLDS, n_dv)
    t5 = pd.DataFrame(
        {
            "input_compound_id": np.arange(n_cpd),
            "descriptor_vector_id": dv,
            "fold_id": fold_of_dv[dv],
        }
    )
    cols = rng.integers(0, 2048, (n_dv, 20))
    x = csr_matrix(
        (np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, 20)),
        shape=(n_dv, 2048),
    )
    x.sum_duplicates()
    return t5, x, fold_of_dv


def test_fsmol_invariants() -> None:
    t0, t1 = _fsmol(2000, seed=11)
    assert 2000 <= len(t1) <= 2500
    t5, x_unique, folds_unique = _random_descriptors(t1, seed=5)
    res = activities_to_tasks(t0, t1, t5, x_unique, folds_unique, P, NFOLDS)
    m = res.matrices
    assert m.y_cls.shape[1] > 0 and m.y_reg.shape[1] > 0, res.counts
    assert set(np.unique(m.y_cls.data)) <= {-1.0, 1.0}
    # every trained task meets its training quorum
    pos = np.asarray((m.y_cls == 1).sum(axis=0)).ravel()
    neg = np.asarray((m.y_cls == -1).sum(axis=0)).ravel()
    assert pos.min() >= 25 and neg.min() >= 25
    n_reg = np.diff(m.y_reg.tocsc().indptr)
    unc = m.y_censor.tocsc()
    n_unc = np.array(
        [(unc.data[unc.indptr[j] : unc.indptr[j + 1]] == 0).sum() for j in range(unc.shape[1])]
    )
    assert n_reg.min() >= 50 and n_unc.min() >= 25
    # censor pattern = value pattern; every row carries a label or a value
    assert (m.y_censor.indptr == m.y_reg.indptr).all()
    assert (m.y_censor.indices == m.y_reg.indices).all()
    assert ((np.diff(m.y_cls.indptr) + np.diff(m.y_reg.indptr)) > 0).all()
    # weights per assay sum to the initial weight; aggregation weights are 0/1
    cat = pd.DataFrame([t.model_dump() for t in res.catalogue.tasks])
    sums = cat.groupby(["kind", "input_assay_id"])["training_weight"].sum()
    assert np.allclose(sums.to_numpy(), 1.0)
    assert set(cat["aggregation_weight"]) <= {0.0, 1.0}
    # aggregation weight 1 ⇔ not auxiliary and ≥ 10/10 in every fold (recomputed from Y)
    y = m.y_cls.tocsc()
    for j, w in enumerate(m.cls_weights["aggregation_weight"]):
        rows = y.indices[y.indptr[j] : y.indptr[j + 1]]
        lab = y.data[y.indptr[j] : y.indptr[j + 1]]
        f = m.folds[rows]
        per_fold = [
            (min((lab[f == k] == 1).sum(), (lab[f == k] == -1).sum())) for k in range(NFOLDS)
        ]
        info = res.catalogue.tasks[j]
        assert w == float(min(per_fold) >= 10 and not info.is_auxiliary)
    assert set(res.rejections["reason"]) <= KNOWN_REASONS
    assert res.counts["measurements_input"] == len(t1)


@pytest.mark.slow
def test_fsmol_46k_measurements_is_fast() -> None:
    t0, t1 = _fsmol(46_000, seed=1)
    t5, x_unique, folds_unique = _random_descriptors(t1, seed=2)
    start = time.perf_counter()
    res = activities_to_tasks(t0, t1, t5, x_unique, folds_unique, P, NFOLDS)
    elapsed = time.perf_counter() - start
    assert res.matrices.y_cls.shape[1] > 100
    # ~0.5 s on an idle 2-core machine; generous bound for a loaded CI box
    assert elapsed < 5.0, f"activities_to_tasks on {len(t1)} measurements took {elapsed:.1f} s"
