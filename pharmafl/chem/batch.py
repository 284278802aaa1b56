"""The per-molecule work in one pass, in chunks, over processes, deterministically.

Each SMILES is parsed once; standardization, fingerprint, scrambling, scaffold, fold and graph
all use the same standardized mol (the parse of its canonical SMILES, which is what
MELLODDY-TUNER's later steps parse again). A bad molecule never raises: it becomes a row of the
rejection table (input row, reason code, message).

Parallelism: :func:`describe_structures` splits the input into chunks and runs
:func:`describe_chunk` over a process pool (:mod:`pharmafl.chem.pool`). Each worker
receives the key bytes once through the pool initializer and builds its standardizer, keyed
permutation and fold cache once. Results do not depend on ``workers`` or ``chunk_size``: every
molecule is a pure function of its SMILES, the parameters and the key, and chunks are merged in
input order. A partner with millions of compounds can equally ship :func:`describe_chunk` calls
to a cluster (e.g. a Prefect task runner) and join them with :func:`merge_batches`.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pharmafl.chem.errors import MoleculeRejectedError
from pharmafl.chem.fingerprints import morgan_bits
from pharmafl.chem.graphs import DEFAULT_GRAPH_VOCABULARY, PackedGraphs, encode_graph
from pharmafl.chem.pool import MIN_PARALLEL, chunk_bounds, map_chunks
from pharmafl.chem.scaffolds import FoldAssigner, fold_scaffold
from pharmafl.chem.scramble import KeyedPermutation
from pharmafl.chem.standardize import Standardizer
from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.errors import ChemistryError
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import ConsortiumKey

logger = logging.getLogger(__name__)

REJECTION_COLUMNS: tuple[str, ...] = ("row", "reason", "message")
#: How the message of a failure that no stage anticipated starts (``unexpected KeyError during
#: scaffold.``): such a rejection may be transient, so :mod:`pharmafl.chem.cache` never keeps it.
UNEXPECTED_PREFIX = "unexpected "


def _empty_rejections() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": pd.Series([], dtype="int64"),
            "reason": pd.Series([], dtype="object"),
            "message": pd.Series([], dtype="object"),
        }
    )


@dataclass
class DescribedBatch:
    """Descriptors of the molecules that succeeded, plus the rejections.

    Attributes
    ----------
    row_ids
        int64 input positions of the successful molecules, ascending.
    canonical_smiles
        Standardized canonical SMILES, one per row.
    x
        CSR float32 ``len(row_ids) × fold_size`` with *scrambled* columns (sorted indices):
        1.0 per set bit when binarized, else counts.
    scaffolds
        Fold scaffold SMILES per row (``""`` for acyclic); empty list without folds.
    fold_ids
        int64 fold per row; empty without folds.
    graphs
        One graph per row; empty without graphs.
    rejections
        Columns ``row`` (input position), ``reason`` (a code of
        :data:`pharmafl.chem.errors.REASON_CODES`), ``message``.
    """

    row_ids: np.ndarray
    canonical_smiles: list[str]
    x: sp.csr_matrix
    scaffolds: list[str]
    fold_ids: np.ndarray
    graphs: PackedGraphs
    rejections: pd.DataFrame

    def __len__(self) -> int:
        return len(self.row_ids)

    @property
    def has_folds(self) -> bool:
        """True when scaffolds and folds were computed (or there are no rows)."""
        return len(self.fold_ids) == len(self.row_ids)

    @property
    def has_graphs(self) -> bool:
        """True when graphs were computed (or there are no rows)."""
        return len(self.graphs) == len(self.row_ids)

    def select(self, positions: Sequence[int] | np.ndarray) -> DescribedBatch:
        """Rows at ``positions`` (positions in this batch, not input rows); no rejections."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        return DescribedBatch(
            row_ids=self.row_ids[pos],
            canonical_smiles=[self.canonical_smiles[i] for i in pos],
            x=self.x[pos],
            scaffolds=[self.scaffolds[i] for i in pos] if self.has_folds else [],
            fold_ids=self.fold_ids[pos] if self.has_folds else np.zeros(0, dtype=np.int64),
            graphs=self.graphs.select(pos) if self.has_graphs else self.graphs.select([]),
            rejections=_empty_rejections(),
        )

    def take(self, items: Sequence[int] | np.ndarray) -> DescribedBatch:
        """A batch whose input ``i`` is this batch's input ``items[i]`` (repeats allowed).

        For a batch that describes inputs ``0 … n-1`` completely (each one a row or a
        rejection, as :func:`describe_structures` returns): successes and rejections alike are
        carried over, in the order of ``items``.
        """
        src = np.asarray(items, dtype=np.int64).reshape(-1)
        position = np.full(len(self.row_ids) + len(self.rejections), -1, dtype=np.int64)
        position[self.row_ids] = np.arange(len(self.row_ids), dtype=np.int64)
        pos = position[src]
        ok = pos >= 0
        out = self.select(pos[ok])
        out.row_ids = np.flatnonzero(ok).astype(np.int64)
        bad_rows = np.flatnonzero(~ok)
        if len(bad_rows):
            picked = self.rejections.set_index("row").loc[src[bad_rows]]
            out.rejections = pd.DataFrame(
                {
                    "row": bad_rows.astype(np.int64),
                    "reason": picked["reason"].to_numpy(dtype=object),
                    "message": picked["message"].to_numpy(dtype=object),
                }
            )
        return out


