"""SparseChem matrices from T10c/T10r and the descriptor vectors (reference §1.14).

Rows are the descriptor vectors that appear in T10c or T10r, re-indexed continuously in
``descriptor_vector_id`` order (TUNER's ``cont_descriptor_vector_id``); classification and
regression share these rows (TUNER's hybrid index). Columns are the continuous task ids.
The on-disk contract is ``docs/prepared-format.md``.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix, save_npz

from pharmafl.common.errors import PreparationError
from pharmafl.common.io import sha256_bytes
from pharmafl.data.catalogue import TaskCatalogue, catalogue_from_tables

log = logging.getLogger(__name__)

#: Every file :func:`write_matrices` writes, in writing order.
MATRIX_FILES: tuple[str, ...] = (
    "cls_T11_x.npz",
    "cls_T11_fold_vector.npy",
    "cls_T10_y.npz",
    "cls_weights.csv",
    "reg_T11_x.npz",
    "reg_T11_fold_vector.npy",
    "reg_T10_y.npz",
    "reg_T10_censor_y.npz",
    "reg_weights.csv",
    "T8c.csv",
    "T8r.csv",
    "task_catalogue.json",
)
CLS_WEIGHT_COLUMNS = ("task_id", "training_weight", "aggregation_weight", "task_type")
REG_WEIGHT_COLUMNS = (*CLS_WEIGHT_COLUMNS, "censored_weight")
_CENSOR = {"<": -1.0, "=": 0.0, ">": 1.0}


@dataclass
class PreparedMatrices:
    """Everything in ``prepared/`` that the model reads.

    Attributes
    ----------
    x
        ``(n_rows, fold_size)`` CSR float32 fingerprints.
    folds
        ``(n_rows,)`` int64 fold ids.
    y_cls
        ``(n_rows, n_cls_tasks)`` CSR float32, ±1; unmeasured entries not stored.
    y_reg
        ``(n_rows, n_reg_tasks)`` CSR float32 values (explicit zeros stored).
    y_censor
        Same pattern as ``y_reg``: −1 ``<``, 0 ``=``, +1 ``>`` (zeros stored).
    cls_weights, reg_weights
        SparseChem task metadata (:data:`CLS_WEIGHT_COLUMNS`, :data:`REG_WEIGHT_COLUMNS`).
    t8c, t8r
        TUNER task tables (all candidate tasks, trained or not).
    row_descriptor_vector_id
        ``(n_rows,)`` descriptor vector of each row.
    catalogue
        One :class:`~pharmafl.data.catalogue.TaskInfo` per column.
    """

    x: csr_matrix
    folds: np.ndarray
    y_cls: csr_matrix
    y_reg: csr_matrix
    y_censor: csr_matrix
    cls_weights: pd.DataFrame
    reg_weights: pd.DataFrame
    t8c: pd.DataFrame
    t8r: pd.DataFrame
    row_descriptor_vector_id: np.ndarray
    catalogue: TaskCatalogue


def _csr(
    rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]
) -> csr_matrix:
    """CSR built directly from coordinates: zeros are *kept* as stored entries."""
    order = np.lexsort((cols, rows))
    r, c, v = rows[order], cols[order], vals[order]
    if len(r) > 1 and np.any((r[1:] == r[:-1]) & (c[1:] == c[:-1])):
        raise PreparationError(
            "two values for the same (row, task) entry.",
            fix="report this as a bug: T10 tables must be unique per task and descriptor.",
        )
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=shape[0]), out=indptr[1:])
    m = csr_matrix(
        (v.astype(np.float32), c.astype(np.int32), indptr.astype(np.int32)),
        shape=shape,
        dtype=np.float32,
    )
    m.has_sorted_indices = True
    return m


def _weights(t8: pd.DataFrame, id_col: str, reg: bool) -> pd.DataFrame:
    tr = t8[t8[id_col].notna()].sort_values(id_col)
    out = pd.DataFrame(
        {
            "task_id": tr[id_col].to_numpy(np.int64),
            "training_weight": tr["weight"].to_numpy(np.float64),
            "aggregation_weight": tr["aggregation_weight"].to_numpy(np.float64),
            "task_type": tr["assay_type"].astype(str).to_numpy(object),
        }
    )
    if reg:
        out["censored_weight"] = tr["censored_weight"].to_numpy(np.float64)
    return out


def build_matrices(
    x_unique: csr_matrix,
    folds_unique: np.ndarray,
    t8c: pd.DataFrame,
    t10c: pd.DataFrame,
    t8r: pd.DataFrame,
    t10r: pd.DataFrame,
) -> PreparedMatrices:
    """Assemble the SparseChem matrices.

    Parameters
    ----------
    x_unique, folds_unique
        Descriptor vectors (row ``i`` = ``descriptor_vector_id`` ``i``) and their folds.
    t8c, t10c, t8r, t10r
        From :func:`~pharmafl.data.filter_classification` and
        :func:`~pharmafl.data.filter_regression`.

    Returns
    -------
    PreparedMatrices
    """
    x_unique = csr_matrix(x_unique)
    folds_unique = np.asarray(folds_unique, dtype=np.int64)
    dv = np.unique(
        np.concatenate(
            [
                t10c["descriptor_vector_id"].to_numpy(np.int64),
                t10r["descriptor_vector_id"].to_numpy(np.int64),
            ]
        )
    )
    if len(dv) and dv[-1] >= x_unique.shape[0]:
        raise PreparationError(
            f"descriptor_vector_id {int(dv[-1])} has no X row ({x_unique.shape[0]} vectors).",
            fix="pass the x_unique returned by dedupe_descriptors for the same T5.",
        )
    row_of = np.full(x_unique.shape[0], -1, dtype=np.int64)
    row_of[dv] = np.arange(len(dv))
    n_rows = len(dv)
    n_cls = int(t8c["cont_classification_task_id"].notna().sum())
    n_reg = int(t8r["cont_regression_task_id"].notna().sum())
    for name, t10 in (("T10c", t10c), ("T10r", t10r)):
        ids = t10["descriptor_vector_id"].to_numpy(np.int64)
        if len(ids) and np.any(folds_unique[ids] != t10["fold_id"].to_numpy(np.int64)):
            raise PreparationError(
                f"{name} fold ids disagree with the descriptor vectors' folds.",
                fix="build T5 and the tasks from the same dedupe_descriptors output.",
            )
    x = csr_matrix(x_unique[dv], dtype=np.float32)
    x.sort_indices()
    y_cls = _csr(
        row_of[t10c["descriptor_vector_id"].to_numpy(np.int64)],
        t10c["cont_classification_task_id"].to_numpy(np.int64),
        t10c["class_label"].to_numpy(np.float32),
        (n_rows, n_cls),
    )
    reg_rows = row_of[t10r["descriptor_vector_id"].to_numpy(np.int64)]
    reg_cols = t10r["cont_regression_task_id"].to_numpy(np.int64)
    y_reg = _csr(reg_rows, reg_cols, t10r["standard_value"].to_numpy(np.float64), (n_rows, n_reg))
    censor = t10r["standard_qualifier"].map(_CENSOR).to_numpy(np.float64)
    if np.isnan(censor).any():
        raise PreparationError(
            "T10r holds a qualifier other than <, = or >.",
            fix="aggregate activities with pharmafl.data.aggregate_activities first.",
        )
    y_censor = _csr(reg_rows, reg_cols, censor, (n_rows, n_reg))
    m = PreparedMatrices(
        x=x,
        folds=folds_unique[dv].astype(np.int64),
        y_cls=y_cls,
        y_reg=y_reg,
        y_censor=y_censor,
        cls_weights=_weights(t8c, "cont_classification_task_id", reg=False),
        reg_weights=_weights(t8r, "cont_regression_task_id", reg=True),
        t8c=t8c,
        t8r=t8r,
        row_descriptor_vector_id=dv,
        catalogue=catalogue_from_tables(t8c, t8r),
    )
    log.info("matrices: %d rows, %d cls tasks, %d reg tasks", n_rows, n_cls, n_reg)
    return m


def _npz_bytes(m: csr_matrix) -> bytes:
    buf = io.BytesIO()
    save_npz(buf, m, compressed=True)
    return buf.getvalue()


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_matrices(out_dir: Path, m: PreparedMatrices) -> dict[str, str]:
    """Write every file of :data:`MATRIX_FILES` into ``out_dir``; return ``{name: sha256}``.

    The caller passes a temporary folder that it renames into place once everything is
    written (:func:`pharmafl.common.io.atomic_directory`). The bytes are deterministic for
    equal inputs (``save_npz`` zip entries carry a fixed timestamp).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    blobs = {
        "cls_T11_x.npz": _npz_bytes(m.x),
        "cls_T11_fold_vector.npy": _npy_bytes(m.folds.astype(np.int64)),
        "cls_T10_y.npz": _npz_bytes(m.y_cls),
        "cls_weights.csv": _csv_bytes(m.cls_weights[list(CLS_WEIGHT_COLUMNS)]),
        "reg_T10_y.npz": _npz_bytes(m.y_reg),
        "reg_T10_censor_y.npz": _npz_bytes(m.y_censor),
        "reg_weights.csv": _csv_bytes(m.reg_weights[list(REG_WEIGHT_COLUMNS)]),
        "T8c.csv": _csv_bytes(m.t8c),
        "T8r.csv": _csv_bytes(m.t8r),
        "task_catalogue.json": (m.catalogue.model_dump_json(indent=2) + "\n").encode("utf-8"),
    }
    blobs["reg_T11_x.npz"] = blobs["cls_T11_x.npz"]
    blobs["reg_T11_fold_vector.npy"] = blobs["cls_T11_fold_vector.npy"]
    hashes: dict[str, str] = {}
    for name in MATRIX_FILES:
        data = blobs[name]
        (out / name).write_bytes(data)
        hashes[name] = sha256_bytes(data)
    return hashes


__all__ = [
    "CLS_WEIGHT_COLUMNS",
    "MATRIX_FILES",
    "PreparedMatrices",
    "REG_WEIGHT_COLUMNS",
    "build_matrices",
    "write_matrices",
]
