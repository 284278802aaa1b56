"""Ledger event types and the payload model of each: small, non-private, typed facts.

A payload records what is needed to audit and reproduce a run (parameters, code version,
consortium hash, trunk hashes per round) and nothing a partner keeps private: an update is
recorded by its envelope's hash, never its content; an evaluation by the scalar aggregates the
partner chose to share. Privacy-critical payloads forbid extra fields so nothing else can slip in.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from pharmafl.common.errors import LedgerError
from pharmafl.layout import MAIN_RUN_ID
from pharmafl.secure.dp import DPConfig
from pharmafl.secure.identity import PARTY_ID_PATTERN
from pharmafl.secure.quantize import QuantizationConfig

#: A SHA-256 digest as 64 lower-case hex digits.
HEX64 = r"^[0-9a-f]{64}$"
#: Largest canonical payload accepted (bytes); payloads are facts, not data.
MAX_PAYLOAD_BYTES = 64 * 1024
#: Run id used when a payload does not name one (the consortium's main training run).
DEFAULT_RUN_ID = MAIN_RUN_ID


class LedgerEvent(StrEnum):
    """What happened. The value is what the ledger stores."""

    CONSORTIUM_CREATED = "consortium_created"
    PARTNER_JOINED = "partner_joined"
    TRAINING_STARTED = "training_started"
    ROUND_STARTED = "round_started"
    UPDATE_SUBMITTED = "update_submitted"
    PARTNER_DROPPED = "partner_dropped"
    AGGREGATE_APPLIED = "aggregate_applied"
    ROUND_ABORTED = "round_aborted"
    EVALUATION_REPORTED = "evaluation_reported"
    TRAINING_FINISHED = "training_finished"
    COALITION_EVALUATED = "coalition_evaluated"
    CONTRIBUTION_STUDY_FINISHED = "contribution_study_finished"
    REPORT_PUBLISHED = "report_published"


class _Payload(BaseModel):
    """Base of payloads that may carry extra non-private facts next to the required ones."""

    model_config = ConfigDict(extra="allow", frozen=True)


class _StrictPayload(BaseModel):
    """Base of privacy-critical payloads: exactly the listed fields, nothing else."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_PARTY = Field(pattern=PARTY_ID_PATTERN, description="Party id as in the roster.")
_RUN = Field(
    DEFAULT_RUN_ID,
    pattern=PARTY_ID_PATTERN,
    description="Training run this belongs to ('train', or one coalition of a contribution study).",
)
_ROUND = Field(ge=0, description="Round number, 0-based.")


class DataCounts(_StrictPayload):
    """What a partner contributes, from its signed preparation manifest."""

    compounds: int = Field(ge=0, description="Compounds in the prepared data.")
    tasks: int = Field(ge=0, description="Tasks (outputs) the partner trains.")
    measurements: int = Field(ge=0, description="Non-missing labels over all tasks.")


class ConsortiumCreatedPayload(_Payload):
    """The consortium exists: its parameters (hashed and in full) and roster."""

    consortium: str = Field(min_length=1, max_length=200, description="Consortium name.")
    consortium_hash: str = Field(pattern=HEX64, description="SHA-256 of the consortium params.")
    roster_fingerprint: str = Field(pattern=HEX64, description="Fingerprint of the signed roster.")
    code_version: str = Field(min_length=1, max_length=100, description="pharmafl version.")
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict, description="Consortium parameters (non-secret) in full."
    )


class PartnerJoinedPayload(_Payload):
    """A partner joined with a given key and prepared data (counts only)."""

    partner: str = _PARTY
    public_key_fingerprint: str = Field(pattern=HEX64, description="SHA-256 of its public key.")
    manifest_hash: str | None = Field(None, pattern=HEX64, description="Its signed manifest.")
    consistency_hash: str | None = Field(
        None, pattern=HEX64, description="Hash of the prepared public reference set."
    )
    data: DataCounts | None = Field(None, description="Data contributed (counts only).")


class TrainingStartedPayload(_Payload):
    """Everything needed to reproduce a training run, recorded before its first round."""

    run_id: str = _RUN
    code_version: str = Field(min_length=1, max_length=100, description="pharmafl version.")
    consortium_hash: str = Field(pattern=HEX64, description="SHA-256 of the consortium params.")
    parameters: dict[str, JsonValue] = Field(
        description="Training hyperparameters: model, optimiser, rounds, local epochs, seeds."
    )
    initial_trunk_hash: str = Field(pattern=HEX64, description="Hash of the initial trunk.")
    participants: list[str] = Field(description="Partner ids taking part, sorted.")
    secure_aggregation: bool = Field(description="Whether updates are securely aggregated.")


class RoundStartedPayload(_Payload):
    """A round was published: which trunk it starts from and who takes part."""

    run_id: str = _RUN
    round: int = _ROUND
    global_trunk_hash: str = Field(pattern=HEX64, description="Trunk the round starts from.")
    participants: list[str] = Field(description="Partner ids invited to this round.")
    round_spec_hash: str | None = Field(None, pattern=HEX64, description="Signed round spec.")
    dp: DPConfig | None = Field(
        None, description="Differential privacy of this round (None: none), for accounting."
    )
    quantization: QuantizationConfig | None = Field(
        None,
        description="The encoding partners were sent for this round (a compressed ring's "
        "clip changes every round); None in ledgers written before it was recorded.",
    )


