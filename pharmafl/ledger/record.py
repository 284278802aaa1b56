"""Read back from the ledger everything needed to reproduce one training run."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from pharmafl.common.errors import LedgerError
from pharmafl.ledger.entry import LedgerEntry
from pharmafl.ledger.events import (
    DEFAULT_RUN_ID,
    HEX64,
    AggregateAppliedPayload,
    ConsortiumCreatedPayload,
    LedgerEvent,
    PartnerDroppedPayload,
    RoundAbortedPayload,
    TrainingFinishedPayload,
    TrainingStartedPayload,
    UpdateSubmittedPayload,
)


class RoundRecord(BaseModel):
    """One completed round of a run, as the ledger recorded it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    round: int = Field(ge=0)
    trunk_hash: str = Field(pattern=HEX64, description="Global trunk after the round.")
    contributors: list[str] = Field(description="Partners in the aggregate.")
    submitted: list[str] = Field(description="Partners whose update envelope was recorded.")
    dropped: list[str] = Field(description="Partners recorded as dropped in this round.")


class RunRecord(BaseModel):
    """What the ledger says about one training run: enough to re-run it and compare trunks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    consortium: str | None = Field(None, description="From consortium_created, if present.")
    code_version: str
    consortium_hash: str = Field(pattern=HEX64)
    parameters: dict[str, JsonValue]
    initial_trunk_hash: str = Field(pattern=HEX64)
    participants: list[str]
    secure_aggregation: bool
    rounds: list[RoundRecord] = Field(description="Completed rounds in order.")
    aborted_rounds: list[int] = Field(default_factory=list)
    final_trunk_hash: str | None = Field(None, pattern=HEX64, description="None if unfinished.")
    finished: bool

    def trunk_hashes(self) -> dict[int, str]:
        """Round → global trunk hash after that round."""
        return {r.round: r.trunk_hash for r in self.rounds}

    def participation(self) -> dict[str, tuple[int, int]]:
        """Partner → (rounds with a recorded update, rounds dropped), over completed rounds."""
        out: dict[str, tuple[int, int]] = {p: (0, 0) for p in self.participants}
        for r in self.rounds:
            for p in r.submitted:
                s, d = out.get(p, (0, 0))
                out[p] = (s + 1, d)
            for p in r.dropped:
                s, d = out.get(p, (0, 0))
                out[p] = (s, d + 1)
        return out


def reproduction_record(entries: Sequence[LedgerEntry], run_id: str = DEFAULT_RUN_ID) -> RunRecord:
    """Collect parameters, code version, consortium hash and per-round trunk hashes of a run.

    Parameters
    ----------
    entries
        Verified ledger entries (:func:`~pharmafl.ledger.read_entries` after
        :func:`~pharmafl.ledger.verify_ledger`).
    run_id
        The run to collect (``"train"`` by default).

    Raises
    ------
    LedgerError
        If the ledger holds no ``training_started`` entry for ``run_id``.
    """
    consortium: str | None = None
    start: TrainingStartedPayload | None = None
    trunks: dict[int, AggregateAppliedPayload] = {}
    submitted: dict[int, list[str]] = {}
    dropped: dict[int, list[str]] = {}
    aborted: list[int] = []
    finish: TrainingFinishedPayload | None = None
    for e in entries:
        if e.event is LedgerEvent.CONSORTIUM_CREATED:
            consortium = ConsortiumCreatedPayload.model_validate(e.payload).consortium
            continue
        if e.payload.get("run_id", DEFAULT_RUN_ID) != run_id:
            continue
        if e.event is LedgerEvent.TRAINING_STARTED:
            start = TrainingStartedPayload.model_validate(e.payload)
        elif e.event is LedgerEvent.AGGREGATE_APPLIED:
            agg = AggregateAppliedPayload.model_validate(e.payload)
            trunks[agg.round] = agg
        elif e.event is LedgerEvent.UPDATE_SUBMITTED:
            up = UpdateSubmittedPayload.model_validate(e.payload)
            submitted.setdefault(up.round, []).append(up.partner)
        elif e.event is LedgerEvent.PARTNER_DROPPED:
            dr = PartnerDroppedPayload.model_validate(e.payload)
            dropped.setdefault(dr.round, []).append(dr.partner)
        elif e.event is LedgerEvent.ROUND_ABORTED:
            aborted.append(RoundAbortedPayload.model_validate(e.payload).round)
        elif e.event is LedgerEvent.TRAINING_FINISHED:
            finish = TrainingFinishedPayload.model_validate(e.payload)
    if start is None:
        raise LedgerError(
            f"the ledger has no training_started entry for run {run_id!r}.",
            fix="pass the run id recorded by the operator's training flow.",
        )
    rounds = [
        RoundRecord(
            round=r,
            trunk_hash=trunks[r].trunk_hash,
            contributors=sorted(trunks[r].contributors),
            submitted=sorted(set(submitted.get(r, []))),
            dropped=sorted(set(dropped.get(r, []))),
        )
        for r in sorted(trunks)
    ]
    return RunRecord(
        run_id=run_id,
        consortium=consortium,
        code_version=start.code_version,
        consortium_hash=start.consortium_hash,
        parameters=start.parameters,
        initial_trunk_hash=start.initial_trunk_hash,
        participants=sorted(start.participants),
        secure_aggregation=start.secure_aggregation,
        rounds=rounds,
        aborted_rounds=sorted(aborted),
        final_trunk_hash=None if finish is None else finish.final_trunk_hash,
        finished=finish is not None,
    )


__all__ = ["RoundRecord", "RunRecord", "reproduction_record"]
