"""The operator's training loop: rounds of secure aggregation and server optimization.

For each round the operator publishes a signed :class:`~pharmafl.server.plan.TrainSpec` and
the global trunk, has every partner run its round (through a :class:`Launcher`: in-process
threads, local processes or Prefect deployments on partners' workers), runs the operator side
of secure aggregation (it learns the FedAvg mean of the surviving updates, nothing else),
applies the server optimizer, checkpoints, and writes ledger entries. A round with fewer
than t survivors aborts cleanly and is retried under a fresh round id; after the round
budget (or when mean validation AUC-PR stops improving) a final spec asks partners to
fine-tune their heads on the final trunk and evaluate. ``resume`` continues from the last
completed round and reaches the same trunk as an uninterrupted run.

Runs are scoped by ``run_id``: the consortium's main run keeps ``operator/plan.json``,
``operator/state/`` and ``operator/final_trunk.npz``; any other run (e.g. one coalition of a
contribution study, whose plan names a subset of ``participants``) lives in
``operator/runs/<run_id>/``. All runs share the roster, the initial trunk, the exchange store
and the ledger (each entry names its run). Torch-free and RDKit-free.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pharmafl import __version__
from pharmafl.common.errors import FederationError, SecureAggregationError
from pharmafl.common.io import atomic_write_bytes, sha256_bytes
from pharmafl.common.params import load_consortium_parameters
from pharmafl.ledger import Ledger, LedgerEvent
from pharmafl.secure import (
    BROADCAST,
    ExchangeStore,
    Identity,
    Roster,
    SecAggServer,
    collect,
    load_identity,
    load_roster,
    publish,
)
from pharmafl.server.optimizers import make_server_optimizer
from pharmafl.server.plan import (
    FederationPlan,
    PartnerRoundReport,
    PartnerUtilityReport,
    TrainSpec,
)
from pharmafl.server.runs import (
    BEST_TRUNK_FILE,
    FINAL_TRUNK_FILE,
    INITIAL_TRUNK_FILE,
    LEDGER_FILE,
    PLAN_FILE,
    STATE_DIR,
    TrainingState,
    format_round_id,
    run_dir,
)
from pharmafl.server.trunk import (
    TrunkLayout,
    flatten_trunk,
    trunk_from_bytes,
    trunk_to_bytes,
    unflatten_trunk,
)

log = logging.getLogger(__name__)


class Launcher(Protocol):
    """Starts partner work and reports which partner runs ended (the operator never waits
    for a partner whose run is known to have failed)."""

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        """Start ``partner``'s round (or final evaluation) without waiting for it."""

    def failed(self) -> dict[str, str]:
        """Partners whose current run ended with an error → a short reason."""

    def finish(self, timeout_s: float) -> dict[str, str]:
        """Wait for every started run; return the failed ones (partner → reason)."""


@dataclass
class OperatorContext:
    """The operator's folder, identity, roster, one run's plan and folder, store and ledger."""

    operator_dir: Path
    identity: Identity
    roster: Roster
    plan: FederationPlan
    store: ExchangeStore
    ledger: Ledger
    consortium_hash: str
    run_dir: Path
    members: tuple[str, ...]


def load_operator(
    operator_dir: str | Path, exchange_url: str, run_id: str | None = None
) -> OperatorContext:
    """Load ``identity/operator.key.json``, ``roster.json``, a run's plan and the ledger.

    ``run_id`` None (default) loads the main run (``plan.json``); another id loads
    ``runs/<run_id>/plan.json`` (written with :func:`write_run_plan`). The plan's
    participants are checked against the roster.
    """
    odir = Path(operator_dir)
    keys = sorted((odir / "identity").glob("*.key.json"))
    if len(keys) != 1:
        raise FederationError(
            f"expected one operator signing key in identity/, found {len(keys)}.",
            file=odir / "identity",
            fix="run `pharmafl keys generate --role operator` there.",
        )
    identity = load_identity(keys[0])
    roster = load_roster(odir / "roster.json")
    if roster.operator != identity.id:
        raise FederationError("the roster was signed by another operator.", file=odir)
    rdir = run_dir(odir, run_id)
    plan_path = rdir / PLAN_FILE
    if not plan_path.is_file():
        raise FederationError(
            f"no federation plan{'' if run_id is None else f' for run {run_id!r}'}.",
            file=plan_path,
            fix="write plan.json." if run_id is None else "write it with write_run_plan().",
        )
    plan = FederationPlan.model_validate_json(plan_path.read_text(encoding="utf-8"))
    if run_id is not None and plan.run_id != run_id:
        raise FederationError(
            f"the plan in runs/{run_id}/ is for run {plan.run_id!r}.", file=plan_path
        )
    members = plan.members(roster.partners)
    params = load_consortium_parameters(odir / "consortium.json")
    return OperatorContext(
        odir,
        identity,
        roster,
        plan,
        ExchangeStore(exchange_url),
        Ledger(odir / LEDGER_FILE, roster=roster),
        params.parameter_hash(),
        rdir,
        members,
    )