class _Worker:
    """Everything one process needs, built once: standardizer, permutation, fold cache."""

    def __init__(self, params: ConsortiumParameters, key: ConsortiumKey) -> None:
        self.params = params
        self.standardizer = Standardizer(params.standardization)
        self.permutation = KeyedPermutation(key, params.fingerprint.fold_size)
        self.folds = FoldAssigner(key, params.folding.nfolds)
        self.vocabulary = DEFAULT_GRAPH_VOCABULARY

    def describe(
        self, smiles: Sequence[Any], *, with_graphs: bool, with_folds: bool
    ) -> DescribedBatch:
        p = self.params
        fp_params = p.fingerprint
        nrings = p.folding.nrings_target
        table = self.permutation.table
        std = self.standardizer
        rows: list[int] = []
        canon: list[str] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        scaffolds: list[str] = []
        folds: list[int] = []
        graphs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        rejected: list[tuple[int, str, str]] = []
        for i, smi in enumerate(smiles):
            stage = "standardize"
            try:
                can, clean = std.standardize_text(smi)
                stage = "fingerprint"
                idx, val = morgan_bits(clean, fp_params)
                scrambled = table[idx]
                order = np.argsort(scrambled)
                if with_folds:
                    stage = "scaffold"
                    scaffold = fold_scaffold(clean, nrings)
                    fold = self.folds(scaffold)
                if with_graphs:
                    stage = "graph"
                    graph = encode_graph(clean, self.vocabulary)
            except MoleculeRejectedError as exc:
                rejected.append((i, exc.code, exc.message))
                continue
            except Exception as exc:  # never raise for one molecule
                logger.debug("unexpected %s at stage %s, row %d", type(exc).__name__, stage, i)
                rejected.append(
                    (i, stage, f"{UNEXPECTED_PREFIX}{type(exc).__name__} during {stage}.")
                )
                continue
            rows.append(i)
            canon.append(can)
            cols.append(scrambled[order])
            vals.append(val[order])
            if with_folds:
                scaffolds.append(scaffold)
                folds.append(fold)
            if with_graphs:
                graphs.append(graph)
        return DescribedBatch(
            row_ids=np.asarray(rows, dtype=np.int64),
            canonical_smiles=canon,
            x=_csr(cols, vals, fp_params.fold_size),
            scaffolds=scaffolds,
            fold_ids=np.asarray(folds, dtype=np.int64),
            graphs=PackedGraphs.from_arrays(graphs, self.vocabulary),
            rejections=_rejections(rejected),
        )


