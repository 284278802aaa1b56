"""Mini-batches straight from CSR matrices, without densifying X.

A batch of fingerprint rows is handed to :class:`~pharmafl.model.sparse_linear.SparseLinear`
in two layouts built here with a handful of vectorised NumPy calls (no per-row Python loop):
row-major (column ids per row, for the forward ``embedding_bag``) and column-major (batch rows
per distinct column, for the backward ``embedding_bag`` that yields the weight gradient of
only the columns present in the batch). Labels are small (batch × tasks) and are densified
with a mask of measured entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import torch

from pharmafl.model.data import PreparedData

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Batch

    from pharmafl.chem.graphs import PackedGraphs


def gather_csr_rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the stored entries of ``rows`` (in that order) and the new indptr.

    Parameters
    ----------
    indptr : ndarray, (n_rows + 1,) int64
    rows : ndarray, (b,) int64

    Returns
    -------
    positions : ndarray, (nnz_b,) int64
        Indices into the matrix's ``indices`` / ``data`` arrays.
    new_indptr : ndarray, (b + 1,) int64
    """
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    new_indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_indptr[1:])
    total = int(new_indptr[-1])
    positions = np.arange(total, dtype=np.int64) + np.repeat(starts - new_indptr[:-1], lengths)
    return positions, new_indptr


@dataclass
class SparseBatch:
    """Fingerprint rows of one batch, in row-major and column-major layout.

    Attributes
    ----------
    indices : Tensor, (nnz,) int64
        Column ids, row after row.
    offsets : Tensor, (n_rows,) int64
        Start of each row in ``indices``.
    weights : Tensor, (nnz,) float32, or None
        Values (None when every value is 1: binary fingerprints).
    t_indices : Tensor, (nnz,) int64
        Batch-row ids, grouped by column (columns ascending, rows ascending within one).
    t_offsets : Tensor, (n_columns,) int64
        Start of each distinct column in ``t_indices``.
    t_weights : Tensor, (nnz,) float32, or None
        Values in the column-major order.
    columns : Tensor, (n_columns,) int64
        The distinct columns of the batch, ascending.
    n_rows : int
    """

    indices: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor | None
    t_indices: torch.Tensor
    t_offsets: torch.Tensor
    t_weights: torch.Tensor | None
    columns: torch.Tensor
    n_rows: int

    def __len__(self) -> int:
        return self.n_rows


class SparseInputBatcher:
    """Builds :class:`SparseBatch` objects from rows of a CSR matrix.

    Parameters
    ----------
    x : csr_matrix, (n_rows, n_features)
    transform : {"none", "binarize", "log1p"}
        Applied once to the stored values (SparseChem ``--input_transform``).
    """

    def __init__(
        self, x: sp.csr_matrix, transform: Literal["none", "binarize", "log1p"] = "none"
    ) -> None:
        x = sp.csr_matrix(x)
        self.n_features = int(x.shape[1])
        self.indptr = x.indptr.astype(np.int64)
        self.indices = x.indices.astype(np.int64)
        data = x.data.astype(np.float32)
        if transform == "binarize":
            data = (data != 0).astype(np.float32)
        elif transform == "log1p":
            data = np.log1p(data).astype(np.float32)
        self.data = data
        self.all_ones = bool(np.all(data == 1.0))

    def __call__(self, rows: np.ndarray) -> SparseBatch:
        rows = np.asarray(rows, dtype=np.int64)
        pos, indptr = gather_csr_rows(self.indptr, rows)
        cols = self.indices[pos]
        vals = None if self.all_ones else self.data[pos]
        batch_row = np.repeat(np.arange(len(rows), dtype=np.int64), np.diff(indptr))
        order = np.argsort(cols, kind="stable")
        sorted_cols = cols[order]
        if len(sorted_cols):
            starts = np.concatenate(
                ([0], np.flatnonzero(sorted_cols[1:] != sorted_cols[:-1]) + 1)
            ).astype(np.int64)
        else:
            starts = np.zeros(0, dtype=np.int64)
        return SparseBatch(
            indices=torch.from_numpy(cols),
            offsets=torch.from_numpy(indptr[:-1].copy()),
            weights=None if vals is None else torch.from_numpy(vals),
            t_indices=torch.from_numpy(batch_row[order]),
            t_offsets=torch.from_numpy(starts),
            t_weights=None if vals is None else torch.from_numpy(vals[order]),
            columns=torch.from_numpy(sorted_cols[starts]),
            n_rows=len(rows),
        )


