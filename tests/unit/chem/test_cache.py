"""The per-molecule cache: a refresh equals a full description; a change of scope or a damaged
file means describing afresh, never a wrong result or a failed run."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rdkit

import pharmafl
from pharmafl.chem import (
    CacheReport,
    DescribeCache,
    DescribedBatch,
    cache_scope,
    describe_structures,
    describe_with_cache,
)
from pharmafl.chem import cache as cache_module
from pharmafl.common.errors import ChemistryError
from pharmafl.common.params import ConsortiumParameters, FingerprintParams
from pharmafl.common.secret import ConsortiumKey
from tests.unit.chem.conftest import BAD_INPUTS, assert_same_batch


class _Describer:
    """``describe_structures`` in this process, recording what it is asked to describe."""

    def __init__(
        self,
        params: ConsortiumParameters,
        key: ConsortiumKey,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.params, self.key, self.progress = params, key, progress
        self.calls: list[list[Any]] = []

    def __call__(self, items: list[Any]) -> DescribedBatch:
        self.calls.append(list(items))
        return describe_structures(items, self.params, self.key, workers=1, progress=self.progress)


def _cache(path: Path, params: ConsortiumParameters, key: ConsortiumKey) -> DescribeCache:
    return DescribeCache(path, cache_scope(params, key, with_graphs=True, with_folds=True))


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "describe.npz"


def test_a_refresh_equals_a_full_description(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    describe = _Describer(params, key)
    base = fsmol_sample[:40] + BAD_INPUTS[:4]
    batch, report = describe_with_cache(base, describe, _cache(cache_file, params, key))
    assert_same_batch(batch, describe_structures(base, params, key))
    assert report == CacheReport("missing", 0, len(describe.calls[0]), True)
    # Reordered, some rows gone, repeats, new structures, new and known rejections.
    final = fsmol_sample[5:40][::-1] + fsmol_sample[40:50] + fsmol_sample[5:8] + BAD_INPUTS
    done: list[int] = []
    describe.progress = done.append
    batch, report = describe_with_cache(
        final, describe, _cache(cache_file, params, key), progress=done.append
    )
    assert_same_batch(batch, describe_structures(final, params, key))
    known = {s for s in base if isinstance(s, str)}
    new = list(dict.fromkeys(s for s in final if not (isinstance(s, str) and s in known)))
    assert [str(s) for s in describe.calls[1]] == [str(s) for s in new]
    assert report.state == "used" and report.saved
    assert report.cached == sum(isinstance(s, str) and s in known for s in final)
    assert sum(done) == len(final)  # the cached rows at once, the rest as described


def test_a_rerun_without_changes_describes_and_writes_nothing(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    describe = _Describer(params, key)
    smiles = [*fsmol_sample[:20], "", "C1CC", fsmol_sample[0]]
    describe_with_cache(smiles, describe, _cache(cache_file, params, key))
    before = cache_file.stat().st_mtime_ns, cache_file.read_bytes()
    batch, report = describe_with_cache(smiles, describe, _cache(cache_file, params, key))
    assert_same_batch(batch, describe_structures(smiles, params, key))
    assert report == CacheReport("used", len(smiles), 0, False)
    assert len(describe.calls) == 1
    assert (cache_file.stat().st_mtime_ns, cache_file.read_bytes()) == before


def test_the_file_keeps_only_the_last_inputs(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    cache = _cache(cache_file, params, key)
    describe_with_cache(fsmol_sample[:30], _Describer(params, key), cache)
    describe_with_cache(fsmol_sample[20:40], _Describer(params, key), cache)
    kept, state = cache.load()
    assert state == "used" and kept is not None
    assert sorted(kept.texts) == sorted(fsmol_sample[20:40])  # the removed do not pile up
    assert [p.name for p in cache_file.parent.iterdir()] == [cache_file.name]


def test_scope_covers_parameters_key_versions_and_options(
    params: ConsortiumParameters, key: ConsortiumKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scope(p: ConsortiumParameters = params, k: ConsortiumKey = key, graphs: bool = True) -> str:
        return cache_scope(p, k, with_graphs=graphs, with_folds=True)

    same = scope()
    assert same == scope(ConsortiumParameters(), ConsortiumKey(key.reveal()))
    others = {
        scope(params.model_copy(update={"fingerprint": FingerprintParams(radius=2)})),
        scope(params.model_copy(update={"consortium_name": "another"})),
        scope(k=ConsortiumKey(key.reveal() + b"!")),
        scope(graphs=False),
        cache_scope(params, key, with_graphs=True, with_folds=False),
    }
    monkeypatch.setattr(rdkit, "__version__", "1999.01.1")
    others.add(scope())
    monkeypatch.undo()
    monkeypatch.setattr(pharmafl, "__version__", "0.0.0")
    others.add(scope())
    monkeypatch.undo()
    monkeypatch.setattr(cache_module, "_code_digest", lambda: "0" * 64)
    others.add(scope())
    assert len(others) == 8 and same not in others
    assert key.reveal().hex() not in same


def test_another_key_or_parameters_never_reuse_the_file(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    smiles = fsmol_sample[:20]
    describe_with_cache(smiles, _Describer(params, key), _cache(cache_file, params, key))
    assert key.reveal() not in cache_file.read_bytes()
    other_key = ConsortiumKey(b"another consortium key")
    describe = _Describer(params, other_key)
    batch, report = describe_with_cache(smiles, describe, _cache(cache_file, params, other_key))
    assert_same_batch(batch, describe_structures(smiles, params, other_key))
    assert report == CacheReport("other_scope", 0, len(smiles), True)
    # The file now belongs to the new key: the old scope no longer finds its results.
    assert _cache(cache_file, params, key).load() == (None, "other_scope")
    radius2 = params.model_copy(update={"fingerprint": FingerprintParams(radius=2)})
    describe = _Describer(radius2, other_key)
    batch, report = describe_with_cache(smiles, describe, _cache(cache_file, radius2, other_key))
    assert_same_batch(batch, describe_structures(smiles, radius2, other_key))
    assert report.state == "other_scope" and report.cached == 0 and describe.calls == [smiles]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    path.write_bytes(bytes(data))


def _rewrite(path: Path, **changes: Any) -> None:
    """The same file with some arrays replaced (still a valid zip of the right scope)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(changes)
    np.savez(path.with_suffix(".tmp.npz"), **arrays)
    path.with_suffix(".tmp.npz").replace(path)


