"""Descriptor vectors: collapse compounds with identical X rows and folds (TUNER T5/T6).

After standardization, different input compounds can give the same scrambled fingerprint
(salts, stereoisomers with stereo removed, tautomers). MELLODDY-TUNER groups identical
``(fp_feat, fp_val, fold_id)`` triples into one *descriptor vector* (``descriptor_vector_id``);
T5 maps every input compound to its descriptor vector and T6 holds one row per vector
[MELLODDY-TUNER 3.0.2, ``helper.format_dataframe``].
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from pharmafl.common.errors import PreparationError

log = logging.getLogger(__name__)


def _canonical_rows(x: csr_matrix) -> csr_matrix:
    """A float32 CSR copy with sorted indices, summed duplicates and no stored zeros."""
    c = csr_matrix(x, dtype=np.float32, copy=True)
    c.sum_duplicates()
    c.eliminate_zeros()
    c.sort_indices()
    return c


def row_digests(x: csr_matrix, fold_ids: np.ndarray) -> list[bytes]:
    """A 128-bit BLAKE2b digest per row of ``(column indices, values, fold)``.

    The row is first made canonical (sorted int32 indices, float32 values), so equal rows
    give equal digests whatever their original storage; different rows collide only with
    probability ~2⁻¹²⁸.
    """
    c = _canonical_rows(x)
    idx = memoryview(c.indices.astype(np.int32, copy=False).tobytes())
    val = memoryview(c.data.astype(np.float32, copy=False).tobytes())
    folds = np.asarray(fold_ids, dtype=np.int64)
    fold_bytes = [int(f).to_bytes(8, "little", signed=True) for f in folds]
    indptr = (c.indptr * 4).tolist()
    blake = hashlib.blake2b
    out: list[bytes] = []
    append = out.append
    for i in range(c.shape[0]):
        s, e = indptr[i], indptr[i + 1]
        h = blake(fold_bytes[i], digest_size=16)
        h.update(idx[s:e])
        h.update(b"|")
        h.update(val[s:e])
        append(h.digest())
    return out


def dedupe_descriptors(
    compound_ids: np.ndarray, x: csr_matrix, fold_ids: np.ndarray
) -> tuple[pd.DataFrame, csr_matrix, np.ndarray]:
    """Group compounds with identical X rows *and* fold into descriptor vectors.

    Descriptor vectors are numbered ``0, 1, …`` in order of first appearance in the input,
    so the numbering is deterministic for a given input order. Identity is decided on the
    canonical row content (column indices and values) plus the fold id, through a 128-bit
    BLAKE2b digest per row (:func:`row_digests`).

    Parameters
    ----------
    compound_ids
        ``(n,)`` integer ``input_compound_id`` of each row of ``x``; must be unique.
    x
        ``(n, fold_size)`` CSR fingerprint rows (scrambled bits or counts).
    fold_ids
        ``(n,)`` fold id of each row.

    Returns
    -------
    t5 : pandas.DataFrame
        One row per input compound, **in input order**: ``input_compound_id``,
        ``descriptor_vector_id``, ``fold_id`` (all int64).
    x_unique : scipy.sparse.csr_matrix
        ``(n_vectors, fold_size)`` float32, row ``i`` is descriptor vector ``i``.
    folds_unique : numpy.ndarray
        ``(n_vectors,)`` int64 fold of each descriptor vector.

    Raises
    ------
    PreparationError
        When lengths disagree or compound ids repeat.
    """
    ids = np.asarray(compound_ids, dtype=np.int64)
    folds = np.asarray(fold_ids, dtype=np.int64)
    x = csr_matrix(x)
    if not (len(ids) == len(folds) == x.shape[0]):
        raise PreparationError(
            f"descriptor inputs disagree: {len(ids)} compound ids, {len(folds)} fold ids, "
            f"{x.shape[0]} X rows.",
            fix="pass the ids, folds and X rows of the same described batch.",
        )
    if len(np.unique(ids)) != len(ids):
        raise PreparationError(
            "input_compound_id repeats among described compounds.",
            fix="give every structure in T2 a unique input_compound_id.",
        )
    digests = row_digests(x, folds)
    codes, first = pd.factorize(pd.Series(digests, dtype=object), sort=False)
    codes = codes.astype(np.int64)
    n_unique = len(first)
    first_row = np.full(n_unique, -1, dtype=np.int64)
    # position of the first occurrence of each code (codes appear in order 0, 1, 2 …)
    order = np.arange(len(codes) - 1, -1, -1)
    first_row[codes[order]] = order
    x_unique = _canonical_rows(x[first_row]) if n_unique else _canonical_rows(x[:0])
    folds_unique = folds[first_row]
    t5 = pd.DataFrame({"input_compound_id": ids, "descriptor_vector_id": codes, "fold_id": folds})
    log.info("descriptor vectors: %d compounds → %d unique rows", len(ids), n_unique)
    return t5, x_unique, folds_unique


__all__ = ["dedupe_descriptors", "row_digests"]
