"""A training run's files: where its plan, checkpoint and final trunk live, and how a
finished run's bulky intermediates are pruned.

Runs are scoped by ``run_id``. The consortium's main run keeps ``operator/plan.json``,
``operator/state/`` and ``operator/final_trunk.npz``; every other run (one coalition of a
contribution study, say) lives in ``operator/runs/<run_id>/``. All runs share the roster, the
initial trunk, the exchange store and the ledger. Round ids start with the run id, so runs
never share a round. Torch-free and RDKit-free.
"""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import FederationError, PharmaFLError
from pharmafl.common.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from pharmafl.contract import FederationPlan, TrainSpec, format_round_id
from pharmafl.layout import CHECKPOINT_FILE, OperatorLayout
from pharmafl.secure import BROADCAST, AggregateResult, ExchangeStore, SecAggRoundReport
from pharmafl.secure.envelope import VECTOR_KINDS

log = logging.getLogger(__name__)


def run_dir(operator_dir: str | Path, run_id: str | None = None) -> Path:
    """Where a run's plan, state and final trunk live (``None``: the main run)."""
    return OperatorLayout(Path(operator_dir)).run_dir(run_id)


def write_run_plan(operator_dir: str | Path, plan: FederationPlan) -> Path:
    """Write ``operator/runs/<run_id>/plan.json`` for a run other than the main one.

    Rewriting the same plan is a no-op; a different plan for a run that already has state
    is refused (a run's parameters are fixed once it started).

    Raises
    ------
    FederationError
        The run id is the main run's, or the run already started with another plan.
    """
    layout = OperatorLayout(Path(operator_dir))
    if _main_run_id(layout) == plan.run_id:
        raise FederationError(
            f"run id {plan.run_id!r} is the main run's.", file=layout.plan, fix="pick another."
        )
    path = layout.run_plan(plan.run_id)
    text = plan.model_dump_json(indent=2) + "\n"
    if path.is_file():
        if path.read_text(encoding="utf-8") == text:
            return path
        if (layout.state_dir(plan.run_id) / CHECKPOINT_FILE).is_file():
            raise FederationError(
                f"run {plan.run_id!r} already started with another plan.",
                file=path,
                fix="use a new run id for new parameters.",
            )
    atomic_write_text(path, text)
    return path


def save_aggregate(state_dir: Path, spec: TrainSpec, result: AggregateResult) -> None:
    """Keep a round's decoded aggregate until its round is checkpointed.

    Written the moment secure aggregation completes, before anything else: partners refuse
    to contribute to a second attempt of a round they revealed shares in, so an operator that
    crashes after aggregating resumes from this file instead of retrying the round.
    """
    buf = io.BytesIO()
    np.savez(
        buf,
        mean=result.mean,
        spec=np.frombuffer(spec.model_dump_json().encode(), dtype=np.uint8),
        report=np.frombuffer(result.report.model_dump_json().encode(), dtype=np.uint8),
        max_examples=np.array(result.max_examples, dtype=np.int64),
    )
    atomic_write_bytes(state_dir / f"{_AGGREGATE}{spec.round_index:04d}.npz", buf.getvalue())


def load_aggregate(state_dir: Path, round_index: int) -> tuple[TrainSpec, AggregateResult] | None:
    """The aggregate :func:`save_aggregate` kept for ``round_index``, if any."""
    path = state_dir / f"{_AGGREGATE}{round_index:04d}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        spec = TrainSpec.model_validate_json(z["spec"].tobytes())
        report = SecAggRoundReport.model_validate_json(z["report"].tobytes())
        result = AggregateResult(z["mean"], report, int(z["max_examples"]))
    return spec, result


def drop_aggregates(state_dir: Path) -> None:
    """Remove the kept aggregates (their rounds are checkpointed)."""
    for old in state_dir.glob(f"{_AGGREGATE}*.npz"):
        old.unlink(missing_ok=True)


