"""Keyed permutation of fingerprint columns (MELLODDY-TUNER descriptor scrambling).

TUNER (``DescriptorCalculator.set_permutation``; reference notes §1.7): for every bit index
``j`` in ``0 … size-1`` compute HMAC-SHA256(key, ``str(j)``), read the 32-byte digest as a
big-endian integer, reduce it modulo 2**63 and rank the indices by that value (argsort of
argsort). The rank of ``j`` is its scrambled column. Every holder of the consortium key gets the
same permutation; without the key the columns cannot be mapped back to RDKit hash bits.

This is a fixed permutation, not encryption: anyone with the key can undo it, and which bits
are set together in a row is unchanged.
"""

from __future__ import annotations

import numpy as np

from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.errors import ChemistryError
from pharmafl.common.secret import ConsortiumKey

_MOD = 1 << 63


def _permutation(key: bytes, size: int) -> np.ndarray:
    hashed = np.fromiter(
        (
            int.from_bytes(hmac_sha256(key, str(j).encode("utf-8")), "big") % _MOD
            for j in range(size)
        ),
        dtype=np.uint64,
        count=size,
    )
    # A stable sort: ties (probability ~size**2 / 2**64) resolve by index, as NumPy's sort would
    # for equal keys in practice; TUNER checks the result is a permutation, and so do we.
    perm = np.argsort(np.argsort(hashed, kind="stable"), kind="stable").astype(np.int64)
    return perm


class KeyedPermutation:
    """The consortium's keyed permutation of ``size`` fingerprint columns.

    Parameters
    ----------
    key
        The consortium key (only its bytes are used, and not kept).
    size
        Number of columns (``FingerprintParams.fold_size``).

    Examples
    --------
    >>> perm = KeyedPermutation(ConsortiumKey(b"melloddy-test-key"), 32_000)
    >>> scrambled = perm.apply(np.array([5, 17]))
    """

    __slots__ = ("_perm", "size")

    def __init__(self, key: ConsortiumKey, size: int) -> None:
        if size < 1:
            raise ChemistryError(
                f"permutation size must be positive, got {size}.",
                fix="set fingerprint.fold_size to a positive number.",
            )
        self.size = int(size)
        self._perm = _permutation(key.reveal(), self.size)
        if not np.array_equal(np.sort(self._perm), np.arange(self.size)):
            raise ChemistryError(  # pragma: no cover - needs a SHA-256 collision mod 2**63
                "the keyed column permutation is not a permutation.",
                fix="use a different consortium key.",
            )
        self._perm.setflags(write=False)

    @property
    def table(self) -> np.ndarray:
        """Read-only array: ``table[j]`` is the scrambled column of unscrambled bit ``j``."""
        return self._perm

    def apply(self, indices: np.ndarray) -> np.ndarray:
        """Map unscrambled bit indices to scrambled columns (same order as the input)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise ChemistryError(
                f"bit index out of range 0..{self.size - 1}.",
                fix="fingerprint fold_size and permutation size must be the same.",
            )
        return self._perm[idx]

    def inverse(self, columns: np.ndarray) -> np.ndarray:
        """Map scrambled columns back to unscrambled bit indices (needs the key, like TUNER)."""
        inv = np.empty_like(self._perm)
        inv[self._perm] = np.arange(self.size, dtype=np.int64)
        return inv[np.asarray(columns, dtype=np.int64)]

    def __repr__(self) -> str:
        return f"KeyedPermutation(size={self.size})"


__all__ = ["KeyedPermutation"]
