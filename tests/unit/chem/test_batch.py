"""Batch description: one pass, rejections not exceptions, identical for any workers/chunks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from rdkit import Chem

from pharmafl.chem import (
    REJECTION_COLUMNS,
    KeyedPermutation,
    assign_fold,
    chunk_bounds,
    describe_chunk,
    describe_structures,
    fold_scaffold,
    merge_batches,
    mol_to_graph,
    morgan_bits,
    standardize_smiles,
)
from pharmafl.common.errors import ChemistryError
from pharmafl.common.params import ConsortiumParameters, FingerprintParams
from tests.unit.chem.conftest import BAD_INPUTS, assert_same_batch


def test_chunk_matches_single_molecule_functions(params, key, golden) -> None:
    smiles = [m["smiles"] for m in golden["molecules"]]
    batch = describe_chunk(smiles, params, key)
    perm = KeyedPermutation(key, params.fingerprint.fold_size)
    assert batch.row_ids.tolist() == list(range(len(smiles)))
    assert batch.x.dtype == np.float32 and batch.x.has_sorted_indices
    assert batch.x.shape == (len(smiles), 32_000)
    for i, mol in enumerate(golden["molecules"]):
        assert batch.canonical_smiles[i] == mol["canonical_smiles"]
        row = batch.x.getrow(i)
        assert row.indices.tolist() == mol["scrambled"]
        assert set(row.data.tolist()) == {1.0}
        assert batch.scaffolds[i] == mol["scaffold"]
        assert batch.fold_ids[i] == mol["fold_id"]
        parsed = Chem.MolFromSmiles(mol["canonical_smiles"])
        assert sorted(perm.apply(morgan_bits(parsed, params.fingerprint)[0])) == mol["scrambled"]
        assert fold_scaffold(parsed) == mol["scaffold"]
        assert assign_fold(mol["scaffold"], key, 5) == mol["fold_id"]
        assert np.array_equal(batch.graphs.get(i).x, mol_to_graph(parsed).x)


def test_bad_molecules_become_rejection_rows(params, key) -> None:
    smiles = ["CCO", *BAD_INPUTS, "c1ccccc1"]
    batch = describe_chunk(smiles, params, key)
    assert batch.row_ids.tolist() == [0, 7]
    assert list(batch.rejections.columns) == list(REJECTION_COLUMNS)
    assert batch.rejections["row"].tolist() == [1, 2, 3, 4, 5, 6]
    assert batch.rejections["reason"].tolist() == [
        "empty",
        "empty",
        "parse",
        "parse",
        "too_many_atoms",
        "empty",
    ]
    assert batch.rejections["row"].dtype == np.int64
    assert all(isinstance(m, str) and m for m in batch.rejections["message"])
    assert len(batch.graphs) == 2 and len(batch.fold_ids) == 2


def test_counts_when_not_binarized(key) -> None:
    p = ConsortiumParameters(fingerprint=FingerprintParams(binarized=False, fold_size=2048))
    batch = describe_chunk(["CCCCCCCCCC"], p, key)
    assert batch.x.shape == (1, 2048) and batch.x.data.max() > 1


def test_options_skip_graphs_and_folds(params, key) -> None:
    batch = describe_chunk(["CCO", "c1ccccc1"], params, key, with_graphs=False, with_folds=False)
    assert len(batch) == 2
    assert batch.scaffolds == [] and len(batch.fold_ids) == 0 and len(batch.graphs) == 0
    assert not batch.has_folds and not batch.has_graphs
    full = describe_chunk(["CCO", "c1ccccc1"], params, key)
    assert (batch.x != full.x).nnz == 0


def test_empty_input(params, key) -> None:
    batch = describe_structures([], params, key)
    assert len(batch) == 0 and batch.x.shape == (0, 32_000) and len(batch.rejections) == 0


def test_same_results_for_any_chunk_size(params, key, fsmol_sample) -> None:
    smiles = fsmol_sample[:40] + BAD_INPUTS
    ref = describe_structures(smiles, params, key, chunk_size=2000)
    seen: list[int] = []
    other = describe_structures(smiles, params, key, chunk_size=7, progress=seen.append)
    assert_same_batch(ref, other)
    assert sum(seen) == len(smiles) and len(seen) == math.ceil(len(smiles) / 7)
    assert len(ref) + len(ref.rejections) == len(smiles)
    assert ref.rejections["row"].tolist()[-len(BAD_INPUTS) :] == list(
        range(40, 40 + len(BAD_INPUTS))
    )


def test_same_results_with_two_processes(params, key, fsmol_sample) -> None:
    smiles = fsmol_sample[:60] + BAD_INPUTS
    ref = describe_structures(smiles, params, key, workers=1)
    seen: list[int] = []
    par = describe_structures(smiles, params, key, workers=2, chunk_size=11, progress=seen.append)
    assert_same_batch(ref, par)
    assert sum(seen) == len(smiles)


def test_chunk_bounds_cover_the_input_and_shrink_towards_the_end() -> None:
    for n, size, workers in [
        (0, 10, 2),
        (7, 10, 1),
        (20_000, 2000, 2),
        (2500, 2000, 2),
        (66, 11, 2),
    ]:
        bounds = chunk_bounds(n, size, workers)
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        assert all(e - s <= size for s, e in bounds)
    assert {e - s for s, e in chunk_bounds(20_000, 2000, 1)} == {2000}
    sizes = [e - s for s, e in chunk_bounds(20_000, 2000, 2)]
    assert sizes[0] == 2000 and sizes == sorted(sizes, reverse=True) and sizes[-1] <= 25
    # A demo-sized partner is spread over both processes, not one chunk of 2000 and one of 500.
    assert max(e - s for s, e in chunk_bounds(2500, 2000, 2)) < 400


def test_merge_batches(params, key) -> None:
    a = describe_chunk(["CCO", "C1CC"], params, key)
    b = describe_chunk(["c1ccccc1", None], params, key)
    merged = merge_batches([a, b], [0, 2])
    assert_same_batch(merged, describe_chunk(["CCO", "C1CC", "c1ccccc1", None], params, key))
    with pytest.raises(ChemistryError, match="ascending"):
        merge_batches([b, a], [2, 0])
    with pytest.raises(ChemistryError, match="1 batches but 2 offsets"):
        merge_batches([a], [0, 2])
    with pytest.raises(ChemistryError, match="no batches to merge"):
        merge_batches([], [])
    c = describe_chunk(["CCN"], params, key, with_graphs=False)
    with pytest.raises(ChemistryError, match="different options"):
        merge_batches([a, c], [0, 2])
    small = params.model_copy(update={"fingerprint": FingerprintParams(fold_size=1024)})
    d = describe_chunk(["CCN"], small, key)
    with pytest.raises(ChemistryError, match=r"different fingerprint sizes \[1024, 32000\]"):
        merge_batches([a, d], [0, 2])


def test_select_rows(params, key) -> None:
    batch = describe_chunk(["CCO", "c1ccccc1", "CCN"], params, key)
    sub = batch.select([2, 0])
    assert sub.row_ids.tolist() == [2, 0]
    assert sub.canonical_smiles == ["CCN", "CCO"]
    assert (sub.x != batch.x[[2, 0]]).nnz == 0
    assert sub.graphs == batch.graphs.select([2, 0])


def test_bad_arguments(params, key) -> None:
    with pytest.raises(ChemistryError):
        describe_structures(["C"], params, key, chunk_size=0)
    with pytest.raises(ChemistryError):
        describe_structures(["C"], params, key, workers=-1)


def test_tautomers_and_salts_share_rows(params, key) -> None:
    batch = describe_chunk(["Oc1ccccn1", "O=c1cccc[nH]1", "O=C([O-])c1ccccc1.[Na+]"], params, key)
    assert batch.canonical_smiles[0] == batch.canonical_smiles[1]
    assert (batch.x[0] != batch.x[1]).nnz == 0
    assert batch.canonical_smiles[2] == standardize_smiles("OC(=O)c1ccccc1", params.standardization)


def test_repeated_smiles_are_described_once_with_identical_rows(params, key) -> None:
    smiles = ["CCO", "C1CC", "CCO", None, "c1ccccc1", "C1CC", None, "CCO"]
    seen: list[int] = []
    got = describe_structures(smiles, params, key, chunk_size=2, progress=seen.append)
    assert_same_batch(got, describe_chunk(smiles, params, key))
    assert sum(seen) == len(smiles)
    assert got.row_ids.tolist() == [0, 2, 4, 7]
    assert got.rejections["row"].tolist() == [1, 3, 5, 6]


def test_threads_get_identical_results(params, key, fsmol_sample) -> None:
    from concurrent.futures import ThreadPoolExecutor

    chunks = [fsmol_sample[i : i + 5] for i in range(0, 20, 5)]
    serial = [describe_chunk(c, params, key) for c in chunks]
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = list(pool.map(lambda c: describe_chunk(c, params, key), chunks))
    for a, b in zip(serial, threaded, strict=True):
        assert_same_batch(a, b)


def test_prestart_workers_is_idempotent_and_pools_still_work(params, key, fsmol_sample) -> None:
    from pharmafl.chem import prestart_workers

    prestart_workers()
    prestart_workers()
    smiles = fsmol_sample[:30]
    assert_same_batch(
        describe_structures(smiles, params, key, workers=1),
        describe_structures(smiles, params, key, workers=2, chunk_size=10),
    )
