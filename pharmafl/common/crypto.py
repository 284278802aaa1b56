"""The one module that touches cryptographic primitives (STYLE.md §13).

Bytes in, bytes out. Nothing else in pharmafl imports ``cryptography`` or ``hmac``.
Keyed hashing for descriptor scrambling and fold assignment (MELLODDY-TUNER: HMAC-SHA256
with the consortium key) lives here next to the secure-aggregation primitives:

- Ed25519 signatures (identities, envelopes, the roster);
- X25519 key agreement and HKDF-SHA256 key derivation (RFC 7748, RFC 5869);
- ChaCha20-Poly1305 AEAD (RFC 8439) for Shamir shares relayed through the operator;
- ChaCha20 keystreams as the pseudo-random generator that expands mask keys
  (Bonawitz et al., CCS 2017, assume a secure PRG; never a seeded non-cryptographic one).

Every raw key is 32 bytes. Failures that an attacker can cause (bad signature, tampered
ciphertext, wrong key) return ``False`` or raise :class:`~pharmafl.common.errors.
SecureAggregationError`; messages never contain key material.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pharmafl.common.errors import SecureAggregationError

#: Length in bytes of every raw key handled here (Ed25519, X25519, HKDF output, ChaCha20).
KEY_BYTES = 32
#: Length of an Ed25519 signature.
SIGNATURE_BYTES = 64
#: Length of a ChaCha20-Poly1305 nonce.
AEAD_NONCE_BYTES = 12
#: Length of the ChaCha20 keystream nonce (32-bit block counter + 96-bit nonce).
KEYSTREAM_NONCE_BYTES = 16

_RAW = serialization.Encoding.Raw
_RAW_PUB = serialization.PublicFormat.Raw
_RAW_PRIV = serialization.PrivateFormat.Raw
_NO_ENC = serialization.NoEncryption()


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (32 bytes)."""
    return _hmac.new(key, message, hashlib.sha256).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in constant time."""
    return _hmac.compare_digest(a, b)


def random_bytes(n: int) -> bytes:
    """Return ``n`` bytes from the operating system's CSPRNG."""
    return os.urandom(n)


