"""Both sides agree, wrong keys fail, tampered bytes fail (STYLE.md §13)."""

from __future__ import annotations

import numpy as np
import pytest

from pharmafl.common import crypto
from pharmafl.common.errors import SecureAggregationError


def test_hmac_and_constant_time_equal_keep_their_contract() -> None:
    # RFC 4231 test case 2.
    mac = crypto.hmac_sha256(b"Jefe", b"what do ya want for nothing?")
    assert mac.hex() == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert crypto.constant_time_equal(mac, bytes(mac))
    assert not crypto.constant_time_equal(mac, mac[:-1] + b"\x00")


def test_ed25519_sign_verify_and_forgery() -> None:
    sk, pk = crypto.ed25519_generate()
    assert crypto.ed25519_public_key(sk) == pk
    sig = crypto.ed25519_sign(sk, b"round-1 keys")
    assert len(sig) == crypto.SIGNATURE_BYTES
    assert crypto.ed25519_verify(pk, b"round-1 keys", sig)
    assert not crypto.ed25519_verify(pk, b"round-2 keys", sig)
    forged = bytes([sig[0] ^ 1]) + sig[1:]
    assert not crypto.ed25519_verify(pk, b"round-1 keys", forged)
    _, other_pk = crypto.ed25519_generate()
    assert not crypto.ed25519_verify(other_pk, b"round-1 keys", sig)
    assert not crypto.ed25519_verify(pk[:-1], b"round-1 keys", sig)


def test_x25519_both_sides_agree_and_hkdf_binds_context() -> None:
    a_sk, a_pk = crypto.x25519_generate()
    b_sk, b_pk = crypto.x25519_generate()
    assert crypto.x25519_public_key(a_sk) == a_pk
    shared_a = crypto.x25519_exchange(a_sk, b_pk)
    shared_b = crypto.x25519_exchange(b_sk, a_pk)
    assert shared_a == shared_b
    k1 = crypto.hkdf_sha256(shared_a, info=b"mask|round-1")
    assert k1 == crypto.hkdf_sha256(shared_b, info=b"mask|round-1")
    assert k1 != crypto.hkdf_sha256(shared_a, info=b"mask|round-2")
    c_sk, _ = crypto.x25519_generate()
    assert crypto.x25519_exchange(c_sk, b_pk) != shared_a


def test_x25519_rejects_small_order_and_malformed_keys() -> None:
    sk, _ = crypto.x25519_generate()
    with pytest.raises(SecureAggregationError, match="small order"):
        crypto.x25519_exchange(sk, bytes(32))
    with pytest.raises(SecureAggregationError, match="32 bytes"):
        crypto.x25519_exchange(sk, b"short")


def test_hkdf_rfc5869_vector() -> None:
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = crypto.hkdf_sha256(ikm, salt=salt, info=info, length=42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_aead_round_trip_tamper_wrong_key_wrong_context() -> None:
    key = crypto.random_bytes(32)
    sealed = crypto.aead_encrypt(key, b"share", b"round-1|a|b")
    assert crypto.aead_decrypt(key, sealed, b"round-1|a|b") == b"share"
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecureAggregationError, match="tampered"):
        crypto.aead_decrypt(key, tampered, b"round-1|a|b")
    with pytest.raises(SecureAggregationError, match="tampered"):
        crypto.aead_decrypt(crypto.random_bytes(32), sealed, b"round-1|a|b")
    with pytest.raises(SecureAggregationError, match="tampered"):
        crypto.aead_decrypt(key, sealed, b"round-2|a|b")
    with pytest.raises(SecureAggregationError, match="too short"):
        crypto.aead_decrypt(key, sealed[:10], b"round-1|a|b")
    # Fresh nonce per call: the same plaintext never encrypts to the same bytes.
    assert crypto.aead_encrypt(key, b"share", b"x") != crypto.aead_encrypt(key, b"share", b"x")


def test_chacha20_rfc8439_keystream_vector() -> None:
    # RFC 8439 §2.4.2: key 00..1f, counter 1, nonce 000000000000004a00000000.
    key = bytes(range(32))
    nonce = (1).to_bytes(4, "little") + bytes.fromhex("000000000000004a00000000")
    ks = crypto.Keystream(key, nonce).read(16)
    plaintext = b"Ladies and Gentl"
    cipher = bytes(a ^ b for a, b in zip(plaintext, ks, strict=True))
    assert cipher.hex() == "6e2e359a2568f98041ba0728dd0d6981"


def test_keystream_chunks_continue_one_stream_and_differ_by_key() -> None:
    key = crypto.random_bytes(32)
    whole = crypto.chacha20_keystream(key, 1000)
    ks = crypto.Keystream(key)
    buf = bytearray(1000)
    ks.read_into(memoryview(buf)[:333])
    ks.read_into(memoryview(buf)[333:])
    assert bytes(buf) == whole
    out = np.zeros(250, dtype=np.uint32)
    crypto.Keystream(key).read_into(out.data)
    assert out.tobytes() == whole
    assert crypto.chacha20_keystream(crypto.random_bytes(32), 1000) != whole
    assert "redacted" in repr(ks)


