"""The one module that touches cryptographic primitives (STYLE.md §13).

Bytes in, bytes out. Nothing else in pharmafl imports ``cryptography`` or ``hmac``.
Keyed hashing for descriptor scrambling and fold assignment (MELLODDY-TUNER: HMAC-SHA256
with the consortium key) lives here next to the secure-aggregation primitives:

- Ed25519 signatures (identities, envelopes, the roster);
- X25519 key agreement and HKDF-SHA256 key derivation (RFC 7748, RFC 5869);
- ChaCha20-Poly1305 AEAD (RFC 8439) for Shamir shares relayed through the operator;
- sealing a message to several recipients' static X25519 keys (:func:`seal_to_recipients`,
  an ECIES/HPKE-style hybrid: one content key, wrapped per recipient) for what the exchange
  store must not read (global trunks, round specs, partner reports);
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
from collections.abc import Mapping
from dataclasses import dataclass

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


# --- Static encryption keys and sealing to recipients ------------------------------------

#: HKDF info of the static X25519 key derived from an Ed25519 identity key.
_STATIC_X25519_INFO = b"pharmafl/x25519-from-ed25519/v1"
_SEAL_LABEL = b"pharmafl/sealed/v1/"


def x25519_from_ed25519(private_key: bytes) -> bytes:
    """The static X25519 private key of an Ed25519 identity: HKDF-SHA256 of the 32-byte
    Ed25519 private key with a domain-separated info (no salt).

    The two keys are independent (HKDF is a PRF; the signing scalar is SHA-512 of the same
    seed), so a party's encryption key needs no key file of its own: whoever holds the
    signing key file can decrypt, nobody else.
    """
    _check_len(private_key, KEY_BYTES, "Ed25519 private key")
    return hkdf_sha256(private_key, info=_STATIC_X25519_INFO)


def _framed(*parts: bytes) -> bytes:
    """Unambiguous concatenation: each part preceded by its 4-byte length."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


@dataclass(frozen=True)
class SealedMessage:
    """A message sealed to several recipients by :func:`seal_to_recipients`.

    ``ciphertext`` is ``nonce || AEAD(content key, plaintext)``; each recipient's
    ``wrapped_keys`` entry is ``nonce || AEAD(key-encryption key, content key)``, the
    key-encryption key derived from X25519(ephemeral key, recipient key).
    """

    ephemeral_public_key: bytes
    ciphertext: bytes
    wrapped_keys: dict[str, bytes]

    def __repr__(self) -> str:
        return (
            f"SealedMessage({len(self.ciphertext)} bytes, recipients={sorted(self.wrapped_keys)})"
        )


def _wrap_key(shared: bytes, epk: bytes, recipient_pk: bytes, recipient: str, ctx: bytes) -> bytes:
    return hkdf_sha256(
        shared,
        salt=epk + recipient_pk,
        info=_SEAL_LABEL + b"wrap" + _framed(recipient.encode(), ctx),
    )


def seal_to_recipients(
    recipients: Mapping[str, bytes], plaintext: bytes, context: bytes
) -> SealedMessage:
    """Encrypt ``plaintext`` so that only the holders of ``recipients``' X25519 private keys
    (id → raw public key) can read it; its length is padded (:data:`SEAL_PAD_BLOCK`).

    One fresh random content key encrypts the plaintext (ChaCha20-Poly1305, associated data
    ``context``); it is wrapped for each recipient under a key derived with HKDF-SHA256 from
    X25519(fresh ephemeral key, recipient's key), salt = ephemeral ‖ recipient public key and
    info binding the recipient's id and ``context`` (the wrap's associated data binds both
    too). ``context`` names what the ciphertext is (protocol, round, kind, sender): a
    ciphertext or wrap moved into another context does not open.

    Raises
    ------
    SecureAggregationError
        No recipients, or a recipient key that is malformed or of small order.
    """
    if not recipients:
        raise SecureAggregationError(
            "a sealed message needs at least one recipient.",
            fix="name the parties that may read it.",
        )
    content_key = random_bytes(KEY_BYTES)
    padded = _pad(plaintext)
    ciphertext = aead_encrypt(content_key, padded, _framed(_SEAL_LABEL + b"payload", context))
    esk, epk = x25519_generate()
    wrapped: dict[str, bytes] = {}
    for rid in sorted(recipients):
        pk = recipients[rid]
        kek = _wrap_key(x25519_exchange(esk, pk), epk, pk, rid, context)
        ad = _framed(_SEAL_LABEL + b"wrap", rid.encode(), context)
        wrapped[rid] = aead_encrypt(kek, content_key, ad)
    return SealedMessage(epk, ciphertext, wrapped)


def open_sealed(
    private_key: bytes,
    recipient: str,
    *,
    ephemeral_public_key: bytes,
    wrapped_key: bytes,
    ciphertext: bytes,
    context: bytes,
) -> bytes:
    """Decrypt a message from :func:`seal_to_recipients` as ``recipient`` with its X25519
    ``private_key`` (its ``wrapped_keys[recipient]`` entry).

    Raises
    ------
    SecureAggregationError
        The wrap is not this recipient's, the context differs, or the ephemeral key, the
        wrap or the ciphertext were altered.
    """
    _check_len(ephemeral_public_key, KEY_BYTES, "ephemeral X25519 public key")
    pk = x25519_public_key(private_key)
    kek = _wrap_key(
        x25519_exchange(private_key, ephemeral_public_key),
        ephemeral_public_key,
        pk,
        recipient,
        context,
    )
    ad = _framed(_SEAL_LABEL + b"wrap", recipient.encode(), context)
    content_key = aead_decrypt(kek, wrapped_key, ad)
    return _unpad(aead_decrypt(content_key, ciphertext, _framed(_SEAL_LABEL + b"payload", context)))


#: Sealed plaintexts are padded to a multiple of this many bytes (ISO/IEC 7816-4: 0x80 then
#: zeros), so a small message's length (a report's gain sign, an example count's digits)
#: tells the store nothing; a large one's only to within a kibibyte.
SEAL_PAD_BLOCK = 1024


def _pad(plaintext: bytes) -> bytes:
    fill = SEAL_PAD_BLOCK - (len(plaintext) + 1) % SEAL_PAD_BLOCK
    return b"".join((plaintext, b"\x80", bytes(fill % SEAL_PAD_BLOCK)))


def _unpad(padded: bytes) -> bytes:
    # The marker lies in the last block; only that block is scanned, and the message copied
    # once (sealed trunks are hundreds of MB).
    marker = padded.rfind(b"\x80", max(0, len(padded) - SEAL_PAD_BLOCK))
    if marker < 0 or len(padded) % SEAL_PAD_BLOCK or padded[marker + 1 :].strip(b"\x00"):
        raise SecureAggregationError("a sealed message's padding is malformed.")
    return padded[:marker]


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
    "SealedMessage",
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
    "open_sealed",
    "random_bytes",
    "seal_to_recipients",
    "x25519_exchange",
    "x25519_from_ed25519",
    "x25519_generate",
    "x25519_public_key",
]
