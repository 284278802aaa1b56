"""A partner's cache of per-molecule results, so that a refresh describes only new structures.

The per-molecule work (standardize, fingerprint, scramble, scaffold fold, graph) is ~90 % of
``prepare``, and each molecule's result is a pure function of its input text, the consortium
parameters, the key and the code (:mod:`pharmafl.chem.batch`). :func:`describe_with_cache`
keeps that result per exact input text in the partner's private folder
(``PartnerLayout.describe_cache``) and describes only the texts it has not seen; the batch it
returns is the one :func:`~pharmafl.chem.describe_structures` would return, so every output
of ``prepare`` is byte-identical to a full run (tested).

Scope
    One digest (:func:`cache_scope`) of everything that can change a molecule's result: the
    consortium parameters' canonical hash, a keyed digest of the key (HMAC-SHA256 of
    ``"pharmafl/prepare-cache/v1"``: the key itself is not stored, but the digest is a check
    value against which a short key could be guessed offline, and the file pairs input texts
    with scrambled fingerprints, as ``prepared/`` does: keep it as private as ``prepared/``),
    the RDKit and pharmafl versions, a digest of the chemistry source code, the graph
    vocabulary and the describe options. A file of another scope is never used, and the next
    save replaces it: there is one cache file, never more.

Integrity
    The file is trusted as much as ``prepared/`` beside it: whoever can write the partner's
    folder can change either. Accidental damage is caught (the zip CRC, shape checks); a
    deliberate edit by someone with write access to the folder is not.

File
    ``describe.npz``, read with ``allow_pickle=False``: the input texts, each success
    (canonical SMILES, scrambled fingerprint as CSR, scaffold and fold, packed graph) and each
    rejection (reason, message) of exactly the last run's structures, so it never outgrows one
    input. Written atomically (a temporary file renamed into place). A file that is unreadable,
    truncated, inconsistent or of another scope is ignored with one log line, and the run
    describes everything afresh.

Failures that no stage anticipated (messages starting with
:data:`~pharmafl.chem.batch.UNEXPECTED_PREFIX`) may be transient and are never kept.
"""

from __future__ import annotations

import functools
import logging
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rdkit

import pharmafl
from pharmafl.chem.batch import (
    UNEXPECTED_PREFIX,
    DescribedBatch,
    _make_csr,
    merge_batches,
    unique_smiles,
)
from pharmafl.chem.graphs import DEFAULT_GRAPH_VOCABULARY, PackedGraphs
from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.errors import ChemistryError
from pharmafl.common.io import atomic_path, canonical_json, sha256_bytes
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import ConsortiumKey

logger = logging.getLogger(__name__)

#: The file format, and the message of the keyed digest that stands for the key in the scope.
CACHE_FORMAT = "pharmafl/prepare-cache/v1"
#: Deflate level of the file: the fastest (about 260 bytes per structure on FS-Mol with graphs).
_COMPRESS_LEVEL = 1
#: A temporary file this old was left by a killed run (a live save takes seconds).
_STALE_TEMP_SECONDS = 3600.0

#: Cache states reported by :class:`CacheReport`.
CACHE_STATES = ("missing", "used", "other_scope", "unreadable")


@functools.cache
def _code_digest() -> str:
    """SHA-256 of the source of every module a molecule's result depends on, so that a code
    change invalidates the cache even without a version bump (a developer's checkout)."""
    chem = Path(__file__).resolve().parent
    files = [*sorted(chem.glob("*.py")), chem.parent / "common" / "crypto.py"]
    parts = []
    for f in files:
        try:
            parts.append(f"{f.name}:{sha256_bytes(f.read_bytes())}")
        except OSError:  # installed without sources: the version alone must do
            parts.append(f"{f.name}:?")
    return sha256_bytes("\n".join(parts).encode())