_AGGREGATE = "aggregate-"


def _main_run_id(layout: OperatorLayout) -> str | None:
    """The run id of the operator's main plan, None when there is none yet."""
    if not layout.plan.is_file():
        return None
    return FederationPlan.model_validate_json(layout.plan.read_text(encoding="utf-8")).run_id


class RoundResult(BaseModel):
    """What one completed round did (kept in the checkpoint, returned to the caller)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    round: int = Field(ge=0, description="Round index, 0-based.")
    round_id: str = Field(description="Secure-aggregation round id of the attempt that completed.")
    contributors: list[str] = Field(description="Partners whose updates are in the aggregate.")
    dropped: list[str] = Field(description="Partners that dropped out of that attempt.")
    dropout_causes: dict[str, str] = Field(
        default_factory=dict,
        description="Dropped partner → why (worker offline, run crashed, run failed, deadline, "
        "refused by policy…), as on the ledger.",
    )
    trunk_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="The new global trunk.")
    total_weight: int | None = Field(
        None,
        description="Σ of the contributors' FedAvg weights (their training rows, each capped "
        "at the plan's weight_cap): the one count secure aggregation reveals. None in "
        "checkpoints written before it was recorded.",
    )
    mean_validation_auc_pr: float | None = Field(
        description="Mean of the validation AUC-PRs partners shared (None: none shared)."
    )
    validation: dict[str, dict[str, float]] = Field(
        description="Partner → the validation scalars it shared."
    )


@dataclass
class TrainingState:
    """Everything needed to continue a run (``state/checkpoint.json`` + ``.npz``)."""

    next_round: int = 0
    trunk: dict[str, np.ndarray] = field(default_factory=dict)
    optimizer: dict[str, np.ndarray] = field(default_factory=dict)
    best_auc_pr: float = -math.inf
    best_round: int | None = None
    rounds_without_improvement: int = 0
    history: list[RoundResult] = field(default_factory=list)
    finished: bool = False
    stop_reason: str = ""
    #: A compressed ring's clip for the next round (set from the last decoded mean).
    clip: float | None = None

    def save(self, state_dir: Path) -> None:
        """Write the checkpoint atomically (arrays first, then the JSON that names them)."""
        arrays = {f"trunk/{k}": v for k, v in self.trunk.items()}
        arrays |= {f"opt/{k}": v for k, v in self.optimizer.items()}
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        name = f"checkpoint-{self.next_round:04d}.npz"
        atomic_write_bytes(state_dir / name, buf.getvalue())
        doc = {
            "next_round": self.next_round,
            "arrays": name,
            "best_auc_pr": None if math.isinf(self.best_auc_pr) else self.best_auc_pr,
            "best_round": self.best_round,
            "rounds_without_improvement": self.rounds_without_improvement,
            "history": [r.model_dump(mode="json") for r in self.history],
            "finished": self.finished,
            "stop_reason": self.stop_reason,
            "clip": self.clip,
        }
        atomic_write_json(state_dir / CHECKPOINT_FILE, doc)
        for old in state_dir.glob("checkpoint-*.npz"):
            if old.name != name:
                old.unlink(missing_ok=True)

    def observe(self, mean_auc_pr: float, patience: int, round_index: int | None = None) -> None:
        """Track early stopping (and the best round) after a round with this mean validation
        AUC-PR.

        A round in which no partner shared a validation score (NaN) says nothing about
        improvement and is not counted: without scores training runs to the round budget.
        """
        if math.isnan(mean_auc_pr):
            return
        if mean_auc_pr > self.best_auc_pr + 1e-6:
            self.best_auc_pr, self.rounds_without_improvement = mean_auc_pr, 0
            self.best_round = round_index
        else:
            self.rounds_without_improvement += 1
        if self.rounds_without_improvement >= patience:
            self.finished, self.stop_reason = True, "early stopping"

    @classmethod
    def load(cls, state_dir: Path) -> TrainingState | None:
        """The last checkpoint, or None when there is none."""
        meta = state_dir / CHECKPOINT_FILE
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
            best_round=doc.get("best_round"),
            rounds_without_improvement=int(doc["rounds_without_improvement"]),
            history=[RoundResult.model_validate(r) for r in doc["history"]],
            finished=bool(doc["finished"]),
            stop_reason=str(doc["stop_reason"]),
            clip=doc.get("clip"),
        )


def _attempts(store: ExchangeStore, run_id: str, index: int, final: bool) -> Iterator[str]:
    """The round ids of round ``index``'s attempts in ``store`` (numbered without gaps, see
    ``fresh_attempt``: the walk stops at the first attempt with no signed spec)."""
    for attempt in range(10_000):
        rid = format_round_id(run_id, index, attempt, final)
        if not store.keys(rid, "train_spec", BROADCAST):
            return
        yield rid


def run_round_ids(store: ExchangeStore, run_id: str) -> list[str]:
    """Every round id (attempts and final evaluations included) a run used in ``store``."""
    out: list[str] = []
    index = 0
    while True:
        found = [rid for final in (False, True) for rid in _attempts(store, run_id, index, final)]
        if not found:
            return out
        out.extend(found)
        index += 1


def release_vectors(store: ExchangeStore, run_id: str, index: int) -> int:
    """Delete the masked updates and global trunk of every attempt of round ``index``.

    Called once a later round is checkpointed: nothing reads them again (a resumed run starts
    from its checkpoint, partners from the next round's trunk), and the ledger keeps the hash
    of every envelope and trunk. The small signed envelopes (specs, keys, shares, survivor
    lists, reports) stay, so attempt numbering and ``run_round_ids`` still see the round.
    This keeps a run's store at about two rounds of trunks and updates, whatever its length.
    Best effort: a store that refuses deletes (write-once buckets, an operator without
    delete rights) keeps them, with one warning, and the run goes on. Returns the number of
    attempts released.
    """
    released = 0
    try:
        for rid in _attempts(store, run_id, index, final=False):
            store.purge(rid, VECTOR_KINDS)
            released += 1
    except PharmaFLError as exc:  # best effort: a store that refuses deletes keeps them
        log.warning("round %d's updates and trunk stay in the store: %s", index, exc.message)
    return released


def prune_run(operator_dir: str | Path, exchange_url: str, run_id: str) -> int:
    """Delete a finished run's bulky intermediates: its envelopes in the exchange store
    (global trunks and masked updates of every round), its checkpoint and final trunk.

    Its plan and every ledger entry (parameters, participants, the hash of every trunk and
    envelope deleted here) stay; running the same run id again starts it afresh. Returns the
    number of rounds purged.

    Raises
    ------
    FederationError
        For the main run, or a run that has not finished.
    """
    layout = OperatorLayout(Path(operator_dir))
    if _main_run_id(layout) == run_id:
        raise FederationError(f"{run_id!r} is the main run; it is never pruned.", file=layout.plan)
    meta = layout.state_dir(run_id) / CHECKPOINT_FILE
    if not meta.is_file() or not json.loads(meta.read_text(encoding="utf-8"))["finished"]:
        raise FederationError(f"run {run_id!r} has not finished; nothing pruned.", file=meta)
    store = ExchangeStore(exchange_url)
    rounds = run_round_ids(store, run_id)
    for rid in rounds:
        store.purge(rid)
    layout.final_trunk(run_id).unlink(missing_ok=True)
    shutil.rmtree(layout.state_dir(run_id))
    return len(rounds)


__all__ = [
    "RoundResult",
    "TrainingState",
    "drop_aggregates",
    "load_aggregate",
    "prune_run",
    "release_vectors",
    "run_dir",
    "run_round_ids",
    "save_aggregate",
    "write_run_plan",
]
