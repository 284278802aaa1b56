"""The operator's abort notice (:func:`pharmafl.server.rounds.announce_abort`): sent only in a
round that opened, sealed to the round's participants, bound to its spec, and never fatal."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from pharmafl.common.errors import ServiceUnavailableError
from pharmafl.secure import (
    BROADCAST,
    ROUND_SPEC_HEADER,
    ExchangeStore,
    Identity,
    SecAggServer,
    build_roster,
    open_payload,
)
from pharmafl.secure.quantize import QuantizationConfig
from pharmafl.server.rounds import announce_abort

PARTNERS = ("p00", "p01", "p02")


@pytest.fixture
def setting():
    """An operator context (store, identity, roster), a round's server and its spec; p03 is
    in the roster but not in the round."""
    operator = Identity.generate("operator", "operator")
    parties = {p: Identity.generate(p) for p in (*PARTNERS, "p03")}
    roster = build_roster(operator, [i.public for i in parties.values()], consortium="test")
    store = ExchangeStore(f"memory://rounds-tests-{uuid.uuid4().hex}")
    ctx = SimpleNamespace(store=store, identity=operator, roster=roster)
    server = SecAggServer(
        operator, roster, store, "r1", vector_length=8, partners=PARTNERS,
        quantization=QuantizationConfig(max_examples=1024),
    )  # fmt: skip
    spec = SimpleNamespace(round_id="r1", participants=PARTNERS)
    yield ctx, server, spec, parties
    if store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)


def _notices(store: ExchangeStore) -> list:
    return store.list("r1", "round_aborted", BROADCAST, sender="operator")


def test_no_notice_in_a_round_that_never_opened(setting) -> None:
    """Its round id may be an earlier attempt's: a notice there could stop a live round."""
    ctx, server, spec, _ = setting
    assert server.stage == "open"
    announce_abort(ctx, server, spec, "too few partners")
    assert _notices(ctx.store) == []


def test_the_notice_is_sealed_to_the_participants_and_bound_to_the_spec(setting) -> None:
    from pharmafl.common.errors import EnvelopeRejectedError

    ctx, server, spec, parties = setting
    server.open()
    announce_abort(ctx, server, spec, "too few masked inputs " + "x" * 1000)
    (env,) = _notices(ctx.store)
    assert env.headers[ROUND_SPEC_HEADER] == server.spec.digest()
    for p in PARTNERS:
        text = open_payload(env, parties[p]).decode()
        assert text.startswith("too few masked inputs") and len(text) == 500
    assert open_payload(env, ctx.identity)  # the operator reads its own record
    with pytest.raises(EnvelopeRejectedError):
        open_payload(env, parties["p03"])  # in the roster, not in the round


def test_a_notice_that_cannot_be_written_is_only_logged(setting, monkeypatch, caplog) -> None:
    """The round is already aborted and recorded: a store failure costs the partners' wait,
    never the operator's run."""
    from pharmafl.server import rounds

    ctx, server, spec, _ = setting
    server.open()

    def broken(*args, **kwargs):
        raise ServiceUnavailableError("the store is down")

    monkeypatch.setattr(rounds, "publish", broken)
    with caplog.at_level(logging.WARNING, logger=rounds.__name__):
        announce_abort(ctx, server, spec, "too few partners")
    assert "could not announce the abort (the store is down)" in caplog.text
    assert _notices(ctx.store) == []