def cache_scope(
    params: ConsortiumParameters, key: ConsortiumKey, *, with_graphs: bool, with_folds: bool
) -> str:
    """The digest a cache file must carry to be used: hex SHA-256 of everything that changes
    a molecule's result (see the module docstring). It holds a keyed digest of the key, not
    the key (a check value: keep it private)."""
    doc = {
        "format": CACHE_FORMAT,
        "parameters": params.parameter_hash(),
        "key": hmac_sha256(key.reveal(), CACHE_FORMAT.encode()).hex(),
        "rdkit": rdkit.__version__,
        "pharmafl": pharmafl.__version__,
        "code": _code_digest(),
        "graph_vocabulary": sha256_bytes(DEFAULT_GRAPH_VOCABULARY.model_dump_json().encode()),
        "with_graphs": with_graphs,
        "with_folds": with_folds,
    }
    return sha256_bytes(canonical_json(doc))


@dataclass
class CachedResults:
    """Results by input text: input ``i`` of ``batch`` (a row or a rejection) is ``texts[i]``."""

    texts: list[str]
    batch: DescribedBatch


@dataclass(frozen=True)
class CacheReport:
    """What the cache did in one :func:`describe_with_cache` call.

    Attributes
    ----------
    state
        One of :data:`CACHE_STATES`: ``used`` (a valid file was read), ``missing``,
        ``other_scope`` (parameters, key, versions or options changed), ``unreadable``.
    cached
        Input rows whose result came from the cache.
    described
        Distinct structures described in this call.
    saved
        True when the file was (re)written.
    """

    state: str
    cached: int
    described: int
    saved: bool


# -- the file -----------------------------------------------------------------------------------


def _pack_texts(texts: Sequence[str]) -> dict[str, np.ndarray]:
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    blob = "".join(texts).encode("utf-8", "surrogatepass")
    return {"blob": np.frombuffer(blob, dtype=np.uint8), "offsets": offsets}


def _unpack_texts(blob: np.ndarray, offsets: np.ndarray, n: int) -> list[str]:
    text = blob.tobytes().decode("utf-8", "surrogatepass")
    if (
        offsets.shape != (n + 1,)
        or offsets[0] != 0
        or offsets[-1] != len(text)
        or np.any(np.diff(offsets) < 0)
    ):
        raise ChemistryError("inconsistent text offsets.")
    o = offsets.tolist()
    return [text[o[i] : o[i + 1]] for i in range(n)]


def _arrays(results: CachedResults, scope: str) -> dict[str, np.ndarray]:
    b = results.batch
    ok = np.zeros(len(results.texts), dtype=bool)
    ok[b.row_ids] = True
    rej = b.rejections.sort_values("row", kind="stable")
    if not np.array_equal(rej["row"].to_numpy(np.int64), np.flatnonzero(~ok)):
        raise ChemistryError("cached results must describe every text once.")
    out: dict[str, np.ndarray] = {
        "format": np.array(CACHE_FORMAT),
        "scope": np.array(scope),
        "ok": ok,
        "x_indptr": b.x.indptr.astype(np.int64),
        "x_indices": np.asarray(b.x.indices, dtype=np.int32),
        "x_data": np.asarray(b.x.data, dtype=np.float32),
        "x_cols": np.array(b.x.shape[1], dtype=np.int64),
        "fold_ids": b.fold_ids.astype(np.int64),
        "atom_features": b.graphs.atom_features,
        "bonds": b.graphs.bonds,
        "bond_features": b.graphs.bond_features,
        "atom_offsets": b.graphs.atom_offsets,
        "bond_offsets": b.graphs.bond_offsets,
    }
    for name, texts in (
        ("texts", results.texts),
        ("canonical", b.canonical_smiles),
        ("scaffolds", b.scaffolds),
        ("reasons", rej["reason"].astype(str).tolist()),
        ("messages", rej["message"].astype(str).tolist()),
    ):
        for part, arr in _pack_texts(texts).items():
            out[f"{name}_{part}"] = arr
    return out


