"""Signed message envelopes, their binary framing, and the checks every receiver applies.

Every protocol message is an :class:`Envelope`: round id, kind, sender, recipient, a fresh
random nonce, small signed headers, the payload and an Ed25519 signature over the canonical
JSON of all fields except the payload itself (its SHA-256 is signed instead). A receiver
runs each envelope through an :class:`EnvelopeGuard`, which rejects wrong rounds (replays
from an earlier round), wrong kinds, wrong senders or recipients, bad signatures, replayed
nonces and duplicate submissions, logging the reason.

On the wire (the exchange store) an envelope is framed as ``MAGIC || len(header) || header
JSON || raw payload``, so a masked vector costs its own size plus a few hundred bytes
(base64 in JSON would cost a third more).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from pharmafl.common import crypto
from pharmafl.common.errors import EnvelopeRejectedError, validation_summary
from pharmafl.common.io import canonical_json, sha256_bytes
from pharmafl.secure.identity import PARTY_ID_PATTERN, Identity, Roster

logger = logging.getLogger(__name__)

#: Allowed round ids: they bind HKDF info, AEAD associated data and store paths.
ROUND_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
EnvelopeKind = Literal[
    "round_spec",
    "advertise",
    "keys",
    "shares",
    "relay",
    "masked",
    "survivors",
    "confirm",
    "unmask_request",
    "unmask",
    "train_spec",
    "global_trunk",
    "partner_report",
    "round_aborted",
]
ENVELOPE_KINDS: tuple[str, ...] = get_args(EnvelopeKind)
MAGIC = b"PFLENV1\n"
_DOMAIN = b"pharmafl/envelope/v1\n"
_MAX_HEADER = 1 << 20
#: Most bytes a frame holds around its payload: magic, header length and header.
FRAME_OVERHEAD = len(MAGIC) + 4 + _MAX_HEADER
#: Largest payload of the small kinds (specs, keys, shares, confirmations, reports: JSON or
#: key material, ~100 kB at most for 50 partners). Readers refuse a bigger frame unread.
MAX_MESSAGE_PAYLOAD = 4 << 20
#: Kinds whose payload size follows the trunk's vector length (a masked update, the global
#: trunk): their cap comes from the reader that knows that length, else the store's limit.
VECTOR_KINDS: frozenset[str] = frozenset({"masked", "global_trunk"})


class Envelope(BaseModel):
    """One signed protocol message (JSON form: the payload is base64)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_bytes="base64", val_json_bytes="base64"
    )

    version: Literal[1] = Field(1, description="Envelope format version.")
    round_id: str = Field(pattern=ROUND_ID_PATTERN, description="Round this message belongs to.")
    kind: EnvelopeKind = Field(description="Protocol message kind.")
    sender: str = Field(pattern=PARTY_ID_PATTERN, description="Roster id of the signer.")
    recipient: str = Field(pattern=PARTY_ID_PATTERN, description="Roster id of the addressee.")
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$", description="16 fresh random bytes (hex).")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Small signed metadata (dtype, length, commitments)."
    )
    payload_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of payload.")
    payload: bytes = Field(repr=False, description="Message body (base64 in JSON).")
    signature: str = Field(pattern=r"^[0-9a-f]{128}$", description="Ed25519 signature (hex).")

    @model_validator(mode="after")
    def _digest_matches(self, info: ValidationInfo) -> Envelope:
        # seal() has just computed the digest itself; hashing a large payload twice is waste.
        trusted = isinstance(info.context, dict) and info.context.get("digest_computed")
        if not trusted and sha256_bytes(self.payload) != self.payload_sha256:
            raise ValueError("payload does not match payload_sha256")
        return self

    def header(self) -> dict[str, Any]:
        """All signed fields (everything except payload and signature)."""
        return self.model_dump(mode="json", exclude={"payload", "signature"})

    def signed_bytes(self) -> bytes:
        """The exact bytes the sender signs."""
        return _DOMAIN + canonical_json(self.header())

    def verify_signature(self, public_key: bytes) -> bool:
        """True if the signature is valid under the raw Ed25519 ``public_key``."""
        return crypto.ed25519_verify(public_key, self.signed_bytes(), bytes.fromhex(self.signature))

    def to_bytes(self) -> bytes:
        """Binary frame for storage: magic, header length, header JSON, raw payload."""
        head = canonical_json(self.header() | {"signature": self.signature})
        return b"".join((MAGIC, len(head).to_bytes(4, "big"), head, self.payload))

    @classmethod
    def read_from(cls, stream: BinaryIO, *, max_payload: int | None = None) -> Envelope:
        """Parse one frame from a binary stream (reads the payload with a single copy).

        ``max_payload`` bounds the read: a longer payload is refused after reading at most
        ``max_payload + 1`` bytes of it (None: no bound).

        Raises
        ------
        EnvelopeRejectedError
            If the bytes are not a well-formed envelope (or the payload digest is wrong), or
            the payload is longer than ``max_payload``.
        """
        prefix = stream.read(len(MAGIC) + 4)
        if len(prefix) < len(MAGIC) + 4 or prefix[: len(MAGIC)] != MAGIC:
            raise EnvelopeRejectedError("not a pharmafl envelope (bad magic bytes).")
        n = int.from_bytes(prefix[len(MAGIC) :], "big")
        if n > _MAX_HEADER:
            raise EnvelopeRejectedError("envelope header length is out of range.")
        raw_head = stream.read(n)
        if len(raw_head) != n:
            raise EnvelopeRejectedError("envelope header length is out of range.")
        try:
            head = json.loads(raw_head)
            if not isinstance(head, dict):
                raise ValueError("header is not an object")
            payload = stream.read() if max_payload is None else stream.read(max_payload + 1)
            if max_payload is not None and len(payload) > max_payload:
                raise EnvelopeRejectedError(
                    f"envelope payload is over the {max_payload}-byte limit for its kind."
                )
            return cls.model_validate(head | {"payload": payload})
        except (ValueError, ValidationError) as exc:
            raise EnvelopeRejectedError(f"malformed envelope: {_first_error(exc)}.") from None

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> Envelope:
        """Parse a frame written by :meth:`to_bytes` (see :meth:`read_from`)."""
        return cls.read_from(io.BytesIO(data))

    def __repr__(self) -> str:
        return (
            f"Envelope(round_id={self.round_id!r}, kind={self.kind!r}, sender={self.sender!r}, "
            f"recipient={self.recipient!r}, payload={len(self.payload)} bytes)"
        )