class UpdateSubmittedPayload(_StrictPayload):
    """A partner submitted its masked update: recorded by envelope hash only, never content."""

    run_id: str = _RUN
    round: int = _ROUND
    partner: str = _PARTY
    envelope_hash: str = Field(pattern=HEX64, description="SHA-256 of the sealed envelope.")
    n_bytes: int | None = Field(None, ge=0, description="Envelope size in bytes.")


class PartnerDroppedPayload(_StrictPayload):
    """A partner dropped out of a round (timeout, crash); the reason holds no data."""

    run_id: str = _RUN
    round: int = _ROUND
    partner: str = _PARTY
    reason: str = Field(max_length=500, description="Why, e.g. 'timeout after 600 s'.")


class AggregateAppliedPayload(_Payload):
    """The securely aggregated update was applied: the new global trunk."""

    run_id: str = _RUN
    round: int = _ROUND
    trunk_hash: str = Field(pattern=HEX64, description="Hash of the new global trunk.")
    previous_trunk_hash: str | None = Field(None, pattern=HEX64, description="Trunk before.")
    contributors: list[str] = Field(description="Partners whose updates are in the aggregate.")
    server_optimizer: str | None = Field(None, max_length=50, description="e.g. 'fedavg'.")


class RoundAbortedPayload(_StrictPayload):
    """A round aborted (too few partners left); it is retried or training stops."""

    run_id: str = _RUN
    round: int = _ROUND
    reason: str = Field(max_length=500, description="Why the round aborted.")
    survivors: list[str] = Field(default_factory=list, description="Partners still present.")
    released: bool = Field(
        False,
        description="Partners may have revealed their shares: the aggregate may have been "
        "decoded (counted in every invited partner's privacy loss).",
    )


class EvaluationReportedPayload(_StrictPayload):
    """Scalar aggregates a partner chose to share about one model on one split."""

    run_id: str = _RUN
    partner: str = _PARTY
    round: int | None = Field(None, ge=0, description="Round evaluated (None: final model).")
    model: str = Field(max_length=50, description="'federated', 'local' or 'pooled'.")
    split: str = Field(pattern=r"^(valid|test)$", description="'valid' or 'test'.")
    metrics: dict[str, float] = Field(description="Metric name → mean over the partner's tasks.")


class TrainingFinishedPayload(_Payload):
    """A training run ended; its final trunk."""

    run_id: str = _RUN
    rounds: int = Field(ge=0, description="Rounds completed.")
    final_trunk_hash: str = Field(pattern=HEX64, description="Hash of the final global trunk.")
    final_trunk_round: int | None = Field(
        None, ge=0, description="Round whose aggregate is the final trunk (best validation)."
    )
    reason: str = Field(max_length=200, description="e.g. 'round budget', 'early stopping'.")


_STUDY = Field(
    pattern=r"^[0-9a-f]{8,64}$",
    description="Contribution study: hash of its parameters and partners (names its runs).",
)


class CoalitionEvaluatedPayload(_StrictPayload):
    """One coalition of a contribution study was trained (as its own, securely aggregated
    run) and scored: its utility v(S). Members' individual reports are recorded by the hash
    of their signed envelopes only."""

    study_id: str = _STUDY
    run_id: str = Field(pattern=PARTY_ID_PATTERN, description="The coalition's training run.")
    coalition: list[str] = Field(min_length=2, description="Member partner ids, sorted.")
    utility: float = Field(description="v(S): mean over all partners of the reported gains.")
    reports: dict[str, str] = Field(
        description="Member → SHA-256 of its signed one-scalar report envelope."
    )


class ContributionStudyFinishedPayload(_Payload):
    """Coalition utilities were collected and contributions computed (utilities only)."""

    study_id: str | None = Field(None, pattern=r"^[0-9a-f]{8,64}$", description="The study.")
    parameters: dict[str, JsonValue] = Field(
        default_factory=dict, description="Study parameters (rounds, method, seed …)."
    )
    utility: str | None = Field(None, max_length=200, description="What v(S) measures.")
    method: str = Field(max_length=50, description="'exact', 'permutation' or 'leave_one_out'.")
    grand_coalition_utility: float = Field(description="v(N).")
    empty_coalition_utility: float = Field(description="v(∅).")
    shapley: dict[str, float] = Field(default_factory=dict, description="Shapley value/partner.")
    leave_one_out: dict[str, float] = Field(default_factory=dict, description="v(N) − v(N∖i).")
    n_coalitions: int = Field(ge=0, description="Coalitions whose utility was evaluated.")
    shapley_ci: dict[str, tuple[float, float]] | None = Field(
        None,
        description="Confidence interval per player (evaluation error over the members' "
        "tasks, plus sampling error for a permutation estimate).",
    )
    confidence: float | None = Field(None, gt=0, lt=1, description="Level of the intervals.")
    leave_one_out_ci: dict[str, tuple[float, float]] | None = Field(
        None, description="Interval of each leave-one-out value."
    )
    grand_coalition_ci: tuple[float, float] | None = Field(None, description="Interval of v(N).")
    groups: dict[str, list[str]] | None = Field(
        None, description="The players, when they are valuation groups: group → partners."
    )