def _csr(cols: list[np.ndarray], vals: list[np.ndarray], n_cols: int) -> sp.csr_matrix:
    lengths = np.fromiter((len(c) for c in cols), dtype=np.int64, count=len(cols))
    indptr = np.zeros(len(cols) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    if cols:
        indices = np.concatenate(cols)
        data = np.concatenate(vals).astype(np.float32, copy=False)
    else:
        indices = np.zeros(0, dtype=np.int64)
        data = np.zeros(0, dtype=np.float32)
    return _make_csr(data, indices, indptr, len(cols), n_cols)


def _make_csr(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, n_rows: int, n_cols: int
) -> sp.csr_matrix:
    itype = np.int32 if len(data) < np.iinfo(np.int32).max else np.int64
    x = sp.csr_matrix(
        (data, indices.astype(itype, copy=False), indptr.astype(itype, copy=False)),
        shape=(n_rows, n_cols),
    )
    x.has_sorted_indices = True
    return x


def _rejections(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    if not rows:
        return _empty_rejections()
    df = pd.DataFrame(rows, columns=list(REJECTION_COLUMNS))
    df["row"] = df["row"].astype("int64")
    return df


_LOCAL = threading.local()  # one set of helpers per thread: RDKit objects are not shared


def _worker_for(params: ConsortiumParameters, key: ConsortiumKey) -> _Worker:
    # The cache id is a keyed digest, so the raw key is not a dict key.
    ident = (params.model_dump_json(), hmac_sha256(key.reveal(), b"pharmafl-chem-worker"))
    workers: dict[tuple[str, bytes], _Worker] | None = getattr(_LOCAL, "workers", None)
    if workers is None:
        workers = _LOCAL.workers = {}
    worker = workers.get(ident)
    if worker is None:
        if len(workers) >= 4:
            workers.clear()
        worker = workers[ident] = _Worker(params, key)
    return worker


def describe_chunk(
    smiles: Sequence[Any],
    params: ConsortiumParameters,
    key: ConsortiumKey,
    *,
    with_graphs: bool = True,
    with_folds: bool = True,
) -> DescribedBatch:
    """Standardize and describe one chunk of SMILES (``row_ids`` relative to the chunk).

    A pure function of its arguments; per-process helpers (RDKit standardizer objects, the keyed
    permutation, scaffold and fold caches) are built on first use and reused.

    Parameters
    ----------
    smiles
        SMILES strings; None/NaN/blank become ``empty`` rejections.
    params
        Consortium parameters (standardization, fingerprint, folding).
    key
        Consortium key (scrambling and folds).
    with_graphs, with_folds
        Skip graphs or scaffolds/folds (e.g. at prediction time).
    """
    return _worker_for(params, key).describe(smiles, with_graphs=with_graphs, with_folds=with_folds)


def merge_batches(batches: Sequence[DescribedBatch], offsets: Sequence[int]) -> DescribedBatch:
    """Join chunk results; chunk ``k``'s rows are shifted by ``offsets[k]``.

    Raises
    ------
    ChemistryError
        If the lengths differ, the merged rows are not ascending, or the batches disagree on
        the fingerprint size, folds or graphs.
    """
    if len(batches) != len(offsets):
        raise ChemistryError(f"{len(batches)} batches but {len(offsets)} offsets.")
    if not batches:
        raise ChemistryError("no batches to merge.")
    n_cols = {b.x.shape[1] for b in batches}
    if len(n_cols) != 1:
        raise ChemistryError(f"batches have different fingerprint sizes {sorted(n_cols)}.")
    with_folds = any(len(b.fold_ids) for b in batches)
    with_graphs = any(len(b.graphs) for b in batches)
    for b in batches:
        if (with_folds and not b.has_folds) or (with_graphs and not b.has_graphs):
            raise ChemistryError("cannot merge batches described with different options.")
    row_ids = np.concatenate(
        [b.row_ids + int(o) for b, o in zip(batches, offsets, strict=True)]
    ).astype(np.int64)
    if np.any(np.diff(row_ids) <= 0):
        raise ChemistryError("merged rows are not ascending; give offsets in input order.")
    ptrs = [np.zeros(1, dtype=np.int64)]
    base = 0
    for b in batches:
        ptrs.append(b.x.indptr[1:].astype(np.int64) + base)
        base += int(b.x.indptr[-1])
    x = _make_csr(
        np.concatenate([b.x.data for b in batches]).astype(np.float32, copy=False),
        np.concatenate([b.x.indices.astype(np.int64) for b in batches]),
        np.concatenate(ptrs),
        len(row_ids),
        n_cols.pop(),
    )
    rejections = [
        b.rejections.assign(row=b.rejections["row"].to_numpy(np.int64) + int(o))
        for b, o in zip(batches, offsets, strict=True)
        if len(b.rejections)
    ]
    return DescribedBatch(
        row_ids=row_ids,
        canonical_smiles=[s for b in batches for s in b.canonical_smiles],
        x=x,
        scaffolds=[s for b in batches for s in b.scaffolds],
        fold_ids=np.concatenate([b.fold_ids for b in batches]).astype(np.int64),
        graphs=PackedGraphs.concatenate([b.graphs for b in batches]),
        rejections=(
            pd.concat(rejections, ignore_index=True) if rejections else _empty_rejections()
        ),
    )


def describe_structures(
    smiles: Sequence[Any],
    params: ConsortiumParameters,
    key: ConsortiumKey,
    *,
    workers: int = 1,
    chunk_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    with_graphs: bool = True,
    with_folds: bool = True,
) -> DescribedBatch:
    """Standardize and describe all ``smiles``; identical results for any workers/chunk size.

    Parameters
    ----------
    smiles
        SMILES strings in input order (``row_ids`` and rejection rows index into it).
    params, key
        Consortium parameters and key.
    workers
        Processes; ``1`` runs in this process, ``0`` uses every core (for fewer than 200
        molecules it runs in this process).
    chunk_size
        Most molecules per task (with several processes the chunks shrink towards the end, see
        :func:`chunk_bounds`).
    progress
        Called with the number of molecules finished since its previous call.
    with_graphs, with_folds
        Skip graphs or scaffolds/folds.

    Returns
    -------
    DescribedBatch
        All successful molecules in input order, and every rejection.
    """
    if chunk_size < 1:
        raise ChemistryError(f"chunk_size must be >= 1, got {chunk_size}.")
    if workers < 0:
        raise ChemistryError(f"workers must be >= 0, got {workers}.")
    items = list(smiles)
    unique, inverse = unique_smiles(items)
    if len(unique) == len(items):
        return _describe_all(
            items, params, key, workers, chunk_size, progress, with_graphs, with_folds
        )
    # The same SMILES text gives the same result: describe it once, copy it to every row.
    logger.info(
        "%d of %d SMILES are repeats; describing each once", len(items) - len(unique), len(items)
    )
    done = _describe_all(
        unique, params, key, workers, chunk_size, progress, with_graphs, with_folds
    )
    if progress is not None:
        progress(len(items) - len(unique))
    return done.take(inverse)


def unique_smiles(items: list[Any]) -> tuple[list[Any], np.ndarray]:
    """First occurrences of each SMILES text (non-text values are never merged) and, for every
    input position, its index among them."""
    first: dict[str, int] = {}
    unique: list[Any] = []
    inverse = np.empty(len(items), dtype=np.int64)
    for i, s in enumerate(items):
        if isinstance(s, str):
            j = first.get(s)
            if j is None:
                j = first[s] = len(unique)
                unique.append(s)
        else:
            j = len(unique)
            unique.append(s)
        inverse[i] = j
    return unique, inverse


def _describe_all(
    items: list[Any],
    params: ConsortiumParameters,
    key: ConsortiumKey,
    workers: int,
    chunk_size: int,
    progress: Callable[[int], None] | None,
    with_graphs: bool,
    with_folds: bool,
) -> DescribedBatch:
    n = len(items)
    n_workers = workers
    if workers == 0:
        n_workers = (os.cpu_count() or 1) if n >= MIN_PARALLEL else 1
    bounds = chunk_bounds(n, chunk_size, n_workers)
    n_workers = min(n_workers, len(bounds))

    def done(res: DescribedBatch) -> None:
        if progress is not None:
            progress(len(res.row_ids) + len(res.rejections))

    if n_workers <= 1:
        results = []
        for s, e in bounds:
            results.append(
                describe_chunk(
                    items[s:e], params, key, with_graphs=with_graphs, with_folds=with_folds
                )
            )
            if e > s:
                done(results[-1])
    else:
        logger.info(
            "describing %d molecules with %d processes in %d chunks", n, n_workers, len(bounds)
        )
        results = map_chunks(
            functools.partial(_pool_task, with_graphs=with_graphs, with_folds=with_folds),
            [items[s:e] for s, e in bounds],
            n_workers,
            initializer=_init_pool_worker,
            initargs=(key.reveal(), params.model_dump_json()),
            on_done=done,
        )
    return merge_batches(results, [s for s, _ in bounds])


# -- in a pool worker (pharmafl.chem.pool runs these) -------------------------------------------

_POOL_STATE: dict[str, Any] = {}


def _init_pool_worker(key_bytes: bytes, params_json: str) -> None:
    params = ConsortiumParameters.model_validate_json(params_json)
    key = ConsortiumKey(key_bytes)
    _POOL_STATE["params"] = params
    _POOL_STATE["key"] = key
    _worker_for(params, key)  # build the permutation once per process


def _pool_task(smiles: list[Any], with_graphs: bool, with_folds: bool) -> DescribedBatch:
    return describe_chunk(
        smiles,
        _POOL_STATE["params"],
        _POOL_STATE["key"],
        with_graphs=with_graphs,
        with_folds=with_folds,
    )


__all__ = [
    "REJECTION_COLUMNS",
    "UNEXPECTED_PREFIX",
    "DescribedBatch",
    "describe_chunk",
    "describe_structures",
    "merge_batches",
    "unique_smiles",
]
