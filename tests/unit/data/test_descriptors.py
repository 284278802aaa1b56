from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from pharmafl.common.errors import PreparationError
from pharmafl.data import dedupe_descriptors


def _x(rows: list[dict[int, float]], width: int = 16) -> csr_matrix:
    data, ind, ptr = [], [], [0]
    for r in rows:
        for k, v in r.items():
            ind.append(k)
            data.append(v)
        ptr.append(len(ind))
    return csr_matrix(
        (np.array(data, np.float32), np.array(ind, np.int32), np.array(ptr)),
        shape=(len(rows), width),
    )


def test_identical_rows_collapse_and_distinct_folds_stay_apart() -> None:
    x = _x([{1: 1, 5: 1}, {2: 1}, {1: 1, 5: 1}, {1: 1, 5: 1}, {2: 1}])
    folds = np.array([0, 1, 0, 3, 1])
    ids = np.array([10, 11, 12, 13, 14])
    t5, xu, fu = dedupe_descriptors(ids, x, folds)
    # numbered by first appearance; same bits in another fold is another vector
    assert t5["descriptor_vector_id"].tolist() == [0, 1, 0, 2, 1]
    assert t5["input_compound_id"].tolist() == ids.tolist()
    assert t5["fold_id"].tolist() == folds.tolist()
    assert fu.tolist() == [0, 1, 3]
    assert xu.shape == (3, 16) and xu.dtype == np.float32
    np.testing.assert_array_equal(xu.toarray(), x[[0, 1, 3]].toarray())


def test_storage_order_and_explicit_zeros_do_not_matter_but_values_do() -> None:
    a = csr_matrix(
        (np.array([1, 1], np.float32), np.array([5, 1]), np.array([0, 2])), shape=(1, 16)
    )
    b = csr_matrix(
        (np.array([1, 0, 1], np.float32), np.array([1, 3, 5]), np.array([0, 3])), shape=(1, 16)
    )
    counts = _x([{1: 2.0, 5: 1.0}])
    from scipy.sparse import vstack

    t5, xu, _ = dedupe_descriptors(
        np.array([1, 2, 3]), vstack([a, b, counts]).tocsr(), np.zeros(3, dtype=int)
    )
    assert t5["descriptor_vector_id"].tolist() == [0, 0, 1]
    assert xu[0].nnz == 2 and xu[1].toarray()[0, 1] == 2.0


def test_repeated_compound_ids_and_length_mismatch_are_errors() -> None:
    x = _x([{1: 1}, {2: 1}])
    with pytest.raises(PreparationError, match="repeats"):
        dedupe_descriptors(np.array([1, 1]), x, np.array([0, 0]))
    with pytest.raises(PreparationError, match="disagree"):
        dedupe_descriptors(np.array([1, 2]), x, np.array([0]))


def test_empty_input() -> None:
    t5, xu, fu = dedupe_descriptors(
        np.array([], dtype=np.int64), csr_matrix((0, 8), dtype=np.float32), np.array([])
    )
    assert len(t5) == 0 and xu.shape == (0, 8) and len(fu) == 0


def test_deterministic_and_fast_on_200k_rows() -> None:
    rng = np.random.default_rng(7)
    cols = np.sort(rng.integers(0, 32_000, (100_000, 50)), axis=1)
    base = csr_matrix(
        (np.ones(cols.size, np.float32), cols.ravel(), np.arange(0, cols.size + 1, 50)),
        shape=(100_000, 32_000),
    )
    pick = rng.integers(0, 100_000, 200_000)
    x = base[pick]
    folds = (pick % 5).astype(np.int64)
    start = time.perf_counter()
    t5, xu, _ = dedupe_descriptors(np.arange(200_000), x, folds)
    elapsed = time.perf_counter() - start
    assert xu.shape[0] == len(np.unique(pick))
    # the same source row always maps to the same vector
    assert (t5.groupby(pick)["descriptor_vector_id"].nunique() == 1).all()
    t5b, _, _ = dedupe_descriptors(np.arange(1000), x[:1000], folds[:1000])
    assert t5b["descriptor_vector_id"].tolist() == t5["descriptor_vector_id"][:1000].tolist()
    assert elapsed < 5.0, f"dedupe of 200k rows took {elapsed:.1f} s"
