"""Reading SparseChem-format files: prepared/ names, Matrix Market, defaults, clear errors."""

from __future__ import annotations

import shutil

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
    with pytest.raises(DataNotFoundError, match="prepared folder not found"):
        load_prepared(tmp_path / "nowhere")
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
    for bad in ("-1", "inf", "high"):
        pd.DataFrame({"task_id": [0, 1], "training_weight": [1, bad]}).to_csv(tmp_path / "w.csv")
        with pytest.raises(ModelError, match="training_weight must hold finite non-negative"):
            load_sparsechem(
                x, tmp_path / "f.npy", y_class=tmp_path / "y.npz", weights_class=tmp_path / "w.csv"
            )
    sp.save_npz(tmp_path / "reg1.npz", sp.csr_matrix(np.ones((600, 1), dtype=np.float32)))
    short = sp.csr_matrix(np.ones((599, 2), dtype=np.float32))
    sp.save_npz(tmp_path / "short.npz", short)
    with pytest.raises(ModelError, match="classification label matrix has 599 rows, X has 600"):
        load_sparsechem(x, tmp_path / "f.npy", y_class=tmp_path / "short.npz")
    sp.save_npz(tmp_path / "c2.npz", sp.csr_matrix(np.full((600, 1), 2.0, dtype=np.float32)))
    with pytest.raises(ModelError, match="censor values must be -1, 0 or"):
        load_sparsechem(
            x, tmp_path / "f.npy", y_regr=tmp_path / "reg1.npz", y_censor=tmp_path / "c2.npz"
        )
    with pytest.raises(ModelError, match=r"censor matrix shape \(600, 2\) differs"):
        load_sparsechem(
            x, tmp_path / "f.npy", y_regr=tmp_path / "reg1.npz", y_censor=tmp_path / "y.npz"
        )
    from rdkit import Chem

    from pharmafl.chem.graphs import PackedGraphs

    two = PackedGraphs.from_mols([Chem.MolFromSmiles("CCO"), Chem.MolFromSmiles("CCN")])
    two.save(tmp_path / "graphs.npz")
    with pytest.raises(ModelError, match="graphs file has 2 graphs, X has 600 rows"):
        load_sparsechem(x, tmp_path / "f.npy", graphs=tmp_path / "graphs.npz")
    with pytest.raises(DataNotFoundError, match="fold vector not found"):
        load_sparsechem(x, tmp_path / "no-folds.npy")
    pd.DataFrame({"task": [0, 1], "weight": [1, 1]}).to_csv(tmp_path / "w2.csv")
    with pytest.raises(ModelError, match=r"task weights file lacks columns \['task_id'"):
        load_sparsechem(
            x, tmp_path / "f.npy", y_class=tmp_path / "y.npz", weights_class=tmp_path / "w2.csv"
        )
    with pytest.raises(DataNotFoundError, match="task weights file not found"):
        load_sparsechem(
            x, tmp_path / "f.npy", y_class=tmp_path / "y.npz", weights_class=tmp_path / "no.csv"
        )
    reg = sp.csr_matrix(np.array([[np.inf, 5.0]] + [[0.0, 0.0]] * 599, dtype=np.float32))
    sp.save_npz(tmp_path / "reg.npz", reg)
    with pytest.raises(ModelError, match="regression values must be finite") as err:
        load_sparsechem(x, tmp_path / "f.npy", y_regr=tmp_path / "reg.npz")
    assert err.value.file == str(tmp_path / "reg.npz")
    (tmp_path / "x.npy").write_bytes(b"x")
    with pytest.raises(ModelError, match="pickled"):
        load_sparsechem(tmp_path / "x.npy", tmp_path / "f.npy")


def test_a_preparation_without_tasks_is_refused_with_the_fix(tmp_path, small_prepared) -> None:
    """Every assay below its quorum: nothing to train, said before any training starts."""
    d = tmp_path / "prepared"
    shutil.copytree(small_prepared / "prepared", d)
    n = sp.load_npz(d / PREPARED_FILES["x"]).shape[0]
    for name in ("y_class", "y_regr", "y_censor"):
        sp.save_npz(d / PREPARED_FILES[name], sp.csr_matrix((n, 0), dtype=np.float32))
    for name in ("weights_class", "weights_regr"):
        (d / PREPARED_FILES[name]).unlink()
    with pytest.raises(DataNotFoundError, match="holds no task") as err:
        load_prepared(d)
    assert "quorums" in (err.value.fix or "")
