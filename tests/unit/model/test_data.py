"""Reading SparseChem-format files: prepared/ names, Matrix Market, defaults, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from pharmafl.common.errors import DataNotFoundError, ModelError
from pharmafl.model import PREPARED_FILES, load_prepared, load_sparsechem


def test_load_prepared_reads_the_documented_files(small_prepared) -> None:
    d = load_prepared(small_prepared)  # the partner folder works as well as prepared/
    assert d.n_rows == 600 and d.n_features == 512
    assert d.n_cls_tasks == 8 and d.n_reg_tasks == 3
    assert set(np.unique(d.y_cls.data)) <= {-1.0, 1.0}
    assert d.x.has_sorted_indices
    # Censor has exactly the value pattern, zeros stored.
    assert np.array_equal(d.censor.indptr, d.y_reg.indptr)
    assert np.array_equal(d.censor.indices, d.y_reg.indices)
    assert list(d.reg_weights.columns) == [
        "task_id",
        "training_weight",
        "aggregation_weight",
        "task_type",
        "censored_weight",
    ]
    assert len(d.rows_in_folds([0])) + len(d.rows_not_in_folds([0, None])) == d.n_rows


def test_sparsechem_files_from_any_source(tmp_path) -> None:
    x = sp.random(6, 10, density=0.3, format="csr", dtype=np.float32, random_state=0)
    scipy.io.mmwrite(tmp_path / "x.mtx", x)
    np.save(tmp_path / "folds.npy", np.array([0, 1, 2, 0, 1, 2]))
    y = sp.csr_matrix(np.array([[1, 0], [-1, 0], [0, 1], [0, 0], [1, -1], [0, 0]], np.float32))
    sp.save_npz(tmp_path / "y.npz", y)
    yr = sp.csr_matrix(np.array([[5.0], [0.0], [6.0], [0.0], [7.0], [0.0]], np.float32))
    cens = sp.csr_matrix(np.array([[1.0], [0.0], [0.0], [0.0], [-1.0], [0.0]], np.float32))
    sp.save_npz(tmp_path / "yr.npz", yr)
    sp.save_npz(tmp_path / "c.npz", cens)  # '=' entries not stored: aligned on the values
    d = load_sparsechem(
        tmp_path / "x.mtx",
        tmp_path / "folds.npy",
        y_class=tmp_path / "y.npz",
        y_regr=tmp_path / "yr.npz",
        y_censor=tmp_path / "c.npz",
    )
    assert (d.x != x).nnz == 0
    assert d.censor.nnz == d.y_reg.nnz == 3
    assert d.censor.data.tolist() == [1.0, 0.0, -1.0]
    assert d.cls_weights["training_weight"].tolist() == [1.0, 1.0]  # default weights
    assert d.reg_weights["censored_weight"].tolist() == [1.0]


def test_clear_errors_for_bad_inputs(tmp_path, small_prepared) -> None:
    with pytest.raises(DataNotFoundError, match="prepare"):
        load_prepared(tmp_path)
    src = small_prepared / "prepared"
    x = tmp_path / "x.npz"
    x.write_bytes((src / PREPARED_FILES["x"]).read_bytes())
    np.save(tmp_path / "f.npy", np.zeros(5, dtype=np.int64))
    with pytest.raises(ModelError, match="fold vector has 5 entries"):
        load_sparsechem(x, tmp_path / "f.npy")
    np.save(tmp_path / "f.npy", np.zeros(600, dtype=np.int64))
    bad = sp.csr_matrix(np.full((600, 2), 2.0, dtype=np.float32))
    sp.save_npz(tmp_path / "bad.npz", bad)
    with pytest.raises(ModelError, match=r"\+1 \(active\) or -1"):
        load_sparsechem(x, tmp_path / "f.npy", y_class=tmp_path / "bad.npz")
    y = sp.csr_matrix(np.ones((600, 2), dtype=np.float32))
    sp.save_npz(tmp_path / "y.npz", y)
    pd.DataFrame({"task_id": [0, 5], "training_weight": [1, 1]}).to_csv(tmp_path / "w.csv")
    with pytest.raises(ModelError, match=r"task_id 0\.\.n_tasks-1"):
        load_sparsechem(
            x, tmp_path / "f.npy", y_class=tmp_path / "y.npz", weights_class=tmp_path / "w.csv"
        )
    (tmp_path / "x.npy").write_bytes(b"x")
    with pytest.raises(ModelError, match="pickled"):
        load_sparsechem(tmp_path / "x.npy", tmp_path / "f.npy")