def _results(z: Any, scope: str) -> CachedResults:
    """Rebuild the results from the file's arrays, checking that they fit together."""
    if str(z["format"]) != CACHE_FORMAT or str(z["scope"]) != scope:
        raise ChemistryError("another format or scope.")
    ok = np.asarray(z["ok"], dtype=bool).reshape(-1)
    n, n_ok = len(ok), int(ok.sum())

    def texts(name: str, count: int) -> list[str]:
        return _unpack_texts(z[f"{name}_blob"], z[f"{name}_offsets"], count)

    indptr, indices, n_cols = z["x_indptr"], z["x_indices"], int(z["x_cols"])
    if (
        indptr.shape != (n_ok + 1,)
        or indptr[0] != 0
        or np.any(np.diff(indptr) < 0)
        or indptr[-1] != len(indices)
        or len(indices) != len(z["x_data"])
        or (len(indices) and (indices.min() < 0 or indices.max() >= n_cols))
    ):
        raise ChemistryError("inconsistent fingerprints.")
    fold_ids = z["fold_ids"].astype(np.int64)
    scaffolds = texts("scaffolds", len(fold_ids))
    graphs = PackedGraphs(
        z["atom_features"],
        z["bonds"],
        z["bond_features"],
        z["atom_offsets"],
        z["bond_offsets"],
        DEFAULT_GRAPH_VOCABULARY,
    )
    if len(fold_ids) not in (0, n_ok) or len(graphs) not in (0, n_ok):
        raise ChemistryError("inconsistent folds or graphs.")
    bad = np.flatnonzero(~ok)
    batch = DescribedBatch(
        row_ids=np.flatnonzero(ok).astype(np.int64),
        canonical_smiles=texts("canonical", n_ok),
        x=_make_csr(z["x_data"].astype(np.float32), indices, indptr, n_ok, n_cols),
        scaffolds=scaffolds,
        fold_ids=fold_ids,
        graphs=graphs,
        rejections=pd.DataFrame(
            {
                "row": bad.astype(np.int64),
                "reason": np.array(texts("reasons", len(bad)), dtype=object),
                "message": np.array(texts("messages", len(bad)), dtype=object),
            }
        ),
    )
    return CachedResults(texts("texts", n), batch)


