"""What the ledger says about the consortium's main training run, for the report.

Rounds, stop reason, secure aggregation, wall time and each partner's participation are
read from the signed ledger entries of the run (``training_started``, ``update_submitted``,
``partner_dropped``, ``training_finished``), never from a training history in memory: any
command can build the report after any run, on the operator's files alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pharmafl.layout import MAIN_RUN_ID
from pharmafl.ledger import (
    DEFAULT_RUN_ID,
    LedgerEntry,
    LedgerEvent,
    PartnerDroppedPayload,
    TrainingFinishedPayload,
    TrainingStartedPayload,
    UpdateSubmittedPayload,
    run_entries,
)
from pharmafl.report.models import Participation


@dataclass(frozen=True)
class MainRun:
    """The main training run as recorded on the ledger.

    Attributes
    ----------
    participants
        Partners the run's ``training_started`` entries named (and any partner recorded as
        submitting or dropping out), sorted.
    rounds
        Rounds completed (the last ``training_finished`` entry).
    stop_reason
        Why training stopped, e.g. ``'round budget'`` or ``'early stopping'``.
    secure_aggregation
        Whether the run aggregated its updates securely.
    wall_seconds
        From the first ``training_started`` entry to the last ``training_finished`` entry.
    participation
        Partner → distinct rounds with a submitted update and rounds it dropped out of.
    """

    participants: tuple[str, ...]
    rounds: int
    stop_reason: str
    secure_aggregation: bool
    wall_seconds: float
    participation: dict[str, Participation] = field(default_factory=dict)


def _rounds_by_partner(
    entries: Sequence[LedgerEntry], run_id: str
) -> tuple[dict[str, set[int]], dict[str, dict[int, str]]]:
    """Partner → rounds it submitted an update in, and round → cause of each round it
    dropped out of (the last cause the ledger gives for that round)."""
    submitted: dict[str, set[int]] = {}
    dropped: dict[str, dict[int, str]] = {}
    for e in run_entries(entries, run_id):
        if e.event is LedgerEvent.UPDATE_SUBMITTED:
            up = UpdateSubmittedPayload.model_validate(e.payload)
            submitted.setdefault(up.partner, set()).add(up.round)
        elif e.event is LedgerEvent.PARTNER_DROPPED:
            dr = PartnerDroppedPayload.model_validate(e.payload)
            dropped.setdefault(dr.partner, {})[dr.round] = dr.reason
    return submitted, dropped


def _participation(submitted: set[int], dropped: dict[int, str]) -> Participation:
    causes: dict[str, int] = {}
    for cause in dropped.values():
        causes[cause] = causes.get(cause, 0) + 1
    return Participation(submitted=len(submitted), dropped=len(dropped), dropout_causes=causes)


def main_run_from_ledger(
    entries: Sequence[LedgerEntry], run_id: str = MAIN_RUN_ID
) -> MainRun | None:
    """Collect the report's facts about run ``run_id`` from the ledger.

    Parameters
    ----------
    entries
        The ledger's entries (:func:`pharmafl.ledger.read_entries`).
    run_id
        The run (default: the consortium's main run).

    Returns
    -------
    MainRun or None
        None when the run has not both started and finished on this ledger.
    """
    starts = [e for e in entries if e.event is LedgerEvent.TRAINING_STARTED]
    starts = [e for e in starts if e.payload.get("run_id", DEFAULT_RUN_ID) == run_id]
    ends = [e for e in entries if e.event is LedgerEvent.TRAINING_FINISHED]
    ends = [e for e in ends if e.payload.get("run_id", DEFAULT_RUN_ID) == run_id]
    if not starts or not ends:
        return None
    started = [TrainingStartedPayload.model_validate(e.payload) for e in starts]
    finished = TrainingFinishedPayload.model_validate(ends[-1].payload)
    submitted, dropped = _rounds_by_partner(entries, run_id)
    names = {p for s in started for p in s.participants} | set(submitted) | set(dropped)
    return MainRun(
        participants=tuple(sorted(names)),
        rounds=finished.rounds,
        stop_reason=finished.reason,
        secure_aggregation=all(s.secure_aggregation for s in started),
        wall_seconds=round(max(0.0, (ends[-1].timestamp - starts[0].timestamp).total_seconds()), 1),
        participation={
            p: _participation(submitted.get(p, set()), dropped.get(p, {})) for p in sorted(names)
        },
    )


__all__ = ["MainRun", "main_run_from_ledger"]