def _check_len(value: bytes, n: int, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != n:
        got = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise SecureAggregationError(
            f"{what} must be {n} bytes, got {got}.",
            fix="pass the raw key bytes produced by pharmafl.common.crypto.",
        )


# --- Ed25519 signatures ------------------------------------------------------------------


def ed25519_generate() -> tuple[bytes, bytes]:
    """Generate an Ed25519 key pair; return ``(private_key, public_key)`` as raw 32 bytes."""
    sk = Ed25519PrivateKey.generate()
    return sk.private_bytes(_RAW, _RAW_PRIV, _NO_ENC), sk.public_key().public_bytes(_RAW, _RAW_PUB)


def ed25519_public_key(private_key: bytes) -> bytes:
    """Return the raw public key that belongs to a raw Ed25519 private key."""
    _check_len(private_key, KEY_BYTES, "Ed25519 private key")
    sk = Ed25519PrivateKey.from_private_bytes(private_key)
    return sk.public_key().public_bytes(_RAW, _RAW_PUB)


def ed25519_sign(private_key: bytes, message: bytes) -> bytes:
    """Sign ``message`` with a raw Ed25519 private key; return the 64-byte signature."""
    _check_len(private_key, KEY_BYTES, "Ed25519 private key")
    return Ed25519PrivateKey.from_private_bytes(private_key).sign(message)


def ed25519_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Return True when ``signature`` is a valid Ed25519 signature of ``message``."""
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- X25519 key agreement and HKDF ----------------------------------------------------------


def x25519_generate() -> tuple[bytes, bytes]:
    """Generate an X25519 key pair; return ``(private_key, public_key)`` as raw 32 bytes."""
    sk = X25519PrivateKey.generate()
    return sk.private_bytes(_RAW, _RAW_PRIV, _NO_ENC), sk.public_key().public_bytes(_RAW, _RAW_PUB)


def x25519_public_key(private_key: bytes) -> bytes:
    """Return the raw public key that belongs to a raw X25519 private key."""
    _check_len(private_key, KEY_BYTES, "X25519 private key")
    sk = X25519PrivateKey.from_private_bytes(private_key)
    return sk.public_key().public_bytes(_RAW, _RAW_PUB)


def x25519_exchange(private_key: bytes, peer_public_key: bytes) -> bytes:
    """Raw X25519 shared secret (RFC 7748); always pass it through :func:`hkdf_sha256`.

    Raises
    ------
    SecureAggregationError
        If the peer key is malformed or of small order (an all-zero shared secret).
    """
    _check_len(private_key, KEY_BYTES, "X25519 private key")
    _check_len(peer_public_key, KEY_BYTES, "X25519 public key")
    try:
        return X25519PrivateKey.from_private_bytes(private_key).exchange(
            X25519PublicKey.from_public_bytes(peer_public_key)
        )
    except ValueError:
        raise SecureAggregationError(
            "X25519 key agreement failed: the peer's public key is of small order.",
            fix="the peer must advertise a freshly generated X25519 public key.",
        ) from None


def hkdf_sha256(ikm: bytes, *, info: bytes, salt: bytes | None = None, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) of input keying material ``ikm``.

    ``info`` binds the derived key to its purpose and context (protocol label, round id,
    party ids), so keys for different purposes or rounds are independent.
    """
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


# --- ChaCha20-Poly1305 AEAD ---------------------------------------------------------------


def aead_encrypt(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Encrypt with ChaCha20-Poly1305 under a fresh random nonce; return ``nonce || ciphertext``."""
    _check_len(key, KEY_BYTES, "AEAD key")
    nonce = os.urandom(AEAD_NONCE_BYTES)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, associated_data)


def aead_decrypt(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Decrypt ``nonce || ciphertext`` from :func:`aead_encrypt`.

    Raises
    ------
    SecureAggregationError
        If the ciphertext, nonce or associated data were altered, or the key is wrong.
    """
    _check_len(key, KEY_BYTES, "AEAD key")
    if len(sealed) < AEAD_NONCE_BYTES + 16:
        raise SecureAggregationError("AEAD ciphertext is too short to be authentic.")
    nonce, body = sealed[:AEAD_NONCE_BYTES], sealed[AEAD_NONCE_BYTES:]
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, body, associated_data)
    except InvalidTag:
        raise SecureAggregationError(
            "AEAD authentication failed: the ciphertext was tampered with, or the key or "
            "associated data is wrong.",
            fix="reject this message; it was not produced by the expected sender for this round.",
        ) from None


# --- ChaCha20 keystream (mask PRG) -------------------------------------------------------


class Keystream:
    """An incremental ChaCha20 keystream: a cryptographically secure PRG keyed by 32 bytes.

    Successive :meth:`read_into` calls continue the same stream, so a long mask can be
    produced chunk by chunk into a small, cache-resident buffer. The key is never shown
    in a repr.

    Parameters
    ----------
    key
        32 raw bytes, typically HKDF output unique to one (round, purpose, parties).
    nonce
        16 bytes (block counter and nonce, as ``cryptography`` expects); all-zero is safe
        because every key is used for one stream only.
    """

    __slots__ = ("_enc", "_zeros")

    def __init__(self, key: bytes, nonce: bytes = bytes(KEYSTREAM_NONCE_BYTES)) -> None:
        _check_len(key, KEY_BYTES, "keystream key")
        _check_len(nonce, KEYSTREAM_NONCE_BYTES, "keystream nonce")
        self._enc = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor()
        self._zeros = bytearray()

    def read_into(self, out: bytearray | memoryview, nbytes: int | None = None) -> None:
        """Write the next ``nbytes`` keystream bytes (default: all of ``out``) into ``out``."""
        view = memoryview(out).cast("B")
        n = len(view) if nbytes is None else nbytes
        if len(self._zeros) < n:
            self._zeros = bytearray(n)
        # Encrypting zeros yields the keystream itself; update_into avoids an allocation.
        self._enc.update_into(memoryview(self._zeros)[:n], view[:n])

    def read(self, nbytes: int) -> bytes:
        """Return the next ``nbytes`` keystream bytes."""
        return self._enc.update(bytes(nbytes))

    def __repr__(self) -> str:
        return "Keystream(<redacted>)"


def chacha20_keystream(key: bytes, nbytes: int) -> bytes:
    """Return the first ``nbytes`` of the ChaCha20 keystream under ``key`` (zero nonce)."""
    return Keystream(key).read(nbytes)


__all__ = [
    "AEAD_NONCE_BYTES",
    "KEYSTREAM_NONCE_BYTES",
    "KEY_BYTES",
    "Keystream",
    "SIGNATURE_BYTES",
    "aead_decrypt",
    "aead_encrypt",
    "chacha20_keystream",
    "constant_time_equal",
    "ed25519_generate",
    "ed25519_public_key",
    "ed25519_sign",
    "ed25519_verify",
    "hkdf_sha256",
    "hmac_sha256",
    "random_bytes",
    "x25519_exchange",
    "x25519_generate",
    "x25519_public_key",
]
