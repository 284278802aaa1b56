"""Payloads sealed to their recipients: only they open them, the store reads ciphertext and
the signed wrap headers only (pharmafl.secure.exchange)."""

from __future__ import annotations

import pytest

from pharmafl.common.errors import EnvelopeRejectedError, FederationError
from pharmafl.secure import ExchangeStore, fetch, open_payload, publish, sealed_recipients
from pharmafl.secure.exchange import SEALED_EPK, SEALED_TO, sealed_to

from .conftest import Consortium

RID = "run-r0000-a0"


def test_a_sealed_payload_opens_for_its_recipients_only(
    consortium: Consortium, memory_store: ExchangeStore
) -> None:
    op, p = consortium.operator, consortium.partners
    to = sealed_recipients(consortium.roster, ["p00", "p01", "operator", "p00"])
    assert [m.id for m in to] == ["operator", "p00", "p01"]
    publish(
        memory_store, op, round_id=RID, kind="train_spec", payload=b'{"lead_series":7}', seal_to=to
    )
    env = fetch(
        memory_store, consortium.roster, me="p00", round_id=RID, kind="train_spec", sender=op.id
    )
    assert b"lead_series" not in env.to_bytes()
    assert sealed_to(env) == ("operator", "p00", "p01")
    assert set(env.headers) == {SEALED_EPK, *(SEALED_TO + r for r in sealed_to(env))}
    for reader in (op, p["p00"], p["p01"]):
        assert open_payload(env, reader) == b'{"lead_series":7}'
    with pytest.raises(EnvelopeRejectedError, match="not sealed to 'p02'"):
        open_payload(env, p["p02"])
    # Moved to another round, kind or sender (re-signed by a roster member): does not open.
    for change in ({"round_id": "run-r0001-a0"}, {"kind": "global_trunk"}, {"sender": "p01"}):
        moved = env.model_copy(update=change)
        with pytest.raises(EnvelopeRejectedError, match="cannot be opened by 'p00'"):
            open_payload(moved, p["p00"])
    garbled = env.model_copy(update={"headers": {**env.headers, SEALED_EPK: "zz"}})
    with pytest.raises(EnvelopeRejectedError, match="malformed hex"):
        open_payload(garbled, p["p00"])


def test_an_unsealed_payload_is_refused_by_open_payload(
    consortium: Consortium, memory_store: ExchangeStore
) -> None:
    op = consortium.operator
    publish(memory_store, op, round_id=RID, kind="train_spec", payload=b"{}")
    env = fetch(
        memory_store, consortium.roster, me="p00", round_id=RID, kind="train_spec", sender=op.id
    )
    assert sealed_to(env) == ()
    with pytest.raises(EnvelopeRejectedError, match=r"is not sealed \(its payload would be"):
        open_payload(env, consortium.partners["p00"])


def test_nothing_is_sealed_to_a_member_without_an_encryption_key(consortium: Consortium) -> None:
    old = consortium.roster.member("p01").model_copy(update={"encryption_key": None})
    roster = consortium.roster.model_copy(
        update={"members": tuple(old if m.id == "p01" else m for m in consortium.roster.members)}
    )
    with pytest.raises(FederationError, match="'p01' has no encryption key") as err:
        sealed_recipients(roster, ["p00", "p01"])
    assert "keys export-public" in str(err.value.fix)
    assert "pharmafl keys roster" in str(err.value.fix)
    with pytest.raises(FederationError, match="not in the roster"):
        sealed_recipients(roster, ["p00", "mallory"])
    store = ExchangeStore("memory://sealed-no-key")
    with pytest.raises(FederationError, match="cannot seal a train_spec message to 'p01'"):
        publish(
            store,
            consortium.operator,
            round_id=RID,
            kind="train_spec",
            payload=b"{}",
            seal_to=[old],
        )
    assert store.keys(RID, "train_spec", "consortium") == []


def test_sealed_lengths_hide_small_differences() -> None:
    """Attack (adversarial review of issue 12): a study report's gain sign (+0.012345 vs
    −0.012345) and a count's digits were readable from ciphertext lengths."""
    from pharmafl.common import crypto

    _, pk = crypto.x25519_generate()
    sizes = {
        len(crypto.seal_to_recipients({"op": pk}, body, b"ctx").ciphertext)
        for body in (b'{"gain": 0.012345}', b'{"gain": -0.012345}', b"x" * 1000, b"")
    }
    assert len(sizes) == 1
    sk, pk = crypto.x25519_generate()
    for body in (b"", b"\x00\x80\x00", b"y" * 1023, b"z" * 5000):
        sealed = crypto.seal_to_recipients({"op": pk}, body, b"ctx")
        opened = crypto.open_sealed(
            sk,
            "op",
            ephemeral_public_key=sealed.ephemeral_public_key,
            wrapped_key=sealed.wrapped_keys["op"],
            ciphertext=sealed.ciphertext,
            context=b"ctx",
        )
        assert opened == body


def test_malformed_padding_is_refused() -> None:
    """A sender that pads wrongly (its AEAD still verifies) is refused, never misread."""
    from pharmafl.common import crypto
    from pharmafl.common.errors import SecureAggregationError

    block = crypto.SEAL_PAD_BLOCK
    for bad in (b"x" * block, b"x" * (block - 2) + b"\x80y", b"\x80" * (block - 1)):
        with pytest.raises(SecureAggregationError, match="padding"):
            crypto._unpad(bad)
    assert crypto._unpad(b"ab\x80" + bytes(block - 3)) == b"ab"


def test_fetch_gives_up_after_its_timeout(
    consortium: Consortium, memory_store: ExchangeStore
) -> None:
    with pytest.raises(FederationError, match="no valid train_spec message"):
        fetch(
            memory_store,
            consortium.roster,
            me="p00",
            round_id=RID,
            kind="train_spec",
            sender=consortium.operator.id,
            timeout_s=0.05,
            poll_s=0.01,
        )
