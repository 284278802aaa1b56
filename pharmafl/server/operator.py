"""The operator's training loop: rounds of secure aggregation and server optimization.

A run is a loop over :func:`run_round` (:mod:`pharmafl.server.rounds` publishes the signed
:class:`~pharmafl.contract.TrainSpec` and the global trunk, starts every partner through a
:class:`~pharmafl.server.launcher.Launcher` and drives secure aggregation); each round applies
the server optimizer to the securely aggregated mean, checkpoints and records a
:class:`~pharmafl.server.runs.RoundResult`. After the round budget (or when mean validation
AUC-PR stops improving) :func:`final_phase` asks partners to fine-tune their heads on the final
trunk and evaluate. ``resume`` continues from the last completed round and reaches the same
trunk as an uninterrupted run.

Runs are scoped by ``run_id``: the consortium's main run keeps ``operator/plan.json``,
``operator/state/`` and ``operator/final_trunk.npz``; any other run (e.g. one coalition of a
contribution study, whose plan names a subset of ``participants``) lives in
``operator/runs/<run_id>/`` (:mod:`pharmafl.layout`). All runs share the roster, the initial
trunk, the exchange store and the ledger (each entry names its run). Torch-free and RDKit-free.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pharmafl import __version__
from pharmafl.common.errors import FederationError
from pharmafl.common.io import atomic_write_bytes, sha256_bytes
from pharmafl.contract import (
    FederationPlan,
    PartnerUtilityReport,
    TrainSpec,
    TrunkLayout,
    flatten_trunk,
    format_round_id,
    trunk_from_bytes,
    trunk_to_bytes,
    unflatten_trunk,
)
from pharmafl.layout import BEST_TRUNK_FILE, CHECKPOINT_FILE, FINAL_TRUNK_FILE, STATE_DIR
from pharmafl.ledger import (
    AggregateAppliedPayload,
    TrainingFinishedPayload,
    TrainingStartedPayload,
)
from pharmafl.secure import BROADCAST, QuantizationConfig, next_clip
from pharmafl.server.context import OperatorContext, load_operator
from pharmafl.server.launcher import Launcher
from pharmafl.server.optimizers import ServerOptimizer, make_server_optimizer
from pharmafl.server.rounds import (
    SecureRound,
    dropout_causes,
    mean_auc_pr,
    partner_reports,
    publish_round,
    record_participation,
    secure_round,
    shared_validation,
)
from pharmafl.server.runs import (
    RoundResult,
    TrainingState,
    drop_aggregates,
    load_aggregate,
    release_vectors,
)

log = logging.getLogger(__name__)


class TrainingResult(BaseModel):
    """What :func:`run_training` did."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(ge=0, description="Rounds completed.")
    stop_reason: str
    final_trunk_sha256: str
    history: list[RoundResult] = Field(description="Every completed round of the run.")
    wall_seconds: float
    dropped: dict[int, list[str]] = Field(description="Round → partners dropped (this call).")
    utility_reports: dict[str, PartnerUtilityReport] = Field(default_factory=dict)
    utility_report_hashes: dict[str, str] = Field(default_factory=dict)


class _Run:
    """One run in progress: its context, plan, state, optimizer and current trunk bytes.

    ``trunk_bytes`` always holds the serialized current global trunk: each 100+ MB trunk is
    serialized once per round (published, hashed and written at the end from these bytes).
    """

    def __init__(
        self, ctx: OperatorContext, plan: FederationPlan, state: TrainingState, opt: ServerOptimizer
    ) -> None:
        self.ctx, self.plan, self.state, self.optimizer = ctx, plan, state, opt
        self.state_dir = ctx.run_dir / STATE_DIR
        self.trunk_bytes = trunk_to_bytes(state.trunk)
        self.layout = TrunkLayout.of(state.trunk)
        self.dropped: dict[int, list[str]] = {}


