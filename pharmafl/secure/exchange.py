"""Signed messages outside the secure-aggregation stages: round specs, the global trunk and
partners' shared reports. Same envelopes, same store, same checks (roster signatures, round
binding, no replays); broadcasts go to the recipient id ``consortium``.

What the store must not read is *sealed* to its recipients (``publish(..., seal_to=...)``,
:func:`~pharmafl.common.crypto.seal_to_recipients`): the payload is the ciphertext under a
fresh content key, bound to the round, kind and sender; the signed headers carry the
ephemeral X25519 key (``sealed.epk``) and, for each recipient, the content key wrapped to its
roster encryption key (``sealed.to.<party id>``), so the envelope signature covers both.
A recipient reads the payload with :func:`open_payload`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable

from pharmafl.common import crypto
from pharmafl.common.errors import EnvelopeRejectedError, FederationError, SecureAggregationError
from pharmafl.secure.envelope import Envelope, EnvelopeGuard, EnvelopeKind, seal
from pharmafl.secure.identity import ENCRYPTION_KEY_FIX, Identity, PublicIdentity, Roster
from pharmafl.secure.store import ExchangeStore

BROADCAST = "consortium"
#: Signed header holding the hex ephemeral X25519 public key of a sealed payload.
SEALED_EPK = "sealed.epk"
#: Prefix of the signed headers holding each recipient's wrapped content key (hex).
SEALED_TO = "sealed.to."
_SEAL_CONTEXT = "pharmafl/sealed-envelope/v1"


def _seal_context(round_id: str, kind: str, sender: str) -> bytes:
    # Round ids, kinds and party ids are pattern-checked: none holds a '|'.
    return "|".join((_SEAL_CONTEXT, round_id, kind, sender)).encode("ascii")


def sealed_recipients(roster: Roster, party_ids: Iterable[str]) -> tuple[PublicIdentity, ...]:
    """The roster identities of ``party_ids`` (deduplicated), each with an encryption key.

    Raises
    ------
    FederationError
        A party is not in the roster, or its roster entry has no encryption key (the message
        names every such party and how to fix it).
    """
    ids = sorted(set(party_ids))
    try:
        members = tuple(roster.member(p) for p in ids)
    except SecureAggregationError as exc:
        raise FederationError(exc.message, fix=exc.fix) from None
    missing = [m.id for m in members if m.encryption_key is None]
    if missing:
        raise FederationError(
            f"roster member{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} "
            f"{'have' if len(missing) > 1 else 'has'} no encryption key: nothing can be "
            "sealed to them, and trunks, specs and reports never travel in clear.",
            fix=ENCRYPTION_KEY_FIX,
        )
    return members


def publish(
    store: ExchangeStore,
    identity: Identity,
    *,
    round_id: str,
    kind: EnvelopeKind,
    payload: bytes,
    recipient: str = BROADCAST,
    headers: dict[str, str] | None = None,
    seal_to: Collection[PublicIdentity] | None = None,
) -> str:
    """Sign ``payload`` as ``identity`` and put it in the store; return its key.

    With ``seal_to`` (roster identities, e.g. from :func:`sealed_recipients`) the payload is
    sealed: only those parties can read it (:func:`open_payload`).

    Raises
    ------
    FederationError
        A ``seal_to`` identity has no encryption key.
    """
    fields = dict(headers or {})
    if seal_to is not None:
        payload, sealed_headers = _sealed(identity.id, round_id, kind, payload, seal_to)
        fields |= sealed_headers
    env = seal(
        identity,
        round_id=round_id,
        kind=kind,
        recipient=recipient,
        payload=payload,
        headers=fields,
    )
    return store.put(env)


def _sealed(
    sender: str,
    round_id: str,
    kind: str,
    payload: bytes,
    seal_to: Collection[PublicIdentity],
) -> tuple[bytes, dict[str, str]]:
    missing = [p.id for p in seal_to if p.encryption_key is None]
    if missing:
        raise FederationError(
            f"cannot seal a {kind} message to {', '.join(map(repr, missing))}: no encryption "
            "key in the roster.",
            fix=ENCRYPTION_KEY_FIX,
        )
    sealed = crypto.seal_to_recipients(
        {p.id: p.encryption_key_bytes() for p in seal_to},
        payload,
        _seal_context(round_id, kind, sender),
    )
    headers = {SEALED_EPK: sealed.ephemeral_public_key.hex()}
    headers |= {SEALED_TO + rid: w.hex() for rid, w in sealed.wrapped_keys.items()}
    return sealed.ciphertext, headers


def sealed_to(env: Envelope) -> tuple[str, ...]:
    """The parties ``env``'s payload is sealed to (sorted; empty when it is not sealed)."""
    if SEALED_EPK not in env.headers:
        return ()
    return tuple(sorted(k[len(SEALED_TO) :] for k in env.headers if k.startswith(SEALED_TO)))


def open_payload(env: Envelope, identity: Identity) -> bytes:
    """The plaintext of ``env``'s sealed payload, opened as ``identity``.

    Check the envelope first (:class:`~pharmafl.secure.envelope.EnvelopeGuard`): this only
    decrypts.

    Raises
    ------
    EnvelopeRejectedError
        The payload is not sealed, not sealed to ``identity``, or does not open (a wrap or
        the ciphertext was altered, or moved from another round, kind or sender).
    """
    what = f"{env.kind} envelope from {env.sender!r} in round {env.round_id}"
    if SEALED_EPK not in env.headers:
        raise EnvelopeRejectedError(
            f"{what} is not sealed (its payload would be readable by the store).",
            fix="refuse it; the sender must seal it to its recipients.",
        )
    wrap = env.headers.get(SEALED_TO + identity.id)
    if wrap is None:
        raise EnvelopeRejectedError(
            f"{what} is not sealed to {identity.id!r} (only to "
            f"{', '.join(map(repr, sealed_to(env)))}).",
            fix="only its recipients can read it.",
        )
    try:
        return identity.open_sealed(
            ephemeral_public_key=bytes.fromhex(env.headers[SEALED_EPK]),
            wrapped_key=bytes.fromhex(wrap),
            ciphertext=env.payload,
            context=_seal_context(env.round_id, env.kind, env.sender),
        )
    except (ValueError, SecureAggregationError) as exc:
        reason = exc.message if isinstance(exc, SecureAggregationError) else "malformed hex"
        raise EnvelopeRejectedError(
            f"{what} cannot be opened by {identity.id!r}: {reason}",
            fix="refuse it: it was altered, or sealed for another round, kind or sender (or "
            "the roster holds another encryption key for this party).",
        ) from None


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


__all__ = [
    "BROADCAST",
    "SEALED_EPK",
    "SEALED_TO",
    "collect",
    "fetch",
    "open_payload",
    "publish",
    "sealed_recipients",
    "sealed_to",
]
