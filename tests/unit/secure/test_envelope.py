"""Envelopes: signed, framed, and every kind of bad message is rejected with a reason."""

from __future__ import annotations

import logging

import pytest

from pharmafl.common.errors import EnvelopeRejectedError
from pharmafl.secure import (
    Envelope,
    EnvelopeGuard,
    Identity,
    pack_envelopes,
    seal,
    unpack_envelopes,
)
from pharmafl.secure.envelope import MAGIC


def _env(c, sender="p00", round_id="r2", kind="masked", recipient="operator", payload=b"x"):
    return seal(
        c.partners[sender],
        round_id=round_id,
        kind=kind,
        recipient=recipient,
        payload=payload,
        headers={"dtype": "<u4"},
    )


def test_frame_and_json_round_trip(consortium) -> None:
    env = _env(consortium, payload=bytes(range(256)) * 10)
    frame = env.to_bytes()
    assert frame.startswith(MAGIC)
    assert len(frame) - len(env.payload) < 600  # framing overhead is a few hundred bytes
    assert Envelope.from_bytes(frame) == env
    assert Envelope.model_validate_json(env.model_dump_json()) == env
    assert unpack_envelopes(pack_envelopes([env, env])) == [env, env]
    assert env.verify_signature(consortium.partners["p00"].public.key_bytes())
    assert "payload=2560 bytes" in repr(env)


def test_malformed_frames_are_rejected(consortium) -> None:
    frame = _env(consortium).to_bytes()
    with pytest.raises(EnvelopeRejectedError, match="magic"):
        Envelope.from_bytes(b"garbage" + frame)
    with pytest.raises(EnvelopeRejectedError, match="payload does not match"):
        Envelope.from_bytes(frame[:-1] + b"y")  # payload altered: digest mismatch
    with pytest.raises(EnvelopeRejectedError, match="out of range"):
        Envelope.from_bytes(MAGIC + (10**9).to_bytes(4, "big"))
    # A header shorter than its declared length (a truncated frame).
    with pytest.raises(EnvelopeRejectedError, match="out of range"):
        Envelope.from_bytes(MAGIC + (100).to_bytes(4, "big") + b'{"version": 1}')
    # A header that is JSON but not an object (a list) is malformed, not a crash.
    head = b"[1, 2]"
    with pytest.raises(EnvelopeRejectedError):
        Envelope.from_bytes(MAGIC + len(head).to_bytes(4, "big") + head)
    # A header over 1 MiB is refused on its declared length, before it is read and parsed.
    big = (1 << 20) + 1
    with pytest.raises(EnvelopeRejectedError, match="out of range"):
        Envelope.from_bytes(MAGIC + big.to_bytes(4, "big") + b" " * big)
    with pytest.raises(EnvelopeRejectedError):
        unpack_envelopes(["not base64!"])
    with pytest.raises(EnvelopeRejectedError):
        unpack_envelopes("not a list")
    for bundle in (7, None, [7], {"frames": []}):  # not a list of strings: no crash either
        with pytest.raises(EnvelopeRejectedError, match="bundle must hold a list"):
            unpack_envelopes(bundle)


def _guard(c, round_id="r2"):
    return EnvelopeGuard(c.roster, me="operator", round_id=round_id)


def test_guard_accepts_a_good_envelope(consortium) -> None:
    env = _env(consortium)
    assert _guard(consortium).check(env, kind="masked", senders={"p00"}) is env


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda c: _env(c, round_id="r1"), "wrong round 'r1'"),  # replay from an earlier round
        (lambda c: _env(c, kind="confirm"), "wrong kind"),
        (lambda c: _env(c, recipient="p01"), "wrong recipient"),
        (lambda c: _env(c, sender="p01"), "wrong sender"),
        (lambda c: "just bytes", "not an envelope"),
    ],
)
def test_guard_rejections_are_logged(consortium, caplog, mutate, reason) -> None:
    guard = _guard(consortium)
    with caplog.at_level(logging.WARNING), pytest.raises(EnvelopeRejectedError, match=reason):
        guard.check(mutate(consortium), kind="masked", senders={"p00"})
    assert reason in caplog.text
    assert guard.rejections and reason in guard.rejections[0].reason


def test_forged_signature_is_rejected(consortium) -> None:
    # Mallory signs with her own key but claims to be p00.
    mallory = Identity.generate("p00")
    forged = seal(mallory, round_id="r2", kind="masked", recipient="operator", payload=b"x")
    with pytest.raises(EnvelopeRejectedError, match="bad signature"):
        _guard(consortium).check(forged, kind="masked", senders={"p00"})
    # A genuine envelope whose signed header was altered in transit.
    env = _env(consortium)
    altered = env.model_copy(update={"headers": {"dtype": "<u8"}})
    with pytest.raises(EnvelopeRejectedError, match="bad signature"):
        _guard(consortium).check(altered, kind="masked", senders={"p00"})
    # A sender outside the roster.
    outsider = seal(
        Identity.generate("zz"), round_id="r2", kind="masked", recipient="operator", payload=b""
    )
    with pytest.raises(EnvelopeRejectedError, match="not in the roster"):
        _guard(consortium).check(outsider, kind="masked")


def test_replay_and_duplicate_are_rejected(consortium) -> None:
    guard = _guard(consortium)
    env = _env(consortium)
    guard.check(env, kind="masked", senders={"p00"})
    with pytest.raises(EnvelopeRejectedError, match="replayed nonce"):
        guard.check(env, kind="masked", senders={"p00"})
    second = _env(consortium, payload=b"another input")
    with pytest.raises(EnvelopeRejectedError, match="duplicate submission"):
        guard.check(second, kind="masked", senders={"p00"})
    assert [r.reason for r in guard.rejections] == [
        "replayed nonce",
        "duplicate submission for this stage",
    ]