def _start(ctx: OperatorContext, plan: FederationPlan, resume: bool) -> _Run:
    """A fresh run from the initial trunk (recorded as started), or the checkpointed one."""
    state_dir = ctx.run_dir / STATE_DIR
    state = TrainingState.load(state_dir)
    if state is not None and not resume:
        raise FederationError(
            f"this operator folder already holds training run {plan.run_id!r}.",
            file=state_dir / CHECKPOINT_FILE,
            fix="pass --resume to continue it, or start a new run: a new run_id and seed in "
            "plan.json, with its own initial trunk (`pharmafl federation init-trunk`).",
        )
    if state is None:
        _refuse_reused_run(ctx, plan, resume)
    if resume and ctx.ledger.path.exists():
        ctx.ledger.recover()
    optimizer = make_server_optimizer(plan.server_optimizer)
    if state is not None:
        optimizer.load_state_dict(state.optimizer)
        log.info("resuming run %s at round %d", plan.run_id, state.next_round)
        for index in range(state.next_round - 1):  # a crash may have come before a release
            release_vectors(ctx.store, plan.run_id, index)
        return _Run(ctx, plan, state, optimizer)
    run = _Run(ctx, plan, TrainingState(trunk=_initial_trunk(ctx)), optimizer)
    ctx.record(
        TrainingStartedPayload(
            run_id=plan.run_id,
            code_version=__version__,
            consortium_hash=ctx.consortium_hash,
            parameters=json.loads(plan.model_dump_json()),
            initial_trunk_hash=sha256_bytes(run.trunk_bytes),
            participants=list(ctx.members),
            secure_aggregation=True,
        )
    )
    run.state.save(run.state_dir)
    return run


def _refuse_reused_run(ctx: OperatorContext, plan: FederationPlan, resume: bool) -> None:
    """A run starting from scratch must not find its own rounds in the exchange store: they
    belong to an earlier run with the same id (another operator folder, or state that was
    lost), whose partners refuse to redo them and whose envelopes would be mixed with ours."""
    first = format_round_id(plan.run_id, 0, 0)
    if not ctx.store.keys(first, "train_spec", BROADCAST):
        return
    fix = (
        "restore this operator folder's state/ of that run, or start a new run"
        if resume
        else "pass --resume from the operator folder that holds that run, or start a new run"
    )
    raise FederationError(
        f"run {plan.run_id!r} already has rounds in the exchange store {ctx.store.url} "
        "but no state in this operator folder: it was started before.",
        file=ctx.run_dir / STATE_DIR,
        fix=f"{fix} (a new run_id and seed in plan.json, with its own initial trunk: "
        "`pharmafl federation init-trunk`).",
    )


def _initial_trunk(ctx: OperatorContext) -> dict[str, np.ndarray]:
    """The run's own initial trunk (``runs/<run id>/initial_trunk.npz``, for a run with its
    own seed) or the consortium's; partners refuse a round 0 from any trunk but the initial
    trunk of the run's plan (pharmafl.partner.federated.check_initial_trunk)."""
    init = ctx.layout.run_initial_trunk(ctx.plan.run_id)
    if not init.is_file():
        raise FederationError(
            "no initial trunk.",
            file=init,
            fix="create it with `pharmafl federation init-trunk PLAN --out FILE` on a "
            "partner-side machine (it needs torch) and copy it here.",
        )
    return trunk_from_bytes(init.read_bytes())


