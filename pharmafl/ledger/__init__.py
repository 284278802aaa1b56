"""The consortium ledger: an append-only, hash-chained, Ed25519-signed record of events.

Nobody can quietly rewrite it: every entry names its actor, is signed with the actor's roster
key and stores the hash of the entry before it, so a modified, deleted, inserted or reordered
entry, a forged signature or an unknown actor is found by :func:`verify_ledger`, which names
the first bad index. Payloads hold only non-private facts (parameters, code version,
consortium hash, trunk hashes, envelope hashes, shared scalar metrics), enough to reproduce a
run (:func:`reproduction_record`). Nothing here imports torch or RDKit.

- :class:`Ledger` — ``append(actor_id, signing_key, event, payload)``, ``entries()``,
  ``head()``, ``recover()``;
- :func:`verify_ledger` → :class:`VerificationResult`;
- :func:`read_entries`, :func:`reproduction_record` → :class:`RunRecord`;
- :class:`LedgerEvent` and one payload model per event (:data:`PAYLOAD_MODELS`).
"""

from pydantic import BaseModel

from pharmafl.ledger.chain import LEDGER_FILENAME, Ledger, read_entries
from pharmafl.ledger.display import describe_payload, ledger_table
from pharmafl.ledger.entry import (
    GENESIS_HASH,
    LEDGER_DOMAIN,
    LedgerEntry,
    payload_digest,
    run_entries,
)
from pharmafl.ledger.events import (
    DEFAULT_RUN_ID,
    PAYLOAD_MODELS,
    AggregateAppliedPayload,
    CoalitionEvaluatedPayload,
    ConsortiumCreatedPayload,
    ContributionStudyFinishedPayload,
    DataCounts,
    EvaluationReportedPayload,
    LedgerEvent,
    PartnerDroppedPayload,
    PartnerJoinedPayload,
    ReportPublishedPayload,
    RoundAbortedPayload,
    RoundStartedPayload,
    TrainingFinishedPayload,
    TrainingStartedPayload,
    UpdateSubmittedPayload,
    event_of,
    parse_event,
    validate_payload,
)
from pharmafl.ledger.record import RoundRecord, RunRecord, reproduction_record
from pharmafl.ledger.verify import LedgerIssue, VerificationResult, verify_ledger

#: Schema file stem → model: the entry, and the payload of every event type.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "ledger_entry": LedgerEntry,
    **{f"ledger_payload_{event.value}": model for event, model in PAYLOAD_MODELS.items()},
}

__all__ = [
    "AggregateAppliedPayload",
    "CoalitionEvaluatedPayload",
    "ConsortiumCreatedPayload",
    "ContributionStudyFinishedPayload",
    "DEFAULT_RUN_ID",
    "DataCounts",
    "EvaluationReportedPayload",
    "GENESIS_HASH",
    "LEDGER_DOMAIN",
    "LEDGER_FILENAME",
    "Ledger",
    "LedgerEntry",
    "LedgerEvent",
    "LedgerIssue",
    "PAYLOAD_MODELS",
    "PartnerDroppedPayload",
    "PartnerJoinedPayload",
    "ReportPublishedPayload",
    "RoundAbortedPayload",
    "RoundRecord",
    "RoundStartedPayload",
    "RunRecord",
    "SCHEMA_MODELS",
    "TrainingFinishedPayload",
    "TrainingStartedPayload",
    "UpdateSubmittedPayload",
    "VerificationResult",
    "describe_payload",
    "event_of",
    "ledger_table",
    "parse_event",
    "payload_digest",
    "read_entries",
    "reproduction_record",
    "run_entries",
    "validate_payload",
    "verify_ledger",
]
