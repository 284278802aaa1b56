"""Masks cancel in the sum, and a masked vector looks uniform (an unmasked one does not)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pharmafl.common import crypto
from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import QuantizationConfig, apply_masks, expand_mask, quantize
from pharmafl.secure.masking import pair_mask_key, pair_sign, self_mask_key


def _pair_keys(ids: list[str], round_id: str) -> dict[tuple[str, str], bytes]:
    keys = {p: crypto.x25519_generate() for p in ids}
    out = {}
    for a in ids:
        for b in ids:
            if a != b:
                shared = crypto.x25519_exchange(keys[a][0], keys[b][1])
                out[(a, b)] = pair_mask_key(shared, round_id, a, b)
    return out


def test_pairwise_masks_cancel_and_match_expansion() -> None:
    ids = ["a", "b", "c", "d"]
    keys = _pair_keys(ids, "r1")
    assert keys[("a", "b")] == keys[("b", "a")]
    assert keys[("a", "b")] != _pair_keys(ids, "r2")[("a", "b")]
    size = 100_003  # not a multiple of the chunk
    total = np.zeros(size, dtype=np.uint32)
    for me in ids:
        vec = np.zeros(size, dtype=np.uint32)
        nbytes, _ = apply_masks(
            vec, [(keys[(me, o)], pair_sign(me, o)) for o in ids if o != me], chunk=4096
        )
        assert nbytes == 3 * vec.nbytes
        total += vec
    assert not total.any()
    one = np.zeros(size, dtype=np.uint32)
    apply_masks(one, [(keys[("a", "b")], 1)], chunk=777)
    assert np.array_equal(one, expand_mask(keys[("a", "b")], size))
    apply_masks(one, [(keys[("a", "b")], -1)])
    assert not one.any()


def test_pair_sign_is_antisymmetric() -> None:
    assert pair_sign("a", "b") == 1 and pair_sign("b", "a") == -1
    with pytest.raises(Exception, match="itself"):
        pair_sign("a", "a")


def _uniformity_pvalue(vec: np.ndarray) -> float:
    """Chi-square test of the top byte and the low byte of each element against uniform."""
    p = 1.0
    for shift in (24, 0):
        counts = np.bincount(((vec >> shift) & 0xFF).astype(np.int64), minlength=256)
        p = min(p, float(stats.chisquare(counts).pvalue))
    return p


def test_masked_vector_is_indistinguishable_from_uniform() -> None:
    rng = np.random.default_rng(7)
    cfg = QuantizationConfig()
    update = rng.normal(0, 0.01, 500_000)
    q = quantize(update, 1000, cfg, 5)
    # The unmasked encoding is far from uniform: the test has power.
    assert _uniformity_pvalue(q) < 1e-12
    masked = q.copy()
    seed = crypto.random_bytes(32)
    apply_masks(masked, [(self_mask_key(seed, "r1", "p00"), 1)])
    assert _uniformity_pvalue(masked) > 1e-6  # fails by chance with probability < 2e-6
    # Only pairwise masks (as when a dropped partner's pairwise masks are removed, the
    # self mask still hides the input).
    keys = _pair_keys(["p00", "p01"], "r1")
    pair_only = q.copy()
    apply_masks(pair_only, [(keys[("p00", "p01")], 1)])
    assert _uniformity_pvalue(pair_only) > 1e-6


@pytest.mark.parametrize(
    "acc",
    [
        np.zeros(8, dtype=np.int32),
        np.zeros(8),
        np.zeros((2, 4), dtype=np.uint32),
        np.zeros(16, dtype=np.uint32)[::2],
    ],
    ids=["signed", "float", "2-d", "strided"],
)
def test_masks_refuse_a_vector_they_would_not_cancel_in(acc: np.ndarray) -> None:
    """Masks are added modulo 2^bits in place: a signed, float, 2-D or strided vector would
    take them with other arithmetic or on a copy, and they would not cancel in the sum."""
    with pytest.raises(SecureAggregationError, match="C-contiguous 1-D unsigned"):
        apply_masks(acc, [(bytes(32), 1)])
