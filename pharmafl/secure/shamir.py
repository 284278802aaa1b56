"""Shamir t-of-n secret sharing of 32-byte secrets over the prime field GF(2^521 − 1).

Shamir, "How to share a secret", CACM 1979. A secret s is the constant term of a random
polynomial f of degree t − 1 over GF(p); party x receives f(x). Any t shares determine s by
Lagrange interpolation at 0; t − 1 shares are independent of s (information-theoretic).

p = 2^521 − 1 (a Mersenne prime) exceeds every 32-byte secret, so a secret is one field
element (no chunking; Flower splits 16-byte chunks over GF(2^128) instead). Coefficients
come from the OS CSPRNG. Shares are 66 bytes, big-endian.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pharmafl.common import crypto
from pharmafl.common.errors import SecureAggregationError

PRIME = (1 << 521) - 1
SHARE_BYTES = 66
SECRET_BYTES = 32


def _random_element() -> int:
    # 80 random bytes reduced mod p: statistical distance from uniform < 2^-100.
    return int.from_bytes(crypto.random_bytes(80), "big") % PRIME


def _eval(coeffs: list[int], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):
        acc = (acc * x + c) % PRIME
    return acc


def split(secret: bytes, threshold: int, xs: Iterable[int]) -> dict[int, bytes]:
    """Split ``secret`` into shares at the points ``xs``; any ``threshold`` of them recover it.

    Parameters
    ----------
    secret
        Exactly 32 bytes.
    threshold
        t, at least 1 and at most the number of points.
    xs
        Distinct positive share indices (pharmafl uses 1-based partner positions).

    Returns
    -------
    dict
        Index → 66-byte share.
    """
    points = list(xs)
    if len(secret) != SECRET_BYTES:
        raise SecureAggregationError(f"Shamir secrets must be {SECRET_BYTES} bytes.")
    if len(set(points)) != len(points) or any(x <= 0 or x >= PRIME for x in points):
        raise SecureAggregationError("Shamir share indices must be distinct and positive.")
    if not 1 <= threshold <= len(points):
        raise SecureAggregationError(
            f"Shamir threshold {threshold} is outside 1..{len(points)} (the number of shares)."
        )
    coeffs = [int.from_bytes(secret, "big")] + [_random_element() for _ in range(threshold - 1)]
    return {x: _eval(coeffs, x).to_bytes(SHARE_BYTES, "big") for x in points}


def _lagrange_at(points: list[tuple[int, int]], at: int) -> int:
    total = 0
    for i, (xi, yi) in enumerate(points):
        num, den = 1, 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (at - xj) % PRIME
                den = den * (xi - xj) % PRIME
        total = (total + yi * num * pow(den, -1, PRIME)) % PRIME
    return total


def combine(shares: Mapping[int, bytes], threshold: int) -> bytes:
    """Recover the secret from at least ``threshold`` shares.

    When more than ``threshold`` shares are given, every extra share is checked against the
    polynomial the first ``threshold`` define, so a corrupted share is detected.

    Raises
    ------
    SecureAggregationError
        Too few shares, malformed shares, inconsistent shares, or a value that is not a
        32-byte secret.
    """
    if len(shares) < threshold:
        raise SecureAggregationError(
            f"only {len(shares)} Shamir shares, {threshold} needed to reconstruct.",
            fix="the round needs at least t surviving partners.",
        )
    points: list[tuple[int, int]] = []
    for x, share in sorted(shares.items()):
        if len(share) != SHARE_BYTES or x <= 0:
            raise SecureAggregationError("malformed Shamir share.")
        points.append((x, int.from_bytes(share, "big")))
    base, extra = points[:threshold], points[threshold:]
    for x, y in extra:
        if _lagrange_at(base, x) != y:
            raise SecureAggregationError(
                f"Shamir share {x} is inconsistent with the others (corrupted or forged).",
                fix="the partner that holds it sent a wrong share; exclude it and retry.",
            )
    value = _lagrange_at(base, 0)
    if value >= 1 << (8 * SECRET_BYTES):
        raise SecureAggregationError("reconstructed Shamir value is not a 32-byte secret.")
    return value.to_bytes(SECRET_BYTES, "big")


__all__ = ["PRIME", "SECRET_BYTES", "SHARE_BYTES", "combine", "split"]