def _first_error(exc: Exception) -> str:
    return validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)


def seal(
    identity: Identity,
    *,
    round_id: str,
    kind: EnvelopeKind,
    recipient: str,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
) -> Envelope:
    """Build and sign an envelope from ``identity`` with a fresh random nonce."""
    fields: dict[str, Any] = {
        "version": 1,
        "round_id": round_id,
        "kind": kind,
        "sender": identity.id,
        "recipient": recipient,
        "nonce": crypto.random_bytes(16).hex(),
        "headers": dict(headers or {}),
        "payload_sha256": sha256_bytes(payload),
    }
    signature = identity.sign(_DOMAIN + canonical_json(fields))
    return Envelope.model_validate(
        fields | {"payload": payload, "signature": signature.hex()},
        context={"digest_computed": True},
    )


def pack_envelopes(envelopes: Collection[Envelope]) -> list[str]:
    """Encode envelopes for embedding in a JSON payload (base64 frames)."""
    return [base64.b64encode(e.to_bytes()).decode("ascii") for e in envelopes]


def unpack_envelopes(items: object) -> list[Envelope]:
    """Decode :func:`pack_envelopes` output (raises :class:`EnvelopeRejectedError`)."""
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise EnvelopeRejectedError("bundle must hold a list of base64-encoded envelopes.")
    try:
        return [Envelope.from_bytes(base64.b64decode(x, validate=True)) for x in items]
    except ValueError:
        raise EnvelopeRejectedError("bundle holds an envelope that is not valid base64.") from None


