"""One federated round, operator side: publish the signed spec and the global trunk, start
every participant, drive secure aggregation (the operator learns the FedAvg mean of the
surviving updates, nothing else) and record on the ledger who contributed and who dropped.

A round with fewer than t survivors aborts cleanly and is retried under a fresh round id, up
to the plan's ``max_round_attempts``. Torch-free and RDKit-free.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
from pydantic import ValidationError

from pharmafl.common.errors import (
    AggregateCheckError,
    EnvelopeRejectedError,
    FederationError,
    PharmaFLError,
    SecureAggregationError,
)
from pharmafl.common.io import sha256_bytes
from pharmafl.contract import (
    FederationPlan,
    LedgerHead,
    PartnerRoundReport,
    TrainSpec,
    format_round_id,
)
from pharmafl.layout import STATE_DIR
from pharmafl.ledger import (
    EvaluationReportedPayload,
    PartnerDroppedPayload,
    RoundAbortedPayload,
    RoundStartedPayload,
    UpdateSubmittedPayload,
)
from pharmafl.secure import (
    BROADCAST,
    ROUND_SPEC_HEADER,
    AggregateResult,
    Envelope,
    QuantizationConfig,
    SecAggServer,
    collect,
    open_payload,
    publish,
    sealed_recipients,
)
from pharmafl.server.context import OperatorContext
from pharmafl.server.launcher import Launcher, cause_of
from pharmafl.server.runs import save_aggregate

log = logging.getLogger(__name__)


@dataclass
class SecureRound:
    """A round whose secure aggregation completed: its spec, the aggregate and who failed."""

    spec: TrainSpec
    result: AggregateResult
    failures: dict[str, str]


def _round_id(plan: FederationPlan, index: int, attempt: int, final: bool = False) -> str:
    return format_round_id(plan.run_id, index, attempt, final)


def fresh_attempt(ctx: OperatorContext, index: int, final: bool) -> tuple[int, str]:
    """The first attempt number whose round id was never used in the store."""
    for attempt in range(10_000):
        rid = _round_id(ctx.plan, index, attempt, final)
        if not ctx.store.keys(rid, "train_spec", BROADCAST):
            return attempt, rid
    raise FederationError(f"no fresh round id left for round {index}.")  # pragma: no cover


def publish_round(
    ctx: OperatorContext, trunk_bytes: bytes, index: int, *, previous_completed: bool, final: bool
) -> TrainSpec:
    """Publish the global trunk and the signed spec of a fresh attempt of round ``index``.

    The spec carries the ledger's current head: the operator's signed commitment to the
    history so far, which every partner records and checks (``pharmafl.contract.heads``).
    """
    attempt, round_id = fresh_attempt(ctx, index, final)
    entries, head_hash = ctx.ledger.head()
    spec = TrainSpec(
        run_id=ctx.plan.run_id,
        round_index=index,
        attempt=attempt,
        round_id=round_id,
        participants=ctx.members,
        global_trunk_sha256=sha256_bytes(trunk_bytes),
        trunk=ctx.plan.trunk,
        local=ctx.plan.local,
        seed=ctx.plan.seed,
        previous_round_completed=previous_completed,
        final=final,
        report_test_gain=final and ctx.plan.report_test_gain,
        ledger_head=LedgerHead(entries=entries, head_hash=head_hash),
    )
    # Sealed to the participants (and the operator itself): the store reads neither the
    # trunk (every round's aggregate is the difference of two) nor the spec.
    readers = sealed_recipients(ctx.roster, (*spec.participants, ctx.identity.id))
    publish(
        ctx.store,
        ctx.identity,
        round_id=round_id,
        kind="global_trunk",
        payload=trunk_bytes,
        seal_to=readers,
    )
    publish(
        ctx.store,
        ctx.identity,
        round_id=round_id,
        kind="train_spec",
        payload=spec.model_dump_json().encode(),
        seal_to=readers,
    )
    return spec


def drive_secagg(server: SecAggServer, launcher: Launcher, timeout_s: float, poll_s: float) -> None:
    """Run the operator stages, not waiting for partners whose run already failed."""
    server.open()
    while server.stage not in ("done", "aborted"):
        deadline = time.monotonic() + timeout_s
        while True:
            server.receive()
            waiting = server.pending() - set(launcher.failed())
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(poll_s)
        server.advance()


def _attempt(
    ctx: OperatorContext,
    launcher: Launcher,
    spec: TrainSpec,
    size: int,
    poll_s: float,
    quantization: QuantizationConfig,
) -> SecureRound | None:
    """Start every participant of a published round and drive its secure aggregation; None
    when it aborted (recorded on the ledger)."""
    plan, index = ctx.plan, spec.round_index
    for p in spec.participants:
        launcher.start(p, spec.round_id, final=False)
    server = SecAggServer(
        ctx.identity,
        ctx.roster,
        ctx.store,
        spec.round_id,
        vector_length=size,
        partners=ctx.members,
        threshold=plan.threshold,
        quantization=quantization,
        dp=plan.dp,
    )
    try:
        drive_secagg(server, launcher, plan.stage_timeout_s, poll_s)
    except AggregateCheckError as exc:
        _refuse_aggregate(ctx, launcher, server, spec, exc.message)
    except SecureAggregationError as exc:
        if server.unmask_requested:  # partners may have revealed: never retried
            reason = f"aborted while revealing: {exc.message}"
            _refuse_aggregate(ctx, launcher, server, spec, reason)
        survivors = sorted(set(spec.participants) - set(launcher.failed()))
        ctx.record(
            RoundAbortedPayload(
                run_id=plan.run_id, round=index, reason=exc.message[:500], survivors=survivors
            )
        )
        announce_abort(ctx, server, spec, exc.message)
        launcher.finish(plan.stage_timeout_s)
        log.warning("round %d attempt %d aborted: %s", index, spec.attempt, exc.message)
        return None
    assert server.result is not None
    save_aggregate(ctx.run_dir / STATE_DIR, spec, server.result)  # before anything can fail
    failures = launcher.finish(plan.stage_timeout_s)
    return SecureRound(spec, server.result, failures)


def announce_abort(
    ctx: OperatorContext, server: SecAggServer, spec: TrainSpec, reason: str
) -> None:
    """Tell the round's participants that it aborted (signed, sealed to them, bound to the
    round's secure-aggregation spec): a partner waiting for the operator's next stage stops
    at once instead of at its stage timeout (:meth:`~pharmafl.secure.client.SecAggClient.
    step`). Best effort: a notice that cannot be written only costs that wait. Nothing is
    announced in a round that never opened (its id may belong to an earlier round)."""
    if server.stage == "open":
        return
    try:
        publish(
            ctx.store,
            ctx.identity,
            round_id=spec.round_id,
            kind="round_aborted",
            payload=reason[:500].encode(),
            headers={ROUND_SPEC_HEADER: server.spec.digest()},
            seal_to=sealed_recipients(ctx.roster, (*spec.participants, ctx.identity.id)),
        )
    except PharmaFLError as exc:
        log.warning("round %s: could not announce the abort (%s)", spec.round_id, exc.message)


def _refuse_aggregate(
    ctx: OperatorContext, launcher: Launcher, server: SecAggServer, spec: TrainSpec, reason: str
) -> NoReturn:
    """A round that failed once partners may have revealed their shares (a decoded aggregate
    outside the protocol's bounds, or too few or bad reveals): record it as aborted and stop.

    Never retried: partners refuse to contribute their updates to a second aggregate of the
    round (two aggregates of nearly the same partners difference into one update).
    """
    ctx.record(  # first: the release is on the ledger even if waiting below is cut short
        RoundAbortedPayload(
            run_id=ctx.plan.run_id,
            round=spec.round_index,
            reason=reason[:500],
            survivors=[],
            released=True,
        )
    )
    announce_abort(ctx, server, spec, reason)
    launcher.finish(ctx.plan.stage_timeout_s)
    raise FederationError(
        f"round {spec.round_index}: {reason}",
        fix="this round cannot be retried (partners never contribute an update twice); start "
        "a new run (a new run id and seed in plan.json, and its initial trunk: `pharmafl "
        "federation init-trunk`), without the partner at fault if one is named.",
    )


def secure_round(
    ctx: OperatorContext,
    launcher: Launcher,
    trunk_bytes: bytes,
    index: int,
    *,
    size: int,
    poll_s: float,
    quantization: QuantizationConfig | None = None,
) -> SecureRound:
    """Round ``index`` until an attempt completes (at most ``max_round_attempts``), each
    attempt under a fresh round id; its contributions and dropouts are on the ledger.
    ``quantization``: this round's encoding (default the plan's; a compressed ring's clip
    changes from round to round, :func:`pharmafl.secure.next_clip`).

    Raises
    ------
    FederationError
        Every attempt aborted.
    """
    encoding = quantization or ctx.plan.round_quantization()
    for _ in range(ctx.plan.max_round_attempts):
        spec = publish_round(ctx, trunk_bytes, index, previous_completed=index > 0, final=False)
        ctx.record(
            RoundStartedPayload(
                run_id=ctx.plan.run_id,
                round=index,
                global_trunk_hash=spec.global_trunk_sha256,
                participants=list(spec.participants),
                round_spec_hash=sha256_bytes(spec.model_dump_json().encode()),
                dp=ctx.plan.dp,
                quantization=encoding,
            )
        )
        done = _attempt(ctx, launcher, spec, size, poll_s, encoding)
        if done is not None:
            record_participation(ctx, done)
            return done
    raise FederationError(
        f"round {index} aborted {ctx.plan.max_round_attempts} times.",
        fix="bring enough partners back (at least t) and run `pharmafl train --resume`.",
    )


def record_participation(ctx: OperatorContext, done: SecureRound) -> None:
    """Ledger: each survivor's masked update (by envelope hash) and each dropout's reason."""
    index, round_id = done.spec.round_index, done.spec.round_id
    survivors = done.result.report.survivors
    for env_key in sorted(ctx.store.keys(round_id, "masked", ctx.identity.id)):
        env = ctx.store.get(env_key)
        if env.sender in survivors:
            ctx.record(
                UpdateSubmittedPayload(
                    run_id=ctx.plan.run_id,
                    round=index,
                    partner=env.sender,
                    envelope_hash=sha256_bytes(env.to_bytes()),
                    n_bytes=len(env.payload),
                )
            )
    for partner, cause in dropout_causes(done).items():
        log.warning(
            "partner %s dropped in round %d: %s",
            partner,
            index,
            done.failures.get(partner) or cause,
        )
        ctx.record(
            PartnerDroppedPayload(
                run_id=ctx.plan.run_id, round=index, partner=partner, reason=cause
            )
        )


def dropout_causes(done: SecureRound) -> dict[str, str]:
    """Partner → why it dropped out of the round (``"worker offline"``, ``"run crashed"``…).

    Only the cause reaches the ledger every partner reads: a failure's detail can hold a
    partner's file paths. The full text stays in the operator's local log.
    """
    return {
        p: cause_of(done.failures[p]) if done.failures.get(p) else _NO_FAILURE
        for p in done.result.dropped
    }


#: A partner whose run did not fail but whose messages did not all arrive in time.
_NO_FAILURE = "did not complete the secure-aggregation stages"


def partner_reports(ctx: OperatorContext, spec: TrainSpec) -> dict[str, tuple[Envelope, bytes]]:
    """The signed reports the participants of ``spec``'s round sealed to the operator: each
    envelope with its opened payload. A report that is not sealed to the operator, or does
    not open, is left out (logged): the store must never have read it."""
    envs = collect(
        ctx.store,
        ctx.roster,
        me=ctx.identity.id,
        round_id=spec.round_id,
        kind="partner_report",
        senders=spec.participants,
        recipient=ctx.identity.id,
    )
    out: dict[str, tuple[Envelope, bytes]] = {}
    for partner, env in sorted(envs.items()):
        try:
            out[partner] = (env, open_payload(env, ctx.identity))
        except EnvelopeRejectedError as exc:
            log.warning(
                "round %d: ignoring the report of %s (no validation shared): %s",
                spec.round_index,
                partner,
                exc.message,
            )
    return out


def _validation_report(partner: str, payload: bytes, spec: TrainSpec) -> PartnerRoundReport | None:
    """``partner``'s signed round report, or None (logged) when it is malformed, refused by
    the model (e.g. a NaN score) or about another partner or round."""
    try:
        rep = PartnerRoundReport.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        log.warning(
            "round %d: ignoring the invalid round report of %s (no validation shared): %s: %s",
            spec.round_index,
            partner,
            ".".join(map(str, first["loc"])) or "report",
            first["msg"],
        )
        return None
    if rep.partner != partner or rep.round_index != spec.round_index:
        log.warning(
            "round %d: ignoring the round report of %s: it names partner %r, round %d",
            spec.round_index,
            partner,
            rep.partner,
            rep.round_index,
        )
        return None
    return rep


def shared_validation(ctx: OperatorContext, spec: TrainSpec) -> dict[str, dict[str, float]]:
    """The validation scalars each participant signed after the round (also to the ledger).

    Runs after ``aggregate_applied`` is on the ledger, so it never raises for what a partner
    sent: a malformed or invalid report counts as no validation shared (logged).
    """
    validation: dict[str, dict[str, float]] = {}
    for partner, (_, payload) in sorted(partner_reports(ctx, spec).items()):
        rep = _validation_report(partner, payload, spec)
        if rep is None:
            continue
        validation[partner] = rep.validation
        if rep.validation:
            ctx.record(
                EvaluationReportedPayload(
                    run_id=ctx.plan.run_id,
                    partner=partner,
                    round=spec.round_index,
                    model="federated",
                    split="valid",
                    metrics=rep.validation,
                )
            )
    return validation


def mean_auc_pr(validation: dict[str, dict[str, float]]) -> float:
    """Mean of the shared validation AUC-PRs; NaN when no partner shared one."""
    auc_prs = [v["auc_pr"] for v in validation.values() if "auc_pr" in v]
    return float(np.mean(auc_prs)) if auc_prs else math.nan


__all__ = [
    "SecureRound",
    "drive_secagg",
    "dropout_causes",
    "fresh_attempt",
    "mean_auc_pr",
    "partner_reports",
    "publish_round",
    "record_participation",
    "secure_round",
    "shared_validation",
]
