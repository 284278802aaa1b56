"""Synthetic SparseChem-format partner folders for tests and benchmarks.

The matrices have the shapes and sparsity of a prepared FS-Mol partner (power-law bit
frequencies, ~65 bits per row, sparse ±1 labels, censored regression values) and a learnable
signal (labels depend on a hidden low-rank function of the bits), so training measurably
helps. Files are written with exactly the names of ``docs/prepared-format.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pharmafl.common.io import atomic_directory

if TYPE_CHECKING:  # pragma: no cover
    from pharmafl.chem.graphs import PackedGraphs


def synthetic_x(
    n_rows: int, n_features: int, bits_per_row: float, rng: np.random.Generator
) -> sp.csr_matrix:
    """Binary CSR fingerprints with power-law bit frequencies (like folded ECFP)."""
    return _synthetic_x(n_rows, n_features, bits_per_row, rng)[0]


def _synthetic_x(
    n_rows: int, n_features: int, bits_per_row: float, rng: np.random.Generator
) -> tuple[sp.csr_matrix, np.ndarray]:
    rank_p = 1.0 / (np.arange(n_features) + 20.0) ** 1.1
    rank_p /= rank_p.sum()
    bit_of_rank = rng.permutation(n_features)
    counts = rng.poisson(bits_per_row, n_rows).clip(1, None)
    total = int(counts.sum())
    cols = bit_of_rank[rng.choice(n_features, size=total, p=rank_p)]
    rows = np.repeat(np.arange(n_rows), counts)
    x = sp.csr_matrix((np.ones(total, dtype=np.float32), (rows, cols)), shape=(n_rows, n_features))
    x.sum_duplicates()
    x.data[:] = 1.0
    x.sort_indices()
    return x, bit_of_rank


def _sample_entries(
    n_rows: int, n_tasks: int, density: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    n = round(density * n_rows * n_tasks)
    if n_tasks == 0 or n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys = np.unique(rng.integers(0, n_rows * n_tasks, size=n))
    return keys // n_tasks, keys % n_tasks


def write_synthetic_prepared(
    dest: str | Path,
    *,
    n_rows: int = 2000,
    n_features: int = 32_000,
    n_cls_tasks: int = 20,
    n_reg_tasks: int = 5,
    bits_per_row: float = 65.0,
    label_density: float = 0.05,
    n_folds: int = 5,
    censored_fraction: float = 0.15,
    signal_rank: int = 16,
    seed: int = 0,
    with_graphs: bool = False,
) -> Path:
    """Write a synthetic ``prepared/`` folder and return its path.

    Parameters
    ----------
    dest : path
        The ``prepared/`` folder to create (replaced atomically if it exists).
    n_rows, n_features, n_cls_tasks, n_reg_tasks : int
        Matrix shapes.
    bits_per_row : float
        Mean number of set bits per row.
    label_density : float
        Fraction of (row, task) entries measured.
    n_folds : int
        Folds assigned uniformly at random.
    censored_fraction : float
        Share of regression values stored as ``<`` or ``>`` bounds.
    signal_rank : int
        Rank of the hidden function the labels follow.
    seed : int
    with_graphs : bool
        Also write ``graphs.npz`` with random small molecules' worth of atoms and bonds
        (categories of pharmafl.chem's default vocabulary; no relation to X).
    """
    rng = np.random.default_rng(seed)
    x, bit_of_rank = _synthetic_x(n_rows, n_features, bits_per_row, rng)
    folds = rng.integers(0, n_folds, size=n_rows).astype(np.int64)
    # The signal lives on the 512 most frequent bits, so small data sets can learn it.
    latent = np.zeros((n_features, signal_rank), dtype=np.float32)
    informative = bit_of_rank[: min(512, n_features)]
    latent[informative] = rng.standard_normal((len(informative), signal_rank))
    z = np.asarray(x @ latent)
    z = (z - z.mean(axis=0)) / (z.std(axis=0) + 1e-6)

    def scores(rows: np.ndarray, tasks: np.ndarray, n_tasks: int) -> np.ndarray:
        mix = rng.standard_normal((signal_rank, max(n_tasks, 1))) / np.sqrt(signal_rank)
        s = np.einsum("ij,ji->i", z[rows], mix[:, tasks]) if len(rows) else np.zeros(0)
        return s + 0.5 * rng.standard_normal(len(rows))

    r, t = _sample_entries(n_rows, n_cls_tasks, label_density, rng)
    s = scores(r, t, n_cls_tasks)
    y_cls = sp.csr_matrix(
        (np.where(s > 0.5, 1.0, -1.0).astype(np.float32), (r, t)), shape=(n_rows, n_cls_tasks)
    )
    r2, t2 = _sample_entries(n_rows, n_reg_tasks, label_density, rng)
    v = 6.0 + scores(r2, t2, n_reg_tasks)
    cens = np.zeros(len(r2), dtype=np.float32)
    u = rng.random(len(r2))
    cens[u < censored_fraction / 2] = -1.0
    cens[(u >= censored_fraction / 2) & (u < censored_fraction)] = 1.0
    # A censored value is a bound on the true one: '>' (+1) stores a value below it.
    v = v - cens * np.abs(rng.standard_normal(len(r2)))
    order = np.lexsort((t2, r2))
    r2, t2, v, cens = r2[order], t2[order], v[order], cens[order]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(r2, minlength=n_rows), out=indptr[1:])
    y_reg = sp.csr_matrix((v.astype(np.float32), t2, indptr), shape=(n_rows, n_reg_tasks))
    y_cens = sp.csr_matrix((cens, t2.copy(), indptr.copy()), shape=(n_rows, n_reg_tasks))

    def weights(n: int, reg: bool) -> pd.DataFrame:
        df = pd.DataFrame(
            {
                "task_id": np.arange(n, dtype=np.int64),
                "training_weight": np.ones(n),
                "aggregation_weight": np.ones(n),
                "task_type": ["OTHER"] * n,
            }
        )
        if reg:
            df["censored_weight"] = np.ones(n)
        return df

    with atomic_directory(dest) as tmp:
        for prefix in ("cls", "reg"):
            sp.save_npz(tmp / f"{prefix}_T11_x.npz", x)
            np.save(tmp / f"{prefix}_T11_fold_vector.npy", folds)
        sp.save_npz(tmp / "cls_T10_y.npz", y_cls)
        sp.save_npz(tmp / "reg_T10_y.npz", y_reg)
        sp.save_npz(tmp / "reg_T10_censor_y.npz", y_cens)
        weights(n_cls_tasks, False).to_csv(tmp / "cls_weights.csv", index=False)
        weights(n_reg_tasks, True).to_csv(tmp / "reg_weights.csv", index=False)
        if with_graphs:
            _random_graphs(n_rows, rng).save(tmp / "graphs.npz")
    return Path(dest)


def _random_graphs(n: int, rng: np.random.Generator) -> PackedGraphs:
    from pharmafl.chem.graphs import DEFAULT_GRAPH_VOCABULARY, PackedGraphs

    atom_card = DEFAULT_GRAPH_VOCABULARY.atom_cardinalities
    bond_card = DEFAULT_GRAPH_VOCABULARY.bond_cardinalities
    parts = []
    for _ in range(n):
        k = int(rng.integers(3, 12))
        atoms = np.stack([rng.integers(0, c, size=k) for c in atom_card], axis=1)
        bonds = np.stack([np.arange(k - 1), np.arange(1, k)], axis=1)
        bfeat = np.stack([rng.integers(0, c, size=k - 1) for c in bond_card], axis=1)
        parts.append((atoms.astype(np.uint8), bonds.astype(np.int32), bfeat.astype(np.uint8)))
    return PackedGraphs.from_arrays(parts)


__all__ = ["synthetic_x", "write_synthetic_prepared"]