def run_round(run: _Run, launcher: Launcher, poll_s: float) -> RoundResult:
    """Round ``state.next_round``: secure aggregation, server step, ledger, checkpoint."""
    ctx, state, index = run.ctx, run.state, run.state.next_round
    quantization = _round_quantization(run)
    done = _kept_round(run) or secure_round(
        ctx,
        launcher,
        run.trunk_bytes,
        index,
        size=run.layout.size,
        poll_s=poll_s,
        quantization=quantization,
    )
    run.dropped[index] = list(done.result.dropped)
    if quantization.compressed:
        state.clip = next_clip(done.result.mean, quantization, 4 * run.plan.quantization.clip)
        log.info("round %d: clip %g, next round's %g", index, quantization.clip, state.clip)
    old = flatten_trunk(state.trunk, run.layout)
    new = run.optimizer.step(old, done.result.mean).astype(np.float32)
    state.trunk = unflatten_trunk(new, run.layout)
    run.trunk_bytes = trunk_to_bytes(state.trunk)
    new_hash = sha256_bytes(run.trunk_bytes)
    contributors = sorted(done.result.report.survivors)
    ctx.record(
        AggregateAppliedPayload(
            run_id=run.plan.run_id,
            round=index,
            trunk_hash=new_hash,
            previous_trunk_hash=done.spec.global_trunk_sha256,  # the trunk the round started from
            contributors=contributors,
            server_optimizer=run.plan.server_optimizer.name,
        )
    )
    validation = shared_validation(ctx, done.spec)
    score = mean_auc_pr(validation)
    record = RoundResult(
        round=index,
        round_id=done.spec.round_id,
        contributors=contributors,
        dropped=list(done.result.dropped),
        dropout_causes=dropout_causes(done),
        trunk_sha256=new_hash,
        total_weight=done.result.report.total_examples,
        mean_validation_auc_pr=None if math.isnan(score) else score,
        validation=validation,
    )
    _checkpoint(run, record, score)
    log.info("round %d done: mean validation AUC-PR %.4f", index, score)
    return record


def _round_quantization(run: _Run) -> QuantizationConfig:
    """The plan's encoding (its weight bound at the weight cap), with a compressed ring's
    clip as the last round set it."""
    q = run.plan.round_quantization()
    if not q.compressed or run.state.clip is None:
        return q
    # Never below what the DP noise needs (partners refuse such a spec).
    clip = max(run.state.clip, q.dp_floor(run.plan.dp))
    return QuantizationConfig.model_validate(q.model_dump() | {"clip": clip})


def _kept_round(run: _Run) -> SecureRound | None:
    """The round the operator aggregated before it crashed (kept in ``state/``), if any.

    Never aggregated again: partners refuse a second attempt of a round they revealed shares
    in (two aggregates of one round would difference into one partner's update). Ledger
    entries written before the crash are not written twice.
    """
    kept = load_aggregate(run.state_dir, run.state.next_round)
    if kept is None:
        return None
    log.info("round %d was aggregated before a restart: using that aggregate", kept[0].round_index)
    run.ctx.expect_recorded(run.state.next_round)
    done = SecureRound(kept[0], kept[1], {})
    record_participation(run.ctx, done)
    return done


def _checkpoint(run: _Run, record: RoundResult, score: float) -> None:
    state = run.state
    state.history.append(record)
    state.observe(score, run.plan.patience, record.round)
    if state.best_round == record.round:  # before the checkpoint that names it (crash-safe)
        atomic_write_bytes(run.state_dir / BEST_TRUNK_FILE, run.trunk_bytes)
    state.next_round = record.round + 1
    state.optimizer = run.optimizer.state_dict()
    state.save(run.state_dir)
    drop_aggregates(run.state_dir)
    run.ctx.recorded = set()
    if record.round > 0:  # a bounded store: the previous round's trunk and updates go
        release_vectors(run.ctx.store, run.plan.run_id, record.round - 1)


