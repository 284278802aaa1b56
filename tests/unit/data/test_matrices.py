"""Matrices and the files of docs/prepared-format.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix, load_npz

from pharmafl.common.errors import PreparationError
from pharmafl.common.io import sha256_file
from pharmafl.data import MATRIX_FILES, TaskCatalogue, build_matrices, write_matrices

DOC = Path(__file__).resolve().parents[3] / "docs" / "prepared-format.md"


def _t8c(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cont_classification_task_id": pd.array([*list(range(n)), pd.NA], dtype="Int64"),
            "classification_task_id": np.arange(1, n + 2),
            "input_assay_id": [10 + i for i in range(n)] + [99],
            "assay_type": ["OTHER"] * (n + 1),
            "is_auxiliary": [False] * (n + 1),
            "threshold": [6.0] * (n + 1),
            "threshold_method": ["expert"] * (n + 1),
            "direction": ["high"] * (n + 1),
            "training_quorum_OK": [True] * n + [False],
            "evaluation_quorum_OK": [True] * (n + 1),
            "aggregation_weight": [1.0] * (n + 1),
            "weight": [1.0] * n + [np.nan],
            "num_total_actives": [30] * (n + 1),
            "num_total_inactives": [30] * (n + 1),
            "num_fold_min_actives": [10] * (n + 1),
            "num_fold_min_inactives": [10] * (n + 1),
        }
    )


def _t8r(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cont_regression_task_id": pd.array(list(range(n)), dtype="Int64"),
            "input_assay_id": [20 + i for i in range(n)],
            "assay_type": ["ADME"] * n,
            "is_auxiliary": [False] * n,
            "direction": [None] * n,
            "training_quorum_OK": [True] * n,
            "evaluation_quorum_OK": [True] * n,
            "aggregation_weight": [1.0] * n,
            "weight": [1.0] * n,
            "censored_weight": [0.5] * n,
            "num_total": [60] * n,
            "num_uncensored_total": [40] * n,
            "num_fold_min": [12] * n,
        }
    )


def _inputs():
    x_unique = csr_matrix(np.eye(6, 8, dtype=np.float32) * np.arange(1, 7)[:, None])
    folds_unique = np.array([0, 1, 2, 0, 1, 2])
    t10c = pd.DataFrame(
        {
            "cont_classification_task_id": [0, 0, 1],
            "descriptor_vector_id": [4, 1, 4],
            "fold_id": [1, 1, 1],
            "class_label": np.array([1, -1, -1], np.int8),
        }
    )
    t10r = pd.DataFrame(
        {
            "input_assay_id": [20, 20, 20],
            "descriptor_vector_id": [2, 4, 5],
            "fold_id": [2, 1, 2],
            "standard_qualifier": ["=", "<", ">"],
            "standard_value": [0.0, 1.5, -2.0],
            "cont_regression_task_id": [0, 0, 0],
        }
    )
    return x_unique, folds_unique, t10c, t10r


def test_rows_are_the_used_descriptor_vectors_in_order() -> None:
    x_unique, folds_unique, t10c, t10r = _inputs()
    m = build_matrices(x_unique, folds_unique, _t8c(2), t10c, _t8r(1), t10r)
    assert m.row_descriptor_vector_id.tolist() == [1, 2, 4, 5]
    assert m.folds.tolist() == [1, 2, 1, 2] and m.folds.dtype == np.int64
    np.testing.assert_array_equal(m.x.toarray(), x_unique[[1, 2, 4, 5]].toarray())
    assert m.x.dtype == np.float32
    np.testing.assert_array_equal(m.y_cls.toarray(), [[-1, 0], [0, 0], [1, -1], [0, 0]])
    assert m.y_cls.dtype == np.float32 and m.y_cls.shape == (4, 2)
    # the 0.0 value and the "=" censor flag are stored: same pattern as y_reg
    assert m.y_reg.nnz == m.y_censor.nnz == 3
    np.testing.assert_array_equal(m.y_reg.indices, m.y_censor.indices)
    np.testing.assert_array_equal(m.y_reg.indptr, m.y_censor.indptr)
    assert m.y_reg.data.tolist() == [0.0, 1.5, -2.0]
    assert m.y_censor.data.tolist() == [0.0, -1.0, 1.0]
    assert m.cls_weights.columns.tolist() == [
        "task_id",
        "training_weight",
        "aggregation_weight",
        "task_type",
    ]
    assert m.cls_weights.task_id.tolist() == [0, 1]
    assert m.reg_weights.censored_weight.tolist() == [0.5]
    assert m.catalogue.n_classification_tasks == 2 and m.catalogue.n_regression_tasks == 1


def test_inconsistent_folds_or_unknown_vectors_are_errors() -> None:
    x_unique, folds_unique, t10c, t10r = _inputs()
    with pytest.raises(PreparationError, match="fold ids disagree"):
        build_matrices(x_unique, folds_unique, _t8c(2), t10c.assign(fold_id=0), _t8r(1), t10r)
    with pytest.raises(PreparationError, match="has no X row"):
        build_matrices(x_unique[:3], folds_unique[:3], _t8c(2), t10c, _t8r(1), t10r)


def test_a_duplicate_entry_or_an_unknown_qualifier_is_an_error() -> None:
    x_unique, folds_unique, t10c, t10r = _inputs()
    twice = pd.concat([t10c, t10c.iloc[[0]]], ignore_index=True)  # (vector 4, task 0) twice
    with pytest.raises(PreparationError, match=r"two values for the same \(row, task\) entry"):
        build_matrices(x_unique, folds_unique, _t8c(2), twice, _t8r(1), t10r)
    odd = t10r.assign(standard_qualifier=["=", "~", ">"])
    with pytest.raises(PreparationError, match="qualifier other than <, = or >") as err:
        build_matrices(x_unique, folds_unique, _t8c(2), t10c, _t8r(1), odd)
    assert "aggregate_activities" in str(err.value)


def _doc_files() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## Files") :]
    names = set(re.findall(r"`([A-Za-z0-9_]+\.(?:npz|npy|csv|json))`", table))
    # the rows written by other stages
    return names - {"graphs.npz", "compounds.csv", "manifest.json", "run_report.json"}


def test_write_matrices_writes_exactly_the_documented_files(tmp_path) -> None:
    x_unique, folds_unique, t10c, t10r = _inputs()
    m = build_matrices(x_unique, folds_unique, _t8c(2), t10c, _t8r(1), t10r)
    hashes = write_matrices(tmp_path, m)
    assert set(hashes) == set(MATRIX_FILES) == _doc_files()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(MATRIX_FILES)
    for name, digest in hashes.items():
        assert sha256_file(tmp_path / name) == digest
    for prefix in ("cls", "reg"):
        x = load_npz(tmp_path / f"{prefix}_T11_x.npz")
        assert x.format == "csr" and x.dtype == np.float32 and x.shape == (4, 8)
        assert (x != m.x).nnz == 0
        folds = np.load(tmp_path / f"{prefix}_T11_fold_vector.npy")
        assert folds.dtype == np.int64 and folds.tolist() == m.folds.tolist()
    y = load_npz(tmp_path / "cls_T10_y.npz")
    assert y.format == "csr" and y.dtype == np.float32 and (y != m.y_cls).nnz == 0
    yr, yc = load_npz(tmp_path / "reg_T10_y.npz"), load_npz(tmp_path / "reg_T10_censor_y.npz")
    assert yr.nnz == yc.nnz == 3  # explicit zeros survive the round trip
    np.testing.assert_array_equal(yr.data, m.y_reg.data)
    np.testing.assert_array_equal(yc.indices, yr.indices)
    np.testing.assert_array_equal(yc.indptr, yr.indptr)
    cw = pd.read_csv(tmp_path / "cls_weights.csv")
    assert cw.columns.tolist() == ["task_id", "training_weight", "aggregation_weight", "task_type"]
    rw = pd.read_csv(tmp_path / "reg_weights.csv")
    assert rw.columns.tolist()[-1] == "censored_weight" and rw.task_type.tolist() == ["ADME"]
    assert len(pd.read_csv(tmp_path / "T8c.csv")) == 3  # every task, trained or not
    cat = TaskCatalogue.model_validate(json.loads((tmp_path / "task_catalogue.json").read_text()))
    assert [t.kind for t in cat.tasks] == ["classification", "classification", "regression"]
    # deterministic bytes
    again = write_matrices(tmp_path / "again", m)
    assert again == hashes


def test_zero_task_and_zero_row_matrices_are_still_written(tmp_path) -> None:
    x_unique, folds_unique, t10c, t10r = _inputs()
    m = build_matrices(x_unique, folds_unique, _t8c(2), t10c, _t8r(0), t10r.iloc[:0])
    write_matrices(tmp_path, m)
    yr = load_npz(tmp_path / "reg_T10_y.npz")
    assert yr.shape == (2, 0) and load_npz(tmp_path / "reg_T10_censor_y.npz").shape == (2, 0)
    assert pd.read_csv(tmp_path / "reg_weights.csv").columns.tolist()[-1] == "censored_weight"
    empty = build_matrices(x_unique, folds_unique, _t8c(0), t10c.iloc[:0], _t8r(0), t10r.iloc[:0])
    write_matrices(tmp_path / "empty", empty)
    assert load_npz(tmp_path / "empty" / "cls_T11_x.npz").shape == (0, 8)
    assert load_npz(tmp_path / "empty" / "cls_T10_y.npz").shape == (0, 0)
    assert np.load(tmp_path / "empty" / "reg_T11_fold_vector.npy").shape == (0,)
