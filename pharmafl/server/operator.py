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
Torch-free and RDKit-free.
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
from pharmafl.common.io import atomic_write_bytes, atomic_write_json, sha256_bytes
from pharmafl.common.params import load_consortium_parameters
from pharmafl.ledger import Ledger, LedgerEvent
from pharmafl.secure import (
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
from pharmafl.server.plan import FederationPlan, PartnerRoundReport, TrainSpec
from pharmafl.server.trunk import (
    TrunkLayout,
    flatten_trunk,
    trunk_from_bytes,
    trunk_to_bytes,
    unflatten_trunk,
)

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
INITIAL_TRUNK_FILE = "initial_trunk.npz"
STATE_DIR = "state"
LEDGER_FILE = "ledger.jsonl"


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
    """The operator's folder, identity, roster, plan, store and ledger."""

    operator_dir: Path
    identity: Identity
    roster: Roster
    plan: FederationPlan
    store: ExchangeStore
    ledger: Ledger
    consortium_hash: str


def load_operator(operator_dir: str | Path, exchange_url: str) -> OperatorContext:
    """Load ``identity/operator.key.json``, ``roster.json``, ``plan.json`` and the ledger."""
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
    plan_path = odir / PLAN_FILE
    if not plan_path.is_file():
        raise FederationError("no federation plan.", file=plan_path, fix="write plan.json.")
    plan = FederationPlan.model_validate_json(plan_path.read_text(encoding="utf-8"))
    params = load_consortium_parameters(odir / "consortium.json")
    return OperatorContext(
        odir,
        identity,
        roster,
        plan,
        ExchangeStore(exchange_url),
        Ledger(odir / LEDGER_FILE, roster=roster),
        params.parameter_hash(),
    )


@dataclass
class TrainingState:
    """Everything needed to continue a run (``state/checkpoint.json`` + ``.npz``)."""

    next_round: int = 0
    trunk: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    best_auc_pr: float = -math.inf
    rounds_without_improvement: int = 0
    history: list[dict[str, object]] = field(default_factory=list)
    finished: bool = False
    stop_reason: str = ""

    def save(self, state_dir: Path) -> None:
        """Write the checkpoint atomically (arrays first, then the JSON that names them)."""
        arrays = {f"trunk/{k}": v for k, v in self.trunk.items()}
        arrays |= {f"opt/{k}": v for k, v in self.optimizer.items()}
        import io

        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        name = f"checkpoint-{self.next_round:04d}.npz"
        atomic_write_bytes(state_dir / name, buf.getvalue())
        doc = {
            "next_round": self.next_round,
            "arrays": name,
            "best_auc_pr": None if math.isinf(self.best_auc_pr) else self.best_auc_pr,
            "rounds_without_improvement": self.rounds_without_improvement,
            "history": self.history,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
        }
        atomic_write_json(state_dir / "checkpoint.json", doc)
        for old in state_dir.glob("checkpoint-*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def observe(self, mean_auc_pr: float, patience: int) -> None:
        """Track early stopping after a round with this mean validation AUC-PR.

        A round in which no partner shared a validation score (NaN) says nothing about
        improvement and is not counted: without scores training runs to the round budget.
        """
        if math.isnan(mean_auc_pr):
            return
        if mean_auc_pr > self.best_auc_pr + 1e-6:
            self.best_auc_pr, self.rounds_without_improvement = mean_auc_pr, 0
        else:
            self.rounds_without_improvement += 1
        if self.rounds_without_improvement >= patience:
            self.finished, self.stop_reason = True, "early stopping"

    @classmethod
    def load(cls, state_dir: Path) -> TrainingState | None:
        """The last checkpoint, or None when there is none."""
        meta = state_dir / "checkpoint.json"
        if not meta.is_file():
            return None
        doc = json.loads(meta.read_text(encoding="utf-8"))
        with np.load(state_dir / doc["arrays"], allow_pickle=False) as z:
            trunk = {k[6:]: z[k] for k in z.files if k.startswith("trunk/")}
            opt = {k[4:]: z[k] for k in z.files if k.startswith("opt/")}
        best = doc["best_auc_pr"]
        return cls(
            next_round=int(doc["next_round"]),
            trunk=trunk,
            optimizer=opt,
            best_auc_pr=-math.inf if best is None else float(best),
            rounds_without_improvement=int(doc["rounds_without_improvement"]),
            history=list(doc["history"]),
            finished=bool(doc["finished"]),
            stop_reason=str(doc["stop_reason"]),
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


def _round_id(plan: FederationPlan, index: int, attempt: int, final: bool = False) -> str:
    if final:  # a final evaluation can be retried too (resume after a crash during it)
        return f"{plan.run_id}-r{index:04d}-final" + (f"-a{attempt}" if attempt else "")
    return f"{plan.run_id}-r{index:04d}-a{attempt}"


def _fresh_attempt(ctx: OperatorContext, index: int, final: bool) -> tuple[int, str]:
    """The first attempt number whose round id was never used in the store."""
    for attempt in range(10_000):
        rid = _round_id(ctx.plan, index, attempt, final)
        if not ctx.store.keys(rid, "train_spec", "consortium"):
            return attempt, rid
    raise FederationError(f"no fresh round id left for round {index}.")  # pragma: no cover


def _publish_round(
    ctx: OperatorContext,
    state: TrainingState,
    index: int,
    attempt: int,
    round_id: str,
    *,
    previous_completed: bool,
    final: bool = False,
) -> TrainSpec:
    trunk_bytes = trunk_to_bytes(state.trunk)
    spec = TrainSpec(
        run_id=ctx.plan.run_id,
        round_index=index,
        attempt=attempt,
        round_id=round_id,
        participants=ctx.roster.partners,
        global_trunk_sha256=sha256_bytes(trunk_bytes),
        trunk=ctx.plan.trunk,
        local=ctx.plan.local,
        seed=ctx.plan.seed,
        previous_round_completed=previous_completed,
        final=final,
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
    """
    t_start = time.perf_counter()
    ctx = load_operator(operator_dir, exchange_url)
    plan = ctx.plan.model_copy(update={"rounds": rounds}) if rounds else ctx.plan
    state_dir = ctx.operator_dir / STATE_DIR
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
        data = init.read_bytes()
        state = TrainingState(trunk=trunk_from_bytes(data))
        _ledger(
            ctx,
            LedgerEvent.TRAINING_STARTED,
            {
                "run_id": plan.run_id,
                "code_version": __version__,
                "consortium_hash": ctx.consortium_hash,
                "parameters": json.loads(plan.model_dump_json()),
                "initial_trunk_hash": sha256_bytes(trunk_to_bytes(state.trunk)),
                "participants": list(ctx.roster.partners),
                "secure_aggregation": True,
            },
        )
        state.save(state_dir)
    else:
        optimizer.load_state_dict(state.optimizer)
        log.info("resuming run %s at round %d", plan.run_id, state.next_round)
    layout = TrunkLayout.of(state.trunk)
    dropped: dict[int, list[str]] = {}

    while not state.finished and state.next_round < plan.rounds:
        index = state.next_round
        for _ in range(plan.max_round_attempts):
            attempt, round_id = _fresh_attempt(ctx, index, final=False)
            spec = _publish_round(
                ctx, state, index, attempt, round_id, previous_completed=index > 0
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
        previous_hash = sha256_bytes(trunk_to_bytes(state.trunk))
        state.trunk = unflatten_trunk(new, layout)
        new_hash = sha256_bytes(trunk_to_bytes(state.trunk))
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
        state.observe(mean_auc_pr, plan.patience)
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
    final_hash = sha256_bytes(trunk_to_bytes(state.trunk))
    attempt, round_id = _fresh_attempt(ctx, state.next_round, final=True)
    spec = _publish_round(
        ctx, state, state.next_round, attempt, round_id, previous_completed=True, final=True
    )
    for p in spec.participants:
        launcher.start(p, round_id, final=True)
    failures = launcher.finish(plan.stage_timeout_s * 2)
    for partner, reason in failures.items():
        log.warning("final evaluation failed at %s: %s", partner, reason)
    _ledger(
        ctx,
        LedgerEvent.TRAINING_FINISHED,
        {
            "run_id": plan.run_id,
            "rounds": state.next_round,
            "final_trunk_hash": final_hash,
            "reason": state.stop_reason,
        },
    )
    atomic_write_bytes(ctx.operator_dir / "final_trunk.npz", trunk_to_bytes(state.trunk))
    return TrainingResult(
        rounds=state.next_round,
        stop_reason=state.stop_reason,
        final_trunk_sha256=final_hash,
        history=state.history,
        wall_seconds=time.perf_counter() - t_start,
        dropped=dropped,
    )


__all__ = [
    "INITIAL_TRUNK_FILE",
    "LEDGER_FILE",
    "PLAN_FILE",
    "Launcher",
    "OperatorContext",
    "TrainingResult",
    "TrainingState",
    "load_operator",
    "run_training",
]