@dataclass
class TrainingResult:
    """What :func:`run_training` did."""

    rounds: int
    stop_reason: str
    final_trunk_sha256: str
    history: list[dict[str, object]]
    wall_seconds: float
    dropped: dict[int, list[str]]
    utility_reports: dict[str, PartnerUtilityReport] = field(default_factory=dict)
    utility_report_hashes: dict[str, str] = field(default_factory=dict)


def _round_id(plan: FederationPlan, index: int, attempt: int, final: bool = False) -> str:
    return format_round_id(plan.run_id, index, attempt, final)


def _fresh_attempt(ctx: OperatorContext, index: int, final: bool) -> tuple[int, str]:
    """The first attempt number whose round id was never used in the store."""
    for attempt in range(10_000):
        rid = _round_id(ctx.plan, index, attempt, final)
        if not ctx.store.keys(rid, "train_spec", BROADCAST):
            return attempt, rid
    raise FederationError(f"no fresh round id left for round {index}.")  # pragma: no cover


def _publish_round(
    ctx: OperatorContext,
    trunk_bytes: bytes,
    index: int,
    attempt: int,
    round_id: str,
    *,
    previous_completed: bool,
    final: bool = False,
) -> TrainSpec:
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
    )
    publish(ctx.store, ctx.identity, round_id=round_id, kind="global_trunk", payload=trunk_bytes)
    publish(
        ctx.store,
        ctx.identity,
        round_id=round_id,
        kind="train_spec",
        payload=spec.model_dump_json().encode(),
    )
    return spec


def _drive_secagg(
    server: SecAggServer, launcher: Launcher, timeout_s: float, poll_s: float
) -> None:
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


def _ledger(ctx: OperatorContext, event: LedgerEvent, payload: dict[str, object]) -> None:
    ctx.ledger.append(ctx.identity.id, ctx.identity, event, payload)


