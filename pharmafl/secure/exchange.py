"""Signed messages outside the secure-aggregation stages: round specs, the global trunk and
partners' shared reports. Same envelopes, same store, same checks (roster signatures, round
binding, no replays); broadcasts go to the recipient id ``consortium``.
"""

from __future__ import annotations

import time

from pharmafl.common.errors import EnvelopeRejectedError, FederationError
from pharmafl.secure.envelope import Envelope, EnvelopeGuard, EnvelopeKind, seal
from pharmafl.secure.identity import Identity, Roster
from pharmafl.secure.store import ExchangeStore

BROADCAST = "consortium"


def publish(
    store: ExchangeStore,
    identity: Identity,
    *,
    round_id: str,
    kind: EnvelopeKind,
    payload: bytes,
    recipient: str = BROADCAST,
    headers: dict[str, str] | None = None,
) -> str:
    """Sign ``payload`` as ``identity`` and put it in the store; return its key."""
    env = seal(
        identity,
        round_id=round_id,
        kind=kind,
        recipient=recipient,
        payload=payload,
        headers=headers or {},
    )
    return store.put(env)


def fetch(
    store: ExchangeStore,
    roster: Roster,
    *,
    me: str,
    round_id: str,
    kind: EnvelopeKind,
    sender: str,
    recipient: str = BROADCAST,
    timeout_s: float = 0.0,
    poll_s: float = 0.5,
) -> Envelope:
    """Wait up to ``timeout_s`` for one valid ``kind`` envelope from ``sender``.

    Envelopes that fail the checks (forged, other round, wrong sender) are logged and
    skipped; if none valid arrives in time a :class:`FederationError` is raised.
    """
    guard = EnvelopeGuard(roster, me=me, round_id=round_id)
    deadline = time.monotonic() + timeout_s
    while True:
        for env in store.list(round_id, kind, recipient, sender=sender):
            try:
                return guard.check(env, kind=kind, senders=(sender,), recipient=recipient)
            except EnvelopeRejectedError:
                continue
        if time.monotonic() >= deadline:
            raise FederationError(
                f"no valid {kind} message from {sender!r} for round {round_id} "
                f"after {timeout_s:.0f} s.",
                fix="check that the operator published the round and the store is reachable.",
            )
        time.sleep(poll_s)


def collect(
    store: ExchangeStore,
    roster: Roster,
    *,
    me: str,
    round_id: str,
    kind: EnvelopeKind,
    senders: tuple[str, ...],
    recipient: str,
) -> dict[str, Envelope]:
    """Every valid ``kind`` envelope from ``senders`` now in the store (one per sender)."""
    guard = EnvelopeGuard(roster, me=me, round_id=round_id)
    out: dict[str, Envelope] = {}
    for env in store.list(round_id, kind, recipient):
        if env.sender in out:
            continue
        try:
            out[env.sender] = guard.check(env, kind=kind, senders=senders, recipient=recipient)
        except EnvelopeRejectedError:
            continue
    return out


__all__ = ["BROADCAST", "collect", "fetch", "publish"]