def _inconsistent_offsets(path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        indptr = z["x_indptr"].copy()
    indptr[3] = indptr[-1] + 10
    _rewrite(path, x_indptr=indptr)


def _text_offsets_past_the_end(path: Path) -> None:
    with np.load(path, allow_pickle=False) as z:
        offsets = z["canonical_offsets"].copy()
    offsets[-1] += 5
    _rewrite(path, canonical_offsets=offsets)


def _a_graph_short(path: Path) -> None:
    """The last molecule's graph dropped: a valid pack of one graph fewer than molecules."""
    with np.load(path, allow_pickle=False) as z:
        ao, bo = z["atom_offsets"], z["bond_offsets"]
        kept = {
            "atom_features": z["atom_features"][: ao[-2]],
            "bonds": z["bonds"][: bo[-2]],
            "bond_features": z["bond_features"][: bo[-2]],
        }
    _rewrite(path, atom_offsets=ao[:-1], bond_offsets=bo[:-1], **kept)


def _another_format(path: Path) -> None:
    """A file of an older cache format (same scope): never read as this one."""
    _rewrite(path, format=np.array("pharmafl/prepare-cache/v0"))


def _a_pickle_inside(path: Path) -> None:
    _rewrite(path, texts_blob=np.array([{"not": "data"}], dtype=object))


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        lambda p: p.write_bytes(p.read_bytes()[:10]),
        lambda p: p.write_bytes(b""),
        lambda p: p.write_text("not a cache"),
        _flip_bytes,
        _inconsistent_offsets,
        _text_offsets_past_the_end,
        _a_graph_short,
        _another_format,
        _a_pickle_inside,
    ],
    ids=[
        "half",
        "ten-bytes",
        "empty",
        "text",
        "flipped",
        "inconsistent",
        "text-offsets",
        "graph-short",
        "old-format",
        "pickle",
    ],
)
def test_a_damaged_file_is_ignored_and_replaced(
    damage: Any,
    fsmol_sample: list[str],
    params: ConsortiumParameters,
    key: ConsortiumKey,
    cache_file: Path,
) -> None:
    smiles = [*fsmol_sample[:20], "C1CC"]
    describe_with_cache(smiles, _Describer(params, key), _cache(cache_file, params, key))
    damage(cache_file)
    describe = _Describer(params, key)
    batch, report = describe_with_cache(smiles, describe, _cache(cache_file, params, key))
    assert_same_batch(batch, describe_structures(smiles, params, key))
    assert report == CacheReport("unreadable", 0, len(smiles), True)
    assert _cache(cache_file, params, key).load()[1] == "used"  # rewritten whole