def run_training(
    operator_dir: str | Path,
    exchange_url: str,
    launcher: Launcher,
    *,
    resume: bool = False,
    rounds: int | None = None,
    poll_s: float = 0.2,
    on_round: Callable[[dict[str, object]], None] | None = None,
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
        How partner rounds are started.
    resume
        Continue from ``state/checkpoint.json``; without it an existing checkpoint is an error.
    rounds
        Override the plan's round budget.
    run_id
        A run other than the main one (its plan in ``runs/<run_id>/``, see
        :func:`write_run_plan`); only the plan's participants take part.
    """
    t_start = time.perf_counter()
    ctx = load_operator(operator_dir, exchange_url, run_id)
    plan = ctx.plan.model_copy(update={"rounds": rounds}) if rounds else ctx.plan
    state_dir = ctx.run_dir / STATE_DIR
    state = TrainingState.load(state_dir)
    if state is not None and not resume:
        raise FederationError(
            "this operator folder already holds a training run.",
            file=state_dir / "checkpoint.json",
            fix="pass --resume to continue it, or use a fresh operator folder.",
        )
    if resume and ctx.ledger.path.exists():
        ctx.ledger.recover()
    optimizer = make_server_optimizer(plan.server_optimizer)
    if state is None:
        init = ctx.operator_dir / INITIAL_TRUNK_FILE
        if not init.is_file():
            raise FederationError(
                "no initial trunk.",
                file=init,
                fix="create it with `pharmafl federation init-trunk PLAN --out FILE` on a "
                "partner-side machine (it needs torch) and copy it here.",
            )
        state = TrainingState(trunk=trunk_from_bytes(init.read_bytes()))
        trunk_bytes = trunk_to_bytes(state.trunk)
        _ledger(
            ctx,
            LedgerEvent.TRAINING_STARTED,
            {
                "run_id": plan.run_id,
                "code_version": __version__,
                "consortium_hash": ctx.consortium_hash,
                "parameters": json.loads(plan.model_dump_json()),
                "initial_trunk_hash": sha256_bytes(trunk_bytes),
                "participants": list(ctx.members),
                "secure_aggregation": True,
            },
        )
        state.save(state_dir)
    else:
        optimizer.load_state_dict(state.optimizer)
        trunk_bytes = trunk_to_bytes(state.trunk)
        log.info("resuming run %s at round %d", plan.run_id, state.next_round)
    # trunk_bytes always holds the serialized current global trunk: each 100+ MB trunk is
    # serialized once per round (published, hashed and written at the end from these bytes).
    layout = TrunkLayout.of(state.trunk)
    dropped: dict[int, list[str]] = {}

    while not state.finished and state.next_round < plan.rounds:
        index = state.next_round
        for _ in range(plan.max_round_attempts):
            attempt, round_id = _fresh_attempt(ctx, index, final=False)
            spec = _publish_round(
                ctx, trunk_bytes, index, attempt, round_id, previous_completed=index > 0
            )
            _ledger(
                ctx,
                LedgerEvent.ROUND_STARTED,
                {
                    "run_id": plan.run_id,
                    "round": index,
                    "global_trunk_hash": spec.global_trunk_sha256,
                    "participants": list(spec.participants),
                    "round_spec_hash": sha256_bytes(spec.model_dump_json().encode()),
                },
            )
            for p in spec.participants:
                launcher.start(p, round_id, final=False)
            server = SecAggServer(
                ctx.identity,
                ctx.roster,
                ctx.store,
                round_id,
                vector_length=layout.size,
                partners=ctx.members,
                threshold=plan.threshold,
                quantization=plan.quantization,
            )
            try:
                _drive_secagg(server, launcher, plan.stage_timeout_s, poll_s)
            except SecureAggregationError as exc:
                failures = launcher.finish(plan.stage_timeout_s)
                _ledger(
                    ctx,
                    LedgerEvent.ROUND_ABORTED,
                    {
                        "run_id": plan.run_id,
                        "round": index,
                        "reason": exc.message[:500],
                        "survivors": sorted(set(spec.participants) - set(failures)),
                    },
                )
                log.warning("round %d attempt %d aborted: %s", index, attempt, exc.message)
                continue
            failures = launcher.finish(plan.stage_timeout_s)
            break
        else:
            raise FederationError(
                f"round {index} aborted {plan.max_round_attempts} times.",
                fix="bring enough partners back (at least t) and run `pharmafl train --resume`.",
            )
        result = server.result
        assert result is not None
        for env_key in sorted(server.store.keys(round_id, "masked", ctx.identity.id)):
            env = server.store.get(env_key)
            if env.sender in result.report.survivors:
                _ledger(
                    ctx,
                    LedgerEvent.UPDATE_SUBMITTED,
                    {
                        "run_id": plan.run_id,
                        "round": index,
                        "partner": env.sender,
                        "envelope_hash": sha256_bytes(env.to_bytes()),
                        "n_bytes": len(env.payload),
                    },
                )
        for partner in result.dropped:
            # Only the error's kind reaches the ledger every partner reads: exception texts can
            # hold a partner's file paths. The full text stays in the operator's local log.
            detail = failures.get(partner)
            if detail:
                log.warning("partner %s dropped in round %d: %s", partner, index, detail)
            reason = (
                detail.split(":", 1)[0].strip()[:100]
                if detail
                else "did not complete the secure-aggregation stages"
            )
            _ledger(
                ctx,
                LedgerEvent.PARTNER_DROPPED,
                {"run_id": plan.run_id, "round": index, "partner": partner, "reason": reason[:500]},
            )
        dropped[index] = list(result.dropped)
        old = flatten_trunk(state.trunk, layout)
        new = optimizer.step(old, result.mean).astype(np.float32)
        previous_hash = spec.global_trunk_sha256  # the trunk this round started from
        state.trunk = unflatten_trunk(new, layout)
        trunk_bytes = trunk_to_bytes(state.trunk)
        new_hash = sha256_bytes(trunk_bytes)
        _ledger(
            ctx,
            LedgerEvent.AGGREGATE_APPLIED,
            {
                "run_id": plan.run_id,
                "round": index,
                "trunk_hash": new_hash,
                "previous_trunk_hash": previous_hash,
                "contributors": sorted(result.report.survivors),
                "server_optimizer": plan.server_optimizer.name,
            },
        )
        reports = collect(
            ctx.store,
            ctx.roster,
            me=ctx.identity.id,
            round_id=round_id,
            kind="partner_report",
            senders=spec.participants,
            recipient=ctx.identity.id,
        )
        validation: dict[str, dict[str, float]] = {}
        for partner, env in sorted(reports.items()):
            rep = PartnerRoundReport.model_validate_json(env.payload)
            validation[partner] = rep.validation
            if rep.validation:
                _ledger(
                    ctx,
                    LedgerEvent.EVALUATION_REPORTED,
                    {
                        "run_id": plan.run_id,
                        "partner": partner,
                        "round": index,
                        "model": "federated",
                        "split": "valid",
                        "metrics": rep.validation,
                    },
                )
        auc_prs = [v["auc_pr"] for v in validation.values() if "auc_pr" in v]
        mean_auc_pr = float(np.mean(auc_prs)) if auc_prs else math.nan
        record: dict[str, object] = {
            "round": index,
            "round_id": round_id,
            "contributors": sorted(result.report.survivors),
            "dropped": list(result.dropped),
            "trunk_sha256": new_hash,
            "mean_validation_auc_pr": None if math.isnan(mean_auc_pr) else mean_auc_pr,
            "validation": validation,
        }
        state.history.append(record)
        state.observe(mean_auc_pr, plan.patience, index)
        if state.best_round == index:  # before the checkpoint that names it (crash-safe)
            atomic_write_bytes(state_dir / BEST_TRUNK_FILE, trunk_bytes)
        state.next_round = index + 1
        state.optimizer = optimizer.state_dict()
        state.save(state_dir)
        log.info("round %d done: mean validation AUC-PR %.4f", index, mean_auc_pr)
        if on_round is not None:
            on_round(record)

    if not state.stop_reason:
        state.stop_reason = "round budget"
    state.finished = True
    state.save(state_dir)
    final_round = state.next_round - 1
    best = state_dir / BEST_TRUNK_FILE
    if plan.final_trunk == "best" and state.best_round is not None and best.is_file():
        trunk_bytes, final_round = best.read_bytes(), state.best_round
    final_hash = sha256_bytes(trunk_bytes)
    attempt, round_id = _fresh_attempt(ctx, state.next_round, final=True)
    spec = _publish_round(
        ctx, trunk_bytes, state.next_round, attempt, round_id, previous_completed=True, final=True
    )
    for p in spec.participants:
        launcher.start(p, round_id, final=True)
    failures = launcher.finish(plan.stage_timeout_s * 2)
    for partner, reason in failures.items():
        log.warning("final evaluation failed at %s: %s", partner, reason)
    gains, gain_hashes = _utility_reports(ctx, spec) if spec.report_test_gain else ({}, {})
    _ledger(
        ctx,
        LedgerEvent.TRAINING_FINISHED,
        {
            "run_id": plan.run_id,
            "rounds": state.next_round,
            "final_trunk_hash": final_hash,
            "final_trunk_round": max(final_round, 0),
            "reason": state.stop_reason,
        },
    )
    atomic_write_bytes(ctx.run_dir / FINAL_TRUNK_FILE, trunk_bytes)
    return TrainingResult(
        rounds=state.next_round,
        stop_reason=state.stop_reason,
        final_trunk_sha256=final_hash,
        history=state.history,
        wall_seconds=time.perf_counter() - t_start,
        dropped=dropped,
        utility_reports=gains,
        utility_report_hashes=gain_hashes,
    )


def _utility_reports(
    ctx: OperatorContext, spec: TrainSpec
) -> tuple[dict[str, PartnerUtilityReport], dict[str, str]]:
    """The participants' signed one-scalar reports of a final evaluation (and their hashes)."""
    envs = collect(
        ctx.store,
        ctx.roster,
        me=ctx.identity.id,
        round_id=spec.round_id,
        kind="partner_report",
        senders=spec.participants,
        recipient=ctx.identity.id,
    )
    reports: dict[str, PartnerUtilityReport] = {}
    hashes: dict[str, str] = {}
    for partner, env in sorted(envs.items()):
        try:
            rep = PartnerUtilityReport.model_validate_json(env.payload)
        except ValueError:
            log.warning("ignoring a malformed utility report from %s", partner)
            continue
        if rep.partner != partner or rep.run_id != spec.run_id:
            log.warning("ignoring a utility report from %s for another partner or run", partner)
            continue
        reports[partner] = rep
        hashes[partner] = sha256_bytes(env.to_bytes())
    return reports, hashes


__all__ = [
    "INITIAL_TRUNK_FILE",
    "LEDGER_FILE",
    "Launcher",
    "OperatorContext",
    "PLAN_FILE",
    "TrainingResult",
    "TrainingState",
    "load_operator",
    "run_training",
]