def final_phase(
    run: _Run, launcher: Launcher
) -> tuple[str, dict[str, PartnerUtilityReport], dict[str, str]]:
    """Publish the final trunk, have partners fine-tune and evaluate, record the end.

    Returns the final trunk's hash and, for a contribution-study run, the participants'
    signed one-scalar reports and their envelope hashes.
    """
    ctx, plan, state = run.ctx, run.plan, run.state
    state.stop_reason = state.stop_reason or "round budget"
    state.finished = True
    state.save(run.state_dir)
    trunk_bytes, final_round = run.trunk_bytes, state.next_round - 1
    best = run.state_dir / BEST_TRUNK_FILE
    if plan.final_trunk == "best" and state.best_round is not None and best.is_file():
        trunk_bytes, final_round = best.read_bytes(), state.best_round
    spec = publish_round(ctx, trunk_bytes, state.next_round, previous_completed=True, final=True)
    for p in spec.participants:
        launcher.start(p, spec.round_id, final=True)
    for partner, reason in launcher.finish(plan.stage_timeout_s * 2).items():
        log.warning("final evaluation failed at %s: %s", partner, reason)
    gains, hashes = _utility_reports(ctx, spec) if spec.report_test_gain else ({}, {})
    final_hash = sha256_bytes(trunk_bytes)
    ctx.record(
        TrainingFinishedPayload(
            run_id=plan.run_id,
            rounds=state.next_round,
            final_trunk_hash=final_hash,
            final_trunk_round=max(final_round, 0),
            reason=state.stop_reason,
        )
    )
    atomic_write_bytes(ctx.run_dir / FINAL_TRUNK_FILE, trunk_bytes)
    return final_hash, gains, hashes


def run_training(
    operator_dir: str | Path,
    exchange_url: str,
    launcher: Launcher,
    *,
    resume: bool = False,
    rounds: int | None = None,
    poll_s: float = 0.2,
    on_round: Callable[[RoundResult], None] | None = None,
    run_id: str | None = None,
) -> TrainingResult:
    """Run (or resume) the federated training of the consortium (see the module doc).

    Parameters
    ----------
    operator_dir
        Holds ``identity/``, ``roster.json``, ``plan.json``, ``consortium.json`` and
        ``initial_trunk.npz``; state and ledger are written there.
    exchange_url
        The exchange store (a folder, ``file://``, ``s3://`` …).
    launcher
        How partner rounds are started (the caller closes it).
    resume
        Continue from ``state/checkpoint.json``; without it an existing checkpoint is an error.
    rounds
        Override the plan's round budget.
    on_round
        Called with each completed round's record.
    run_id
        A run other than the main one (its plan in ``runs/<run_id>/``, see
        :func:`~pharmafl.server.write_run_plan`); only the plan's participants take part.
    """
    t_start = time.perf_counter()
    ctx = load_operator(operator_dir, exchange_url, run_id)
    plan = ctx.plan.model_copy(update={"rounds": rounds}) if rounds else ctx.plan
    run = _start(ctx, plan, resume)
    while not run.state.finished and run.state.next_round < plan.rounds:
        record = run_round(run, launcher, poll_s)
        if on_round is not None:
            on_round(record)
    final_hash, gains, gain_hashes = final_phase(run, launcher)
    return TrainingResult(
        rounds=run.state.next_round,
        stop_reason=run.state.stop_reason,
        final_trunk_sha256=final_hash,
        history=run.state.history,
        wall_seconds=time.perf_counter() - t_start,
        dropped=run.dropped,
        utility_reports=gains,
        utility_report_hashes=gain_hashes,
    )


def _utility_reports(
    ctx: OperatorContext, spec: TrainSpec
) -> tuple[dict[str, PartnerUtilityReport], dict[str, str]]:
    """The participants' signed one-scalar reports of a final evaluation (and their hashes)."""
    envs = partner_reports(ctx, spec)
    reports: dict[str, PartnerUtilityReport] = {}
    hashes: dict[str, str] = {}
    for partner, (env, payload) in sorted(envs.items()):
        try:
            rep = PartnerUtilityReport.model_validate_json(payload)
        except ValueError:
            log.warning("ignoring a malformed utility report from %s", partner)
            continue
        if rep.partner != partner or rep.run_id != spec.run_id:
            log.warning("ignoring a utility report from %s for another partner or run", partner)
            continue
        reports[partner] = rep
        hashes[partner] = sha256_bytes(env.to_bytes())
    return reports, hashes


__all__ = ["TrainingResult", "final_phase", "run_round", "run_training"]
