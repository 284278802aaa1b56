"""Reading SparseChem-format matrices (``prepared/`` or any other source) for training.

File names and semantics follow ``docs/prepared-format.md`` and SparseChem's ``--x``,
``--y_class``, ``--y_regr``, ``--y_censor``, ``--folding``, ``--weights_class`` and
``--weights_regr`` options (``../shared/reference/melloddy-stack.md`` §2.3). Matrices may be
``scipy.sparse.save_npz`` files (``.npz``) or Matrix Market files (``.mtx``); pickled ``.npy``
matrices are refused because unpickling runs arbitrary code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pharmafl.common.errors import DataNotFoundError, ModelError
from pharmafl.layout import PartnerLayout

if TYPE_CHECKING:  # pragma: no cover
    from pharmafl.chem.graphs import PackedGraphs

log = logging.getLogger(__name__)

#: The ``prepared/`` file names this module reads (docs/prepared-format.md).
PREPARED_FILES: dict[str, str] = {
    "x": "cls_T11_x.npz",
    "folding": "cls_T11_fold_vector.npy",
    "y_class": "cls_T10_y.npz",
    "y_regr": "reg_T10_y.npz",
    "y_censor": "reg_T10_censor_y.npz",
    "weights_class": "cls_weights.csv",
    "weights_regr": "reg_weights.csv",
    "graphs": "graphs.npz",
}
_WEIGHT_COLUMNS = ("task_id", "training_weight", "aggregation_weight", "task_type")


@dataclass
class PreparedData:
    """One partner's training matrices.

    Attributes
    ----------
    x : csr_matrix, (n_rows, n_features) float32
        Fingerprints, canonical CSR (sorted indices, no duplicates).
    folds : ndarray, (n_rows,) int64
    y_cls : csr_matrix, (n_rows, n_cls_tasks) float32
        +1 active, −1 inactive; stored entries are measurements.
    y_reg, censor : csr_matrix, (n_rows, n_reg_tasks) float32
        Values and censoring (−1 ``<``, 0 ``=``, +1 ``>``) with one shared pattern.
    cls_weights, reg_weights : DataFrame
        One row per task in column order: ``task_id``, ``training_weight``,
        ``aggregation_weight``, ``task_type`` (+ ``censored_weight`` for regression).
    graphs : PackedGraphs or None
        One molecular graph per row (graph trunk only).
    source : Path or None
        Where the data came from (for messages).
    """

    x: sp.csr_matrix
    folds: np.ndarray
    y_cls: sp.csr_matrix
    y_reg: sp.csr_matrix
    censor: sp.csr_matrix
    cls_weights: pd.DataFrame
    reg_weights: pd.DataFrame
    graphs: PackedGraphs | None = None
    source: Path | None = None
    _extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        """Number of rows (descriptor vectors)."""
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.x.shape[1])

    @property
    def n_cls_tasks(self) -> int:
        """Number of classification tasks."""
        return int(self.y_cls.shape[1])

    @property
    def n_reg_tasks(self) -> int:
        """Number of regression tasks."""
        return int(self.y_reg.shape[1])

    def rows_in_folds(self, folds: Sequence[int]) -> np.ndarray:
        """Sorted row indices whose fold is in ``folds``."""
        return np.flatnonzero(np.isin(self.folds, np.asarray(list(folds), dtype=np.int64)))

    def rows_not_in_folds(self, folds: Sequence[int | None]) -> np.ndarray:
        """Sorted row indices whose fold is not in ``folds`` (``None`` entries ignored)."""
        keep = [f for f in folds if f is not None]
        return np.flatnonzero(~np.isin(self.folds, np.asarray(keep, dtype=np.int64)))

    def __repr__(self) -> str:
        return (
            f"PreparedData(rows={self.n_rows}, features={self.n_features}, "
            f"cls_tasks={self.n_cls_tasks}, reg_tasks={self.n_reg_tasks}, source={self.source})"
        )


def _read_matrix(path: Path, what: str) -> sp.csr_matrix:
    if not path.is_file():
        raise DataNotFoundError(
            f"{what} matrix not found.",
            file=path,
            fix="run `pharmafl prepare` for this partner or pass the right path.",
        )
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            m = sp.load_npz(path)
        elif suffix == ".mtx":
            import scipy.io  # 0.5 s to import, for Matrix Market files only

            m = scipy.io.mmread(path)
        else:
            raise ModelError(
                f"unsupported {what} matrix format {suffix!r}.",
                file=path,
                fix="give a scipy.sparse.save_npz .npz or a Matrix Market .mtx file "
                "(pickled .npy matrices are refused for safety).",
            )
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot read {what} matrix ({type(exc).__name__}).",
            file=path,
            fix="regenerate it with `pharmafl prepare` or scipy.sparse.save_npz.",
        ) from None
    out = sp.csr_matrix(m, dtype=np.float32)
    out.sum_duplicates()
    out.sort_indices()
    return out


def _read_weights(path: Path | None, n_tasks: int, reg: bool) -> pd.DataFrame:
    if path is None:
        df = pd.DataFrame(
            {
                "task_id": np.arange(n_tasks, dtype=np.int64),
                "training_weight": np.ones(n_tasks),
                "aggregation_weight": np.ones(n_tasks),
                "task_type": ["OTHER"] * n_tasks,
            }
        )
        if reg:
            df["censored_weight"] = np.ones(n_tasks)
        return df
    if not path.is_file():
        raise DataNotFoundError("task weights file not found.", file=path)
    df = pd.read_csv(path)
    need = ["task_id", "training_weight"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ModelError(
            f"task weights file lacks columns {missing}.",
            file=path,
            fix=f"give the columns {', '.join(_WEIGHT_COLUMNS)}"
            + (", censored_weight" if reg else "")
            + ".",
        )
    df = df.sort_values("task_id").reset_index(drop=True)
    ids = df["task_id"].to_numpy()
    if len(df) != n_tasks or not np.array_equal(ids, np.arange(n_tasks)):
        raise ModelError(
            f"task weights list {len(df)} tasks with ids not equal to 0..{n_tasks - 1}, "
            f"but the label matrix has {n_tasks} columns.",
            file=path,
            fix="give one row per label column with task_id 0..n_tasks-1 (SparseChem format).",
        )
    if "aggregation_weight" not in df.columns:
        df["aggregation_weight"] = 1.0
    if "task_type" not in df.columns:
        df["task_type"] = "OTHER"
    if reg and "censored_weight" not in df.columns:
        df["censored_weight"] = 1.0
    num_cols = ["training_weight", "aggregation_weight"] + (["censored_weight"] if reg else [])
    for col in num_cols:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ModelError(
                f"column {col} must hold finite non-negative numbers.",
                file=path,
                fix="correct the weights file.",
            )
        df[col] = values
    return df


def load_sparsechem(
    x: str | Path,
    folding: str | Path,
    *,
    y_class: str | Path | None = None,
    y_regr: str | Path | None = None,
    y_censor: str | Path | None = None,
    weights_class: str | Path | None = None,
    weights_regr: str | Path | None = None,
    graphs: str | Path | None = None,
) -> PreparedData:
    """Read SparseChem-format files from any source (paths as SparseChem's options).

    Missing label matrices become matrices with zero columns; missing weight files mean
    weight 1 for every task.

    Raises
    ------
    DataNotFoundError
        A named file does not exist.
    ModelError
        A file is unreadable or the shapes disagree (the message names the file).
    """
    x_path = Path(x)
    X = _read_matrix(x_path, "X")
    n = X.shape[0]
    fold_path = Path(folding)
    if not fold_path.is_file():
        raise DataNotFoundError("fold vector not found.", file=fold_path)
    try:
        folds = np.load(fold_path, allow_pickle=False).astype(np.int64).reshape(-1)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read fold vector ({exc}).", file=fold_path) from None
    if len(folds) != n:
        raise ModelError(
            f"fold vector has {len(folds)} entries, X has {n} rows.",
            file=fold_path,
            fix="use the fold vector written with this X.",
        )

    def labels(path: str | Path | None, what: str) -> sp.csr_matrix:
        if path is None:
            return sp.csr_matrix((n, 0), dtype=np.float32)
        m = _read_matrix(Path(path), what)
        if m.shape[0] != n:
            raise ModelError(
                f"{what} matrix has {m.shape[0]} rows, X has {n}.",
                file=path,
                fix="use label and X matrices from the same preparation run.",
            )
        return m

    y_cls = labels(y_class, "classification label")
    y_cls.eliminate_zeros()  # SparseChem: 0 means unmeasured
    if y_cls.nnz and not np.isin(y_cls.data, (-1.0, 1.0)).all():
        raise ModelError(
            "classification labels must be +1 (active) or -1 (inactive).",
            file=y_class,
            fix="store only ±1; leave unmeasured entries out.",
        )
    y_reg = labels(y_regr, "regression value")
    if y_censor is not None:
        cens = labels(y_censor, "censor")
        if cens.shape != y_reg.shape:
            raise ModelError(
                f"censor matrix shape {cens.shape} differs from the regression matrix "
                f"{y_reg.shape}.",
                file=y_censor,
            )
        # Align the censor matrix on the value pattern (absent censor = 0, '=').
        cens = _on_pattern(y_reg, cens)
        if cens.nnz and not np.isin(cens.data, (-1.0, 0.0, 1.0)).all():
            raise ModelError("censor values must be -1, 0 or +1.", file=y_censor)
    else:
        cens = _on_pattern(y_reg, sp.csr_matrix(y_reg.shape, dtype=np.float32))
    if not np.all(np.isfinite(y_reg.data)):
        raise ModelError("regression values must be finite.", file=y_regr)
    cw = _read_weights(Path(weights_class) if weights_class else None, y_cls.shape[1], False)
    rw = _read_weights(Path(weights_regr) if weights_regr else None, y_reg.shape[1], True)
    packed = None
    if graphs is not None:
        from pharmafl.chem.graphs import PackedGraphs

        packed = PackedGraphs.load(graphs)
        if len(packed) != n:
            raise ModelError(f"graphs file has {len(packed)} graphs, X has {n} rows.", file=graphs)
    return PreparedData(
        x=X,
        folds=folds,
        y_cls=y_cls,
        y_reg=y_reg,
        censor=cens,
        cls_weights=cw,
        reg_weights=rw,
        graphs=packed,
        source=x_path.parent,
    )


def _entry_keys(m: sp.csr_matrix) -> np.ndarray:
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows * np.int64(max(m.shape[1], 1)) + m.indices.astype(np.int64)


def _on_pattern(pattern: sp.csr_matrix, values: sp.csr_matrix) -> sp.csr_matrix:
    """``values`` read at exactly ``pattern``'s stored entries (zeros stored explicitly).

    Both matrices are canonical CSR, so their entry keys ``row * n_cols + col`` are sorted.
    """
    want, have = _entry_keys(pattern), _entry_keys(values)
    pos = np.searchsorted(have, want).clip(max=max(len(have) - 1, 0))
    vals = np.zeros(len(want), dtype=np.float32)
    if len(have):
        hit = have[pos] == want
        vals[hit] = values.data[pos[hit]]
    out = sp.csr_matrix((vals, pattern.indices.copy(), pattern.indptr.copy()), shape=pattern.shape)
    out.has_sorted_indices = True
    return out


def load_prepared(prepared_dir: str | Path, *, with_graphs: bool = False) -> PreparedData:
    """Read ``PARTNER_DIR/prepared/`` (``docs/prepared-format.md``).

    Parameters
    ----------
    prepared_dir
        The ``prepared/`` folder (or a partner folder containing one).
    with_graphs
        Also read ``graphs.npz`` (needed by the graph trunk).
    """
    d = Path(prepared_dir)
    inner = PartnerLayout(d).prepared
    if not (d / PREPARED_FILES["x"]).is_file() and (inner / PREPARED_FILES["x"]).is_file():
        d = inner
    if not d.is_dir():
        raise DataNotFoundError(
            "prepared folder not found.", file=d, fix="run `pharmafl prepare PARTNER_DIR` first."
        )

    def opt(key: str) -> Path | None:
        p = d / PREPARED_FILES[key]
        return p if p.is_file() else None

    data = load_sparsechem(
        d / PREPARED_FILES["x"],
        d / PREPARED_FILES["folding"],
        y_class=opt("y_class"),
        y_regr=opt("y_regr"),
        y_censor=opt("y_censor"),
        weights_class=opt("weights_class"),
        weights_regr=opt("weights_regr"),
        graphs=d / PREPARED_FILES["graphs"] if with_graphs else None,
    )
    data.source = d
    if data.n_cls_tasks + data.n_reg_tasks == 0:
        raise DataNotFoundError(
            "the prepared data holds no task: there is nothing to train.",
            file=d,
            fix="prepare again (pharmafl prepare PARTNER_DIR says what the quorums need) "
            "with more measurements per assay.",
        )
    log.info("loaded %r", data)
    return data


__all__ = ["PREPARED_FILES", "PreparedData", "load_prepared", "load_sparsechem"]
