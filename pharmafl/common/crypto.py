"""The one module that touches cryptographic primitives (STYLE.md §13).

Bytes in, bytes out. Nothing else in pharmafl imports ``cryptography`` or ``hmac``.
Keyed hashing for descriptor scrambling and fold assignment (MELLODDY-TUNER: HMAC-SHA256
with the consortium key) lives here next to the secure-aggregation primitives.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (32 bytes)."""
    return _hmac.new(key, message, hashlib.sha256).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in constant time."""
    return _hmac.compare_digest(a, b)


__all__ = ["constant_time_equal", "hmac_sha256"]
