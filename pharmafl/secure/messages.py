"""The documents of one secure-aggregation round: the round spec, payloads, and the report.

Stages (Bonawitz et al., CCS 2017, with its consistency check; U1 ⊇ U2 ⊇ U3 ⊇ U4, U5):

====================  ======================  ==============================================
partner → operator    operator → partner      content
====================  ======================  ==============================================
                      ``round_spec``          :class:`RoundSpec` (signed by the operator)
``advertise``                                 :class:`AdvertisePayload`: two X25519 keys
                      ``keys``                :class:`KeysPayload`: the signed adverts of U1
``shares`` (to peer)                          AEAD(:class:`SharePayload`), relayed
                      ``relay``               :class:`RelayPayload`: shares addressed to me
``masked``                                    the masked ring vector (raw bytes)
                      ``survivors``           :class:`SurvivorsPayload`: U3
``confirm``                                   :class:`SurvivorsPayload`: U3, signed by me
                      ``unmask_request``      :class:`UnmaskRequestPayload`: ≥ t confirms
``unmask``                                    AEAD(:class:`UnmaskPayload`) to the operator
====================  ======================  ==============================================

Every payload here is canonical JSON; every envelope is signed (:mod:`.envelope`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from pharmafl.common.errors import EnvelopeRejectedError
from pharmafl.common.io import canonical_json
from pharmafl.secure.dp import DPConfig
from pharmafl.secure.envelope import ROUND_ID_PATTERN
from pharmafl.secure.identity import PARTY_ID_PATTERN
from pharmafl.secure.policy import SecurityPolicy
from pharmafl.secure.quantize import QuantizationConfig

_HEX32 = r"^[0-9a-f]{64}$"
_HEX_SHARE = r"^[0-9a-f]{132}$"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_payload(self) -> bytes:
        """Canonical JSON bytes (what goes into an envelope)."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_payload(cls, data: bytes) -> Any:
        """Parse a payload, raising :class:`EnvelopeRejectedError` if it is malformed."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise EnvelopeRejectedError(
                f"malformed {cls.__name__} payload at "
                f"{'.'.join(map(str, first['loc'])) or '<root>'}: {first['msg']}."
            ) from None


def _sorted_ids(v: Sequence[str]) -> tuple[str, ...]:
    ids = tuple(v)
    if list(ids) != sorted(set(ids)):
        raise ValueError("party ids must be unique and sorted")
    return ids


PartyId = Annotated[str, StringConstraints(pattern=PARTY_ID_PATTERN)]
#: A sorted tuple of distinct party ids.
PartyList = Annotated[tuple[PartyId, ...], AfterValidator(_sorted_ids)]


def default_threshold(n_partners: int) -> int:
    """t = max(⌊n/2⌋ + 1, ⌈2n/3⌉): a majority, tolerating about a third of dropouts."""
    return max(n_partners // 2 + 1, math.ceil(2 * n_partners / 3))


def policy_threshold(policy: SecurityPolicy, n_partners: int) -> int:
    """:func:`default_threshold`, raised to the lowest threshold ``policy`` allows."""
    return max(default_threshold(n_partners), policy.min_threshold(n_partners))


def min_threshold(n_partners: int) -> int:
    """The smallest threshold partners accept: a strict majority (⌊n/2⌋ + 1).

    Below a majority, two disjoint groups of survivors could each reach t, and an operator
    could learn both kinds of share of one partner from different groups.
    """
    return n_partners // 2 + 1


def aead_context(purpose: str, round_id: str, sender: str, recipient: str) -> bytes:
    """AEAD associated data: binds a ciphertext to its purpose, round and direction."""
    return canonical_json(
        {"purpose": purpose, "recipient": recipient, "round_id": round_id, "sender": sender}
    )


class RoundSpec(_Doc):
    """What the operator announces for one round; partners check it before taking part."""

    round_id: str = Field(pattern=ROUND_ID_PATTERN, description="Unique id of this round.")
    roster_fingerprint: str = Field(pattern=_HEX32, description="Pinned roster this round uses.")
    operator: str = Field(pattern=PARTY_ID_PATTERN, description="Aggregating operator id.")
    partners: PartyList = Field(min_length=2, description="Invited partners, sorted by id.")
    threshold: int = Field(ge=2, description="t: survivors needed at every stage.")
    vector_length: int = Field(ge=1, le=1 << 34, description="Trunk parameters per update (P).")
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    dp: DPConfig | None = Field(None, description="Differential privacy, if the round uses it.")
    operator_key: str = Field(
        pattern=_HEX32, description="Operator's fresh X25519 key: unmask shares are sealed to it."
    )

    @model_validator(mode="after")
    def _threshold_and_ring(self) -> RoundSpec:
        n = len(self.partners)
        if not min_threshold(n) <= self.threshold <= n:
            raise ValueError(
                f"threshold {self.threshold} must be in {min_threshold(n)}..{n} for {n} partners"
            )
        if self.operator in self.partners:
            raise ValueError("the operator cannot also be a partner of the round")
        self.quantization.check(n)
        problem = self.quantization.dp_violation(self.dp)
        if problem is not None:
            raise ValueError(problem)
        return self

    def digest(self) -> str:
        """SHA-256 (hex) of this spec's canonical payload."""
        return hashlib.sha256(self.to_payload()).hexdigest()

    def index(self, party: str) -> int:
        """1-based position of ``party``: its Shamir share index."""
        return self.partners.index(party) + 1