def test_static_x25519_key_is_derived_from_the_signing_key_and_independent() -> None:
    sk, pk = crypto.ed25519_generate()
    x = crypto.x25519_from_ed25519(sk)
    assert x == crypto.x25519_from_ed25519(sk) and len(x) == crypto.KEY_BYTES
    assert x not in (sk, pk) and crypto.x25519_public_key(x) != pk
    assert crypto.x25519_from_ed25519(crypto.ed25519_generate()[0]) != x
    with pytest.raises(SecureAggregationError, match="32 bytes"):
        crypto.x25519_from_ed25519(sk[:31])


def _recipients(*names: str) -> tuple[dict[str, bytes], dict[str, bytes]]:
    keys = {n: crypto.x25519_generate() for n in names}
    return {n: k[0] for n, k in keys.items()}, {n: k[1] for n, k in keys.items()}


def _open(sealed: crypto.SealedMessage, sk: bytes, who: str, ctx: bytes, **over: bytes) -> bytes:
    args = {
        "ephemeral_public_key": sealed.ephemeral_public_key,
        "wrapped_key": sealed.wrapped_keys[who],
        "ciphertext": sealed.ciphertext,
        "context": ctx,
    } | over
    return crypto.open_sealed(sk, who, **args)


def test_a_message_sealed_to_two_recipients_opens_for_each_of_them() -> None:
    private, public = _recipients("alpha", "bravo")
    ctx = b"pharmafl/test|r1|global_trunk|operator"
    sealed = crypto.seal_to_recipients(public, b"trunk bytes" * 100, ctx)
    assert set(sealed.wrapped_keys) == {"alpha", "bravo"}
    assert b"trunk bytes" not in sealed.ciphertext
    # padded to a multiple of SEAL_PAD_BLOCK (0x80 and zeros after the 1,100 bytes)
    assert len(sealed.ciphertext) == 2 * crypto.SEAL_PAD_BLOCK + crypto.AEAD_NONCE_BYTES + 16
    for who in ("alpha", "bravo"):
        assert _open(sealed, private[who], who, ctx) == b"trunk bytes" * 100
    assert "trunk bytes" not in repr(sealed) and "alpha" in repr(sealed)
    # A fresh content key and ephemeral key every time.
    again = crypto.seal_to_recipients(public, b"trunk bytes" * 100, ctx)
    assert again.ciphertext != sealed.ciphertext
    assert again.ephemeral_public_key != sealed.ephemeral_public_key
    with pytest.raises(SecureAggregationError, match="at least one recipient"):
        crypto.seal_to_recipients({}, b"x", ctx)


def test_the_wrong_recipient_a_moved_wrap_or_another_context_does_not_open() -> None:
    private, public = _recipients("alpha", "bravo")
    ctx = b"pharmafl/test|r1|partner_report|alpha"
    sealed = crypto.seal_to_recipients({"bravo": public["bravo"]}, b"scores", ctx)
    # alpha's key, with bravo's wrap presented as its own.
    with pytest.raises(SecureAggregationError, match="AEAD authentication failed"):
        crypto.open_sealed(
            private["alpha"],
            "alpha",
            ephemeral_public_key=sealed.ephemeral_public_key,
            wrapped_key=sealed.wrapped_keys["bravo"],
            ciphertext=sealed.ciphertext,
            context=ctx,
        )
    # bravo's own key, but the wrap claimed under another id (the id is in the derivation).
    with pytest.raises(SecureAggregationError, match="AEAD authentication failed"):
        crypto.open_sealed(
            private["bravo"],
            "bravo2",
            ephemeral_public_key=sealed.ephemeral_public_key,
            wrapped_key=sealed.wrapped_keys["bravo"],
            ciphertext=sealed.ciphertext,
            context=ctx,
        )
    # Another round, kind or sender in the associated data.
    for other in (b"pharmafl/test|r2|partner_report|alpha", b"pharmafl/test|r1|train_spec|alpha"):
        with pytest.raises(SecureAggregationError, match="AEAD authentication failed"):
            _open(sealed, private["bravo"], "bravo", other)


def test_tampered_wraps_ciphertexts_and_ephemeral_keys_do_not_open() -> None:
    private, public = _recipients("alpha", "bravo")
    ctx = b"pharmafl/test|r1|train_spec|operator"
    sealed = crypto.seal_to_recipients(public, b'{"round_index": 0}', ctx)
    sk = private["alpha"]

    def flip(b: bytes, i: int = -1) -> bytes:
        out = bytearray(b)
        out[i] ^= 1
        return bytes(out)

    for over in (
        {"wrapped_key": flip(sealed.wrapped_keys["alpha"])},
        {"ciphertext": flip(sealed.ciphertext)},
        {"ciphertext": flip(sealed.ciphertext, 0)},  # the nonce
        {"ephemeral_public_key": flip(sealed.ephemeral_public_key, 0)},
        {"ephemeral_public_key": crypto.x25519_generate()[1]},
    ):
        with pytest.raises(SecureAggregationError):
            _open(sealed, sk, "alpha", ctx, **over)
    # A small-order ephemeral key is refused by the key agreement itself.
    with pytest.raises(SecureAggregationError, match="small order"):
        _open(sealed, sk, "alpha", ctx, ephemeral_public_key=bytes(32))
    # Wraps of two recipients hold the same content key but differ.
    assert sealed.wrapped_keys["alpha"] != sealed.wrapped_keys["bravo"]
