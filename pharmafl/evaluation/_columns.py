"""Walk a sparse label matrix task by task, gathering the matching dense predictions.

Only *stored* entries are measurements: explicit zeros stay (a regression value of 0.0 is a
measurement), absent entries are unmeasured and never touch a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from pharmafl.common.errors import EvaluationError


@dataclass(frozen=True)
class TaskColumns:
    """Measured entries of every task, in column-major order.

    ``labels[indptr[j]:indptr[j+1]]`` and ``preds[k][indptr[j]:indptr[j+1]]`` are task ``j``'s
    measured labels and the predictions at the same rows.
    """

    n_tasks: int
    indptr: np.ndarray
    labels: np.ndarray
    preds: tuple[np.ndarray, ...]
    censor: np.ndarray | None
    rows: np.ndarray | None = None
    """Row of each measured entry (same order as ``labels``)."""

    def task(self, j: int) -> slice:
        """The slice of task ``j`` into ``labels``, ``preds`` and ``censor``."""
        return slice(int(self.indptr[j]), int(self.indptr[j + 1]))


def _row_index(rows: npt.ArrayLike, n_rows: int) -> np.ndarray:
    r = np.asarray(rows)
    if r.dtype == bool:
        if r.shape != (n_rows,):
            raise EvaluationError(
                f"a boolean rows mask must have length {n_rows} (rows of y_true), got {r.shape}."
            )
        return np.flatnonzero(r)
    if r.ndim != 1 or (r.size and not np.issubdtype(r.dtype, np.integer)):
        raise EvaluationError(
            "rows must be a 1-D array of row indices or a boolean mask.",
            fix="pass e.g. np.flatnonzero(fold == test_fold).",
        )
    r = r.astype(np.int64, copy=False)
    if r.size and (r.min() < 0 or r.max() >= n_rows):
        raise EvaluationError(f"rows holds indices outside [0, {n_rows}).")
    return r


def _entries(matrix: sp.spmatrix | sp.sparray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # tocoo keeps explicit zeros: a stored 0.0 is a measurement.
    coo = sp.coo_matrix(matrix)
    return coo.row.astype(np.int64), coo.col.astype(np.int64), np.asarray(coo.data)


def gather_task_columns(
    y_true: sp.spmatrix | sp.sparray,
    y_preds: tuple[npt.ArrayLike, ...],
    *,
    censor: sp.spmatrix | sp.sparray | None = None,
    rows: npt.ArrayLike | None = None,
) -> TaskColumns:
    """Collect labels, predictions (and censor flags) of every measured entry, task by task.

    Parameters
    ----------
    y_true : scipy sparse matrix, shape (n_rows, n_tasks)
        Stored entries are measurements.
    y_preds : tuple of dense arrays, each shape (n_rows, n_tasks)
        Predictions; only the values at measured entries are read.
    censor : scipy sparse matrix, shape (n_rows, n_tasks), optional
        Censor flags; a measured entry without a stored flag counts as uncensored (0).
    rows : int indices or boolean mask, optional
        Only these rows are evaluated (e.g. the test fold).
    """
    if not sp.issparse(y_true):
        raise EvaluationError(
            "y_true must be a scipy sparse matrix (absent entries = unmeasured).",
            fix="pass the CSR matrix from cls_T10_y.npz / reg_T10_y.npz.",
        )
    n_rows, n_tasks = y_true.shape
    preds = []
    for k, pred in enumerate(y_preds):
        arr = np.asarray(pred)
        if arr.shape != (n_rows, n_tasks):
            raise EvaluationError(
                f"predictions #{k} have shape {arr.shape}, labels have {(n_rows, n_tasks)}.",
                fix="predict every row and task of the label matrix (dense array).",
            )
        preds.append(arr)
    row, col, data = _entries(y_true)
    if rows is not None:
        keep = np.zeros(n_rows, dtype=bool)
        keep[_row_index(rows, n_rows)] = True
        mask = keep[row]
        row, col, data = row[mask], col[mask], data[mask]
    key = col * n_rows + row
    order = np.argsort(key, kind="stable")
    key, row, col, data = key[order], row[order], col[order], data[order]
    if key.size > 1 and np.any(key[1:] == key[:-1]):
        raise EvaluationError(
            "y_true stores the same (row, task) entry more than once.",
            fix="deduplicate the label matrix (one measurement per compound and task).",
        )
    indptr = np.zeros(n_tasks + 1, dtype=np.int64)
    np.cumsum(np.bincount(col, minlength=n_tasks), out=indptr[1:])
    # One vectorized gather per prediction matrix; unmeasured positions are never read.
    gathered = tuple(np.asarray(p[row, col], dtype=np.float64) for p in preds)

    cens: np.ndarray | None = None
    if censor is not None:
        if not sp.issparse(censor) or censor.shape != (n_rows, n_tasks):
            raise EvaluationError(
                f"censor must be a scipy sparse matrix of shape {(n_rows, n_tasks)}.",
                fix="pass reg_T10_censor_y.npz, which has the sparsity of reg_T10_y.npz.",
            )
        c_row, c_col, c_data = _entries(censor)
        c_key = c_col * n_rows + c_row
        c_order = np.argsort(c_key, kind="stable")
        c_key, c_data = c_key[c_order], c_data[c_order]
        cens = np.zeros(key.size, dtype=np.float64)
        if c_key.size:
            pos = np.minimum(np.searchsorted(c_key, key), c_key.size - 1)
            found = c_key[pos] == key
            cens[found] = c_data[pos[found]]
    return TaskColumns(
        n_tasks=n_tasks, indptr=indptr, labels=data, preds=gathered, censor=cens, rows=row
    )


def check_weights(aggregation_weight: npt.ArrayLike | None, n_tasks: int) -> np.ndarray:
    """Validate per-task aggregation weights (default: all 1)."""
    if aggregation_weight is None:
        return np.ones(n_tasks, dtype=np.float64)
    w = np.asarray(aggregation_weight, dtype=np.float64)
    if w.shape != (n_tasks,):
        raise EvaluationError(
            f"aggregation_weight has shape {w.shape}, expected ({n_tasks},) (one per task).",
            fix="pass the aggregation_weight column of cls_weights.csv / reg_weights.csv.",
        )
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise EvaluationError("aggregation_weight must be finite and non-negative.")
    return w


__all__ = ["TaskColumns", "check_weights", "gather_task_columns"]