class AdvertisePayload(_Doc):
    """A partner's fresh per-round X25519 public keys, and the round spec it was sent."""

    c_pk: str = Field(pattern=_HEX32, description="Key agreement for share encryption.")
    s_pk: str = Field(pattern=_HEX32, description="Key agreement for pairwise masks.")
    spec_sha256: str = Field(
        pattern=_HEX32,
        description="SHA-256 of the round spec this partner was sent (RoundSpec.digest): "
        "every partner checks that all were sent the same spec (clip, ring, DP, partners) "
        "before any share leaves.",
    )


class KeysPayload(_Doc):
    """The operator's relay of every accepted advertisement (U1)."""

    advertised: PartyList = Field(description="U1, sorted.")
    envelopes: list[str] = Field(description="The partners' signed advertise envelopes.")


class SharePayload(_Doc):
    """Plaintext of one encrypted share message from u to v."""

    sender: PartyId
    recipient: PartyId
    s_share: str = Field(pattern=_HEX_SHARE, description="Shamir share of u's mask key s_u.")
    b_share: str = Field(pattern=_HEX_SHARE, description="Shamir share of u's self seed b_u.")


class RelayPayload(_Doc):
    """The operator's relay of the share messages addressed to one partner."""

    shared: PartyList = Field(description="U2: partners whose shares reached everyone, sorted.")
    envelopes: list[str] = Field(description="Signed shares envelopes from U2 to me.")


class SurvivorsPayload(_Doc):
    """U3, the partners whose masked input the operator accepted."""

    survivors: PartyList


class UnmaskRequestPayload(_Doc):
    """U3 again plus at least t partners' signed confirmations of it."""

    survivors: PartyList
    confirmations: list[str] = Field(description="Signed confirm envelopes.")


class UnmaskPayload(_Doc):
    """A partner's revealed shares: b shares of survivors, s shares of dropped partners."""

    b_shares: dict[str, str] = Field(description="Survivor id → share of its self seed.")
    s_shares: dict[str, str] = Field(description="Dropped id → share of its mask key.")

    @model_validator(mode="after")
    def _never_both(self) -> UnmaskPayload:
        if set(self.b_shares) & set(self.s_shares):
            raise ValueError("a partner's b share and s share are never revealed together")
        return self


class RejectionRecord(_Doc):
    """One refused envelope, as recorded in the round report."""

    kind: str
    sender: str
    reason: str


class SecAggRoundReport(_Doc):
    """What one round did: who took part at each stage, who dropped, what was aggregated."""

    round_id: str = Field(pattern=ROUND_ID_PATTERN)
    operator: str
    partners: PartyList
    threshold: int
    advertised: PartyList = Field(description="U1")
    shared: PartyList = Field(description="U2")
    survivors: PartyList = Field(description="U3: partners whose inputs are in the sum.")
    confirmed: PartyList = Field(description="U4")
    responded: PartyList = Field(description="U5: partners that revealed shares.")
    dropped: PartyList = Field(description="Invited partners not in the sum.")
    vector_length: int
    total_examples: int = Field(description="Σ n_u over survivors (revealed by design).")
    ring_bits: int
    scale: float
    mean_error_bound: float = Field(description="Max quantization error per mean entry.")
    aggregate_sha256: str = Field(pattern=_HEX32, description="SHA-256 of the float32 mean.")
    rejections: list[RejectionRecord] = Field(default_factory=list)


__all__ = [
    "AdvertisePayload",
    "KeysPayload",
    "PartyId",
    "PartyList",
    "RejectionRecord",
    "RelayPayload",
    "RoundSpec",
    "SecAggRoundReport",
    "SharePayload",
    "SurvivorsPayload",
    "UnmaskPayload",
    "UnmaskRequestPayload",
    "aead_context",
    "default_threshold",
    "min_threshold",
    "policy_threshold",
]
