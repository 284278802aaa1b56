"""Mask keys and mask application (the double masking of Bonawitz et al., CCS 2017).

Partner u submits

    y_u = q_u + PRG(b_u) + Σ_{v ∈ U2, v > u} PRG(s_uv) − Σ_{v ∈ U2, v < u} PRG(s_uv)   (mod 2^b)

where ``b_u`` is a fresh 32-byte self-mask seed, ``s_uv`` the X25519 secret of u and v, and
``v > u`` compares partner ids, so the pairwise masks cancel in the sum. Every PRG is a
ChaCha20 keystream whose key is HKDF-SHA256 output bound to the protocol version, the
round id, the purpose and the party ids (never a seed folded into a non-cryptographic
generator, as Flower's SecAgg+ does with MT19937).

:func:`apply_masks` streams each keystream through a small cache-resident buffer and adds
or subtracts it in place with numpy's wrap-around unsigned arithmetic: no Python loop over
elements, no full-size temporary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from pharmafl.common import crypto
from pharmafl.common.errors import SecureAggregationError

_LABEL = b"pharmafl/secagg/v1/"
#: Elements per chunk: 256 KiB of uint32 keystream stays in L2 while it is added.
CHUNK_ELEMENTS = 1 << 16


def derive_key(purpose: str, ikm: bytes, round_id: str, *parties: str) -> bytes:
    """HKDF-SHA256 key bound to ``purpose``, the round and the parties (order matters)."""
    info = _LABEL + "|".join((purpose, round_id, *parties)).encode("ascii")
    return crypto.hkdf_sha256(ikm, info=info)


def self_mask_key(seed: bytes, round_id: str, party: str) -> bytes:
    """Keystream key of the self mask PRG(b_u)."""
    return derive_key("self-mask", seed, round_id, party)


def pair_mask_key(shared_secret: bytes, round_id: str, a: str, b: str) -> bytes:
    """Keystream key of the pairwise mask between ``a`` and ``b`` (symmetric in a, b)."""
    lo, hi = sorted((a, b))
    return derive_key("pair-mask", shared_secret, round_id, lo, hi)


def seed_commitment(seed: bytes, round_id: str, party: str) -> str:
    """Hex commitment to a self-mask seed (an HKDF PRF output; hides the 256-bit seed).

    The partner signs it with its masked input, so the operator can check that the seed it
    reconstructs from shares is the one that was used.
    """
    return derive_key("seed-commitment", seed, round_id, party).hex()


def pair_sign(me: str, other: str) -> int:
    """+1 if ``me`` adds the pairwise mask with ``other`` (me < other by id), else −1."""
    if me == other:
        raise SecureAggregationError("a partner has no pairwise mask with itself.")
    return 1 if me < other else -1


def apply_masks(
    acc: np.ndarray, masks: Sequence[tuple[bytes, int]], *, chunk: int = CHUNK_ELEMENTS
) -> tuple[int, float]:
    """Add (+1) or subtract (−1) each keyed keystream from ``acc`` in place, mod 2^b.

    Parameters
    ----------
    acc
        C-contiguous unsigned integer vector (uint32 or uint64), modified in place.
    masks
        ``(key, sign)`` pairs; each key expands to one keystream of ``acc.nbytes`` bytes.
    chunk
        Elements per step (all keystreams advance together, so each ``acc`` chunk is
        loaded once for all masks).

    Returns
    -------
    tuple
        ``(keystream_bytes, seconds)``: mask material generated and applied, and the time.
    """
    if acc.dtype.kind != "u" or not acc.flags.c_contiguous or acc.ndim != 1:
        raise SecureAggregationError("masks apply to a C-contiguous 1-D unsigned vector only.")
    start = time.perf_counter()
    streams = [(crypto.Keystream(key), sign) for key, sign in masks]
    if not streams:
        return 0, 0.0
    itemsize = acc.dtype.itemsize
    buf = np.empty(min(chunk, acc.size), dtype=acc.dtype)
    for lo in range(0, acc.size, chunk):
        hi = min(acc.size, lo + chunk)
        part = acc[lo:hi]
        ks = buf[: hi - lo]
        for stream, sign in streams:
            stream.read_into(buf.data, (hi - lo) * itemsize)
            if sign > 0:
                np.add(part, ks, out=part)
            else:
                np.subtract(part, ks, out=part)
    return acc.nbytes * len(streams), time.perf_counter() - start


def expand_mask(key: bytes, size: int, dtype: np.dtype | type = np.uint32) -> np.ndarray:
    """The full keystream of ``key`` as a vector of ``size`` ring elements (for tests/tools)."""
    out = np.zeros(size, dtype=dtype)
    apply_masks(out, [(key, 1)])
    return out


__all__ = [
    "CHUNK_ELEMENTS",
    "apply_masks",
    "derive_key",
    "expand_mask",
    "pair_mask_key",
    "pair_sign",
    "seed_commitment",
    "self_mask_key",
]