class GraphInputBatcher:
    """Builds a torch-geometric ``Batch`` from rows of a :class:`PackedGraphs`.

    Vectorised: the selected graphs' atoms and bonds are gathered in one step and each bond
    is expanded into both directions, as :meth:`PackedGraphs.get` does for one graph.
    """

    def __init__(self, graphs: PackedGraphs) -> None:
        self.graphs = graphs

    def __call__(self, rows: np.ndarray) -> Batch:
        from torch_geometric.data import Batch

        g = self.graphs.select(np.asarray(rows, dtype=np.int64))
        n_atoms = np.diff(g.atom_offsets)
        n_bonds = np.diff(g.bond_offsets)
        bond_graph = np.repeat(np.arange(len(n_bonds)), n_bonds)
        base = g.atom_offsets[:-1][bond_graph]
        src = g.bonds[:, 0].astype(np.int64) + base
        dst = g.bonds[:, 1].astype(np.int64) + base
        edge_index = np.empty((2, 2 * len(src)), dtype=np.int64)
        edge_index[0, 0::2], edge_index[1, 0::2] = src, dst
        edge_index[0, 1::2], edge_index[1, 1::2] = dst, src
        edge_attr = np.repeat(g.bond_features.astype(np.int64), 2, axis=0)
        batch_vec = np.repeat(np.arange(len(n_atoms), dtype=np.int64), n_atoms)
        # ``ptr`` makes ``num_graphs`` exact (``Batch.num_graphs`` has no setter; without
        # ``ptr`` it falls back to ``batch.max() + 1``).
        return Batch(
            x=torch.from_numpy(g.atom_features.astype(np.int64)),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(edge_attr),
            batch=torch.from_numpy(batch_vec),
            ptr=torch.from_numpy(g.atom_offsets.astype(np.int64)),
        )


@dataclass
class LabelBatch:
    """Dense labels of one batch; masks are 1.0 at measured entries, 0.0 elsewhere.

    Attributes
    ----------
    cls_y, cls_mask : Tensor, (b, n_cls_tasks) float32
        ``cls_y`` is 1.0 for actives and 0.0 for inactives and unmeasured entries.
    reg_y, reg_censor, reg_mask : Tensor, (b, n_reg_tasks) float32
        Regression targets (already standardized when the trainer normalizes), censoring
        (−1, 0, +1) and measured mask.
    """

    cls_y: torch.Tensor
    cls_mask: torch.Tensor
    reg_y: torch.Tensor
    reg_censor: torch.Tensor
    reg_mask: torch.Tensor


def _dense(m: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    indptr = m.indptr.astype(np.int64)
    pos, new_indptr = gather_csr_rows(indptr, rows)
    r = np.repeat(np.arange(len(rows)), np.diff(new_indptr))
    c = m.indices[pos]
    values = np.zeros((len(rows), m.shape[1]), dtype=np.float32)
    mask = np.zeros((len(rows), m.shape[1]), dtype=np.float32)
    values[r, c] = m.data[pos]
    mask[r, c] = 1.0
    return values, mask


class LabelBatcher:
    """Dense label batches from a partner's sparse label matrices.

    Parameters
    ----------
    data : PreparedData
    reg_mean, reg_std : ndarray, (n_reg_tasks,), optional
        Standardize regression targets as ``(y − mean) / std``.
    """

    def __init__(
        self,
        data: PreparedData,
        reg_mean: np.ndarray | None = None,
        reg_std: np.ndarray | None = None,
    ) -> None:
        self.y_cls = data.y_cls
        self.y_reg = data.y_reg
        self.censor = data.censor
        self.reg_mean = reg_mean
        self.reg_std = reg_std

    def __call__(self, rows: np.ndarray) -> LabelBatch:
        rows = np.asarray(rows, dtype=np.int64)
        cy, cm = _dense(self.y_cls, rows)
        ry, rm = _dense(self.y_reg, rows)
        rc, _ = _dense(self.censor, rows)
        if self.reg_mean is not None and self.reg_std is not None and ry.shape[1]:
            ry = ((ry - self.reg_mean) / self.reg_std * rm).astype(np.float32)
        return LabelBatch(
            cls_y=torch.from_numpy((cy > 0).astype(np.float32)),
            cls_mask=torch.from_numpy(cm),
            reg_y=torch.from_numpy(ry),
            reg_censor=torch.from_numpy(rc),
            reg_mask=torch.from_numpy(rm),
        )


__all__ = [
    "GraphInputBatcher",
    "LabelBatch",
    "LabelBatcher",
    "SparseBatch",
    "SparseInputBatcher",
    "gather_csr_rows",
]
