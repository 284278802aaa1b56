"""Keyed permutation: a permutation, TUNER's definition, key-dependent."""

from __future__ import annotations

import numpy as np
import pytest

from pharmafl.chem import KeyedPermutation
from pharmafl.common.errors import ChemistryError
from pharmafl.common.secret import ConsortiumKey


def test_is_a_permutation(key) -> None:
    perm = KeyedPermutation(key, 32_000)
    assert sorted(perm.table.tolist()) == list(range(32_000))
    assert perm.table.dtype == np.int64
    assert not perm.table.flags.writeable


def test_matches_straightforward_recomputation(key, hmac_sha256_independent) -> None:
    size = 500
    hashed = [
        int.from_bytes(hmac_sha256_independent(key.reveal(), str(j).encode()), "big") % 2**63
        for j in range(size)
    ]
    # rank of j among the hashed values (TUNER: argsort of argsort)
    order = sorted(range(size), key=lambda j: hashed[j])
    expected = [0] * size
    for rank, j in enumerate(order):
        expected[j] = rank
    assert KeyedPermutation(key, size).table.tolist() == expected


def test_golden_scrambled_bits(key, golden) -> None:
    perm = KeyedPermutation(key, 32_000)
    for mol in golden["molecules"]:
        assert sorted(perm.apply(np.array(mol["bits"])).tolist()) == mol["scrambled"]


def test_apply_keeps_order_and_inverse_undoes(key) -> None:
    perm = KeyedPermutation(key, 1000)
    idx = np.array([999, 0, 17, 500])
    out = perm.apply(idx)
    assert out.tolist() == [int(perm.table[i]) for i in idx]
    assert perm.inverse(out).tolist() == idx.tolist()


def test_different_keys_give_different_permutations(key) -> None:
    a = KeyedPermutation(key, 32_000).table
    b = KeyedPermutation(ConsortiumKey(b"another-consortium-key"), 32_000).table
    assert np.mean(a == b) < 0.01
    c = KeyedPermutation(ConsortiumKey(b"melloddy-test-key"), 32_000).table
    assert np.array_equal(a, c)


def test_out_of_range_and_bad_size(key) -> None:
    perm = KeyedPermutation(key, 64)
    with pytest.raises(ChemistryError, match="out of range"):
        perm.apply(np.array([64]))
    with pytest.raises(ChemistryError, match="out of range"):
        perm.apply(np.array([-1]))
    with pytest.raises(ChemistryError):
        KeyedPermutation(key, 0)


def test_repr_hides_key(key) -> None:
    perm = KeyedPermutation(key, 64)
    assert "melloddy" not in repr(perm)