class DescribeCache:
    """The cache file ``path`` of one :func:`cache_scope`.

    Parameters
    ----------
    path
        The file (``PartnerLayout.describe_cache``); its folder is created owner-only.
    scope
        :func:`cache_scope` of this run.
    """

    def __init__(self, path: str | Path, scope: str) -> None:
        self.path = Path(path)
        self.scope = scope

    def __repr__(self) -> str:
        return f"DescribeCache({str(self.path)!r})"

    def load(self) -> tuple[CachedResults | None, str]:
        """The cached results and the state (``used``, ``missing``, ``other_scope``,
        ``unreadable``); never raises for a bad file."""
        if not self.path.is_file():
            return None, "missing"
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if str(z["scope"]) != self.scope:
                    logger.info("prepare cache: made for other parameters, key or versions; unused")
                    return None, "other_scope"
                return _results(z, self.scope), "used"
        except Exception as exc:  # any damage means "describe afresh", never a failed run
            logger.warning(
                "prepare cache: %s is unreadable (%s); describing every structure afresh",
                self.path.name,
                type(exc).__name__,
            )
            return None, "unreadable"

    def save(self, results: CachedResults) -> None:
        """Replace the file by ``results`` atomically (a temporary file renamed into place)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweep_stale_temps()
        arrays = _arrays(results, self.scope)
        with (
            atomic_path(self.path) as tmp,
            zipfile.ZipFile(
                tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=_COMPRESS_LEVEL
            ) as zf,
        ):
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)

    def _sweep_stale_temps(self) -> None:
        """Remove temporary files that a killed run left (an interrupted save removes its own)."""
        cutoff = time.time() - _STALE_TEMP_SECONDS
        for tmp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                continue


# -- describing with it -------------------------------------------------------------------------


def _keep(texts: Sequence[Any], batch: DescribedBatch) -> np.ndarray:
    """Which inputs to keep: texts, but not failures no stage anticipated (maybe transient)."""
    keep = np.fromiter((isinstance(t, str) for t in texts), dtype=bool, count=len(texts))
    rej = batch.rejections
    if len(rej):
        unexpected = rej["message"].astype(str).str.startswith(UNEXPECTED_PREFIX).to_numpy()
        keep[rej["row"].to_numpy(np.int64)[unexpected]] = False
    return keep


def describe_with_cache(
    smiles: Sequence[Any],
    describe: Callable[[list[Any]], DescribedBatch],
    cache: DescribeCache,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[DescribedBatch, CacheReport]:
    """Describe ``smiles`` like :func:`~pharmafl.chem.describe_structures`, reusing cached
    results for texts described before and saving this run's results.

    Parameters
    ----------
    smiles
        Structures in input order (texts; other values are described, never cached).
    describe
        Describes a list of structures (the texts not in the cache), e.g. a
        ``describe_structures`` call with the run's parameters, key and workers.
    cache
        The cache of this run's scope.
    progress
        Called with the number of inputs finished: the cached ones at once, the rest as
        ``describe`` reports them (``describe`` gets the same callback from its caller).

    Returns
    -------
    tuple of DescribedBatch and CacheReport
        The batch equals a full description of ``smiles``.
    """
    items = list(smiles)
    unique, inverse = unique_smiles(items)
    previous, state = cache.load()
    n_previous = len(previous.texts) if previous is not None else 0
    index = {t: i for i, t in enumerate(previous.texts)} if previous is not None else {}
    source = np.fromiter(
        (index.get(u, -1) if isinstance(u, str) else -1 for u in unique),
        dtype=np.int64,
        count=len(unique),
    )
    del index
    hit_at, miss_at = np.flatnonzero(source >= 0), np.flatnonzero(source < 0)
    misses = [unique[j] for j in miss_at]
    cached_rows = int((source >= 0)[inverse].sum())
    if progress is not None and cached_rows:
        progress(cached_rows)
    # The pool: the hits, then the misses (each distinct input once); at[j]: unique j's place.
    parts, offsets = [], []
    if len(hit_at) and previous is not None:
        parts.append(previous.batch.take(source[hit_at]))
        offsets.append(0)
    del previous  # only the hits stay in memory while the misses are described
    if misses or not parts:
        parts.append(describe(misses))
        offsets.append(len(hit_at))
    if progress is not None and len(items) - cached_rows - len(misses) > 0:
        progress(len(items) - cached_rows - len(misses))  # repeats of the new texts
    pool = merge_batches(parts, offsets)
    del parts
    at = np.empty(len(unique), dtype=np.int64)
    at[hit_at] = np.arange(len(hit_at), dtype=np.int64)
    at[miss_at] = len(hit_at) + np.arange(len(misses), dtype=np.int64)
    batch = pool.take(at[inverse])
    texts = [unique[j] for j in hit_at] + misses
    saved = _save(cache, texts, pool, len(hit_at), n_previous)
    return batch, CacheReport(state, cached_rows, len(misses), saved)


def _save(
    cache: DescribeCache, texts: list[Any], pool: DescribedBatch, n_hit: int, n_previous: int
) -> bool:
    """Save the pool's results (in any order: the file maps texts to results), unless the
    file holds exactly these texts already."""
    keep = _keep(texts, pool)
    if n_previous and n_hit == n_previous and not keep[n_hit:].any():
        return False  # every cached text came back and no new one is worth keeping
    if not keep.all():
        idx = np.flatnonzero(keep)
        texts, pool = [texts[i] for i in idx], pool.take(idx)
    try:
        cache.save(CachedResults(texts, pool))
    except OSError as exc:  # a full disk or a read-only folder costs the next run time, no more
        logger.warning("prepare cache: not saved (%s)", type(exc).__name__)
        return False
    return True


__all__ = [
    "CACHE_FORMAT",
    "CACHE_STATES",
    "CacheReport",
    "CachedResults",
    "DescribeCache",
    "cache_scope",
    "describe_with_cache",
]