@dataclass(frozen=True)
class Rejection:
    """Why an envelope was refused (never contains payload bytes)."""

    round_id: str
    kind: str
    sender: str
    reason: str


class EnvelopeGuard:
    """Checks the envelopes one party receives in one round.

    Parameters
    ----------
    roster
        The verified roster: the source of every public key.
    me
        Id of the receiving party (the default expected recipient).
    round_id
        The current round; anything else is refused (replays from earlier rounds).
    """

    def __init__(self, roster: Roster, *, me: str, round_id: str) -> None:
        self.roster = roster
        self.me = me
        self.round_id = round_id
        self.rejections: list[Rejection] = []
        self._nonces: set[str] = set()
        self._seen: set[tuple[str, str, str]] = set()

    def reject(
        self, env: Envelope | None, reason: str, *, kind: str = "?"
    ) -> EnvelopeRejectedError:
        """Record and log a rejection; return the error for the caller to raise."""
        rec = Rejection(
            round_id=env.round_id if env is not None else self.round_id,
            kind=env.kind if env is not None else kind,
            sender=env.sender if env is not None else "?",
            reason=reason,
        )
        self.rejections.append(rec)
        logger.warning(
            "%s rejected %s envelope from %s in round %s: %s",
            self.me,
            rec.kind,
            rec.sender,
            rec.round_id,
            reason,
        )
        return EnvelopeRejectedError(
            f"{rec.kind} envelope from {rec.sender!r} rejected: {reason}.",
            fix="ignore it; if it repeats, check the sender's clock of rounds and its keys.",
        )

    def check(
        self,
        env: object,
        *,
        kind: str,
        senders: Collection[str] | None = None,
        recipient: str | None = None,
    ) -> Envelope:
        """Return ``env`` if it passes every check, else record and raise.

        Raises
        ------
        EnvelopeRejectedError
            Reason: not an envelope, wrong round, wrong kind, wrong recipient, wrong sender,
            unknown sender, bad signature, replayed nonce or duplicate submission.
        """
        if not isinstance(env, Envelope):
            raise self.reject(None, f"not an envelope ({type(env).__name__})", kind=kind)
        if env.round_id != self.round_id:
            raise self.reject(
                env,
                f"wrong round {env.round_id!r}, expected {self.round_id!r} "
                "(replayed from another round?)",
            )
        if env.kind != kind:
            raise self.reject(env, f"wrong kind, expected {kind!r}")
        want = self.me if recipient is None else recipient
        if env.recipient != want:
            raise self.reject(env, f"wrong recipient {env.recipient!r}, expected {want!r}")
        if senders is not None and env.sender not in senders:
            raise self.reject(env, "wrong sender: not expected at this stage")
        try:
            key = self.roster.member(env.sender).key_bytes()
        except Exception:
            raise self.reject(env, "sender is not in the roster") from None
        if not env.verify_signature(key):
            raise self.reject(env, "bad signature (forged or altered in transit)")
        if env.nonce in self._nonces:
            raise self.reject(env, "replayed nonce")
        slot = (env.kind, env.sender, env.recipient)
        if slot in self._seen:
            raise self.reject(env, "duplicate submission for this stage")
        self._nonces.add(env.nonce)
        self._seen.add(slot)
        return env


__all__ = [
    "ENVELOPE_KINDS",
    "FRAME_OVERHEAD",
    "MAGIC",
    "MAX_MESSAGE_PAYLOAD",
    "ROUND_ID_PATTERN",
    "VECTOR_KINDS",
    "Envelope",
    "EnvelopeGuard",
    "EnvelopeKind",
    "Rejection",
    "pack_envelopes",
    "seal",
    "unpack_envelopes",
]