def test_unexpected_failures_are_described_again(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    """A failure no stage anticipated may be transient (memory): it is never kept."""

    def flaky(items: Sequence[Any]) -> DescribedBatch:
        batch = describe_structures(items, params, key, workers=1)
        batch.rejections.loc[:, "message"] = "unexpected MemoryError during graph."
        return batch

    smiles = [*fsmol_sample[:10], "C1CC"]
    describe_with_cache(smiles, flaky, _cache(cache_file, params, key))
    describe = _Describer(params, key)
    batch, report = describe_with_cache(smiles, describe, _cache(cache_file, params, key))
    assert describe.calls == [["C1CC"]] and report.cached == 10
    assert_same_batch(batch, describe_structures(smiles, params, key))


def test_an_interrupted_save_leaves_the_previous_file(
    fsmol_sample: list[str],
    params: ConsortiumParameters,
    key: ConsortiumKey,
    cache_file: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    describe_with_cache(fsmol_sample[:10], _Describer(params, key), _cache(cache_file, params, key))
    before = cache_file.read_bytes()
    calls = []

    def interrupted(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.np.lib.format, "write_array", interrupted)
    with pytest.raises(KeyboardInterrupt):
        describe_with_cache(
            fsmol_sample[:20], _Describer(params, key), _cache(cache_file, params, key)
        )
    monkeypatch.undo()
    assert cache_file.read_bytes() == before
    assert [p.name for p in cache_file.parent.iterdir()] == [cache_file.name]  # no temp left
    assert zipfile.is_zipfile(cache_file)
    batch, report = describe_with_cache(
        fsmol_sample[:20], _Describer(params, key), _cache(cache_file, params, key)
    )
    assert report.state == "used" and report.cached == 10
    assert_same_batch(batch, describe_structures(fsmol_sample[:20], params, key))


def test_an_unwritable_cache_costs_time_not_the_run(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, tmp_path: Path
) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    cache = _cache(tmp_path / "cache" / "describe.npz", params, key)
    batch, report = describe_with_cache(fsmol_sample[:20], _Describer(params, key), cache)
    assert_same_batch(batch, describe_structures(fsmol_sample[:20], params, key))
    assert report == CacheReport("missing", 0, 20, False)


def test_without_graphs_or_inputs(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    cache = DescribeCache(cache_file, cache_scope(params, key, with_graphs=False, with_folds=True))

    def describe(items: Sequence[Any]) -> DescribedBatch:
        return describe_structures(items, params, key, workers=1, with_graphs=False)

    for smiles in (fsmol_sample[:20], [*fsmol_sample[10:30], ""]):
        batch, _ = describe_with_cache(smiles, describe, cache)
        assert_same_batch(batch, describe(smiles))
    batch, report = describe_with_cache([], describe, cache)
    assert len(batch) == 0 and len(batch.rejections) == 0 and report.cached == 0


def test_results_that_skip_a_text_are_never_saved(
    fsmol_sample: list[str], params: ConsortiumParameters, key: ConsortiumKey, cache_file: Path
) -> None:
    """A batch with a text neither described nor rejected would shift every later row."""
    smiles = [*fsmol_sample[:5], "C1CC"]
    batch = describe_structures(smiles, params, key, workers=1)
    cache = _cache(cache_file, params, key)
    with pytest.raises(ChemistryError, match="describe every text once"):
        cache.save(cache_module.CachedResults([*smiles, "CCO"], batch))
    assert not cache_file.exists()