class ReportPublishedPayload(_Payload):
    """The consortium summary and report were published."""

    summary_hash: str = Field(pattern=HEX64, description="SHA-256 of summary.json.")
    report_hash: str | None = Field(None, pattern=HEX64, description="SHA-256 of report.html.")


#: Event → payload model (a registry: an unknown event lists the valid ones).
PAYLOAD_MODELS: dict[LedgerEvent, type[BaseModel]] = {
    LedgerEvent.CONSORTIUM_CREATED: ConsortiumCreatedPayload,
    LedgerEvent.PARTNER_JOINED: PartnerJoinedPayload,
    LedgerEvent.TRAINING_STARTED: TrainingStartedPayload,
    LedgerEvent.ROUND_STARTED: RoundStartedPayload,
    LedgerEvent.UPDATE_SUBMITTED: UpdateSubmittedPayload,
    LedgerEvent.PARTNER_DROPPED: PartnerDroppedPayload,
    LedgerEvent.AGGREGATE_APPLIED: AggregateAppliedPayload,
    LedgerEvent.ROUND_ABORTED: RoundAbortedPayload,
    LedgerEvent.EVALUATION_REPORTED: EvaluationReportedPayload,
    LedgerEvent.TRAINING_FINISHED: TrainingFinishedPayload,
    LedgerEvent.COALITION_EVALUATED: CoalitionEvaluatedPayload,
    LedgerEvent.CONTRIBUTION_STUDY_FINISHED: ContributionStudyFinishedPayload,
    LedgerEvent.REPORT_PUBLISHED: ReportPublishedPayload,
}


def event_of(payload: BaseModel) -> LedgerEvent:
    """The event a payload model records (the inverse of :data:`PAYLOAD_MODELS`).

    Raises
    ------
    LedgerError
        If ``payload`` is not one of the payload models.
    """
    for event, model in PAYLOAD_MODELS.items():
        if type(payload) is model:
            return event
    raise LedgerError(
        f"{type(payload).__name__} is not a ledger payload model.",
        fix="use one of the payload models in pharmafl.ledger.events.",
    )


def parse_event(event: LedgerEvent | str) -> LedgerEvent:
    """Return ``event`` as a :class:`LedgerEvent`.

    Raises
    ------
    LedgerError
        If ``event`` is not a known event type (the message lists the valid ones).
    """
    try:
        return LedgerEvent(event)
    except ValueError:
        raise LedgerError(
            f"unknown ledger event {event!r}.",
            fix=f"use one of: {', '.join(e.value for e in LedgerEvent)}.",
        ) from None


def validate_payload(event: LedgerEvent | str, payload: BaseModel | dict[str, Any] | None) -> dict:
    """Check ``payload`` against the model of ``event``; return it as a JSON-ready dict.

    The returned dict is the payload model's JSON dump (defaults filled in), so what is
    stored is exactly what the model describes.

    Raises
    ------
    LedgerError
        Unknown event, a payload that does not fit its model, a non-finite number, or a
        payload larger than :data:`MAX_PAYLOAD_BYTES`.
    """
    ev = parse_event(event)
    model = PAYLOAD_MODELS[ev]
    raw: Any = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
    try:
        doc = model.model_validate(raw if raw is not None else {}).model_dump(mode="json")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "payload"
        raise LedgerError(
            f"payload of a {ev.value!r} entry is invalid at {where}: {first['msg']}.",
            fix=f"see {model.__name__} in pharmafl.ledger.events for the expected fields.",
        ) from None
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise LedgerError(
            f"payload of a {ev.value!r} entry holds a NaN or infinite number.",
            fix="record missing values as null.",
        ) from None
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise LedgerError(
            f"payload of a {ev.value!r} entry is {len(text.encode())} bytes "
            f"(limit {MAX_PAYLOAD_BYTES}).",
            fix="record hashes and counts on the ledger; keep bulky documents in files.",
        )
    return doc


__all__ = [
    "AggregateAppliedPayload",
    "CoalitionEvaluatedPayload",
    "ConsortiumCreatedPayload",
    "ContributionStudyFinishedPayload",
    "DEFAULT_RUN_ID",
    "DataCounts",
    "EvaluationReportedPayload",
    "HEX64",
    "LedgerEvent",
    "MAX_PAYLOAD_BYTES",
    "PAYLOAD_MODELS",
    "PartnerDroppedPayload",
    "PartnerJoinedPayload",
    "ReportPublishedPayload",
    "RoundAbortedPayload",
    "RoundStartedPayload",
    "TrainingFinishedPayload",
    "TrainingStartedPayload",
    "UpdateSubmittedPayload",
    "event_of",
    "parse_event",
    "validate_payload",
]
