"""A contribution study's coalitions: its settings, run ids, plans and study id.

Pure functions and models (no training here, see :mod:`pharmafl.accounting.study`): what
shapes a coalition's model enters the study id, and each coalition's run is the main plan
restricted to its members under the study's budget. Torch-free and RDKit-free.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.accounting.shapley import EXACT_MAX_PLAYERS
from pharmafl.accounting.utility import Coalition
from pharmafl.common.errors import AccountingError
from pharmafl.contract import FederationPlan
from pharmafl.secure.policy import SecurityPolicy

StudyMethod = Literal["auto", "exact", "permutation", "leave_one_out"]


class StudyConfig(BaseModel):
    """How a contribution study trains its coalitions and attributes the values.

    The training settings (``rounds``, ``local_epochs``, ``head_finetune_epochs``) apply to
    every coalition alike and override the main plan; everything else (trunk, learning rate,
    batch size, server optimizer, quantization, seed) is the main plan's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Federated rounds per coalition (a fixed budget, no early stopping). None: "
        "the main plan's budget and patience, so each coalition trains as the main run did and "
        "v(N) measures what the main run measured (an exact study trains 2^n − 1 coalitions; a "
        "smaller budget is cheaper, and biased).",
    )
    local_epochs: float | None = Field(
        None, gt=0, le=100, description="Local epochs per round (None: the main plan's)."
    )
    head_finetune_epochs: int | None = Field(
        None, ge=0, le=100, description="Head fine-tuning epochs at the end (None: main plan's)."
    )
    method: StudyMethod = Field(
        "auto",
        description="'auto' (exact for ≤ exact_max_players partners, else permutation), "
        "'exact', 'permutation' or 'leave_one_out' (LOO only, n + 1 coalitions).",
    )
    samples: int = Field(64, ge=2, le=100_000, description="Orderings sampled (permutation).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the intervals.")
    seed: int = Field(0, ge=0, description="Seed of permutation sampling.")
    exact_max_players: int = Field(
        EXACT_MAX_PLAYERS, ge=1, le=16, description="Largest consortium for exact Shapley."
    )
    prune: bool = Field(
        True,
        description="Once a coalition's utility is recorded, delete its envelopes from the "
        "exchange store and its trunk files at the operator (the ledger keeps every hash). "
        "Without it a study stores (rounds + 1) × (members + 1) trunks per coalition.",
    )
    stage_timeout_s: float | None = Field(
        None, gt=0, description="Per secure-aggregation stage (None: the main plan's)."
    )
    parallel: int = Field(
        1,
        ge=1,
        le=8,
        description="Coalitions trained at the same time (exact and leave-one-out, whose "
        "coalitions are known in advance; needs a launcher factory). Rounds mostly wait on "
        "I/O and the orchestrator, so 2 shortens a study even on 2 cores; memory grows with "
        "it (each member holds its model per coalition).",
    )

    def parameters(self) -> dict[str, object]:
        """The settings that shape the result (recorded on the ledger); operational ones
        (pruning, parallelism, timeouts) are left out."""
        return json.loads(self.model_dump_json(exclude={"prune", "parallel", "stage_timeout_s"}))

    def budget(self, plan: FederationPlan) -> tuple[int, int | None]:
        """Rounds and patience of every coalition: the study's fixed budget, or the main
        plan's."""
        return (plan.rounds, plan.patience) if self.rounds is None else (self.rounds, self.rounds)

    def training(self) -> dict[str, float | int | None]:
        """The settings that shape a coalition's model (they enter the study id)."""
        return {
            "rounds": self.rounds,
            "local_epochs": self.local_epochs,
            "head_finetune_epochs": self.head_finetune_epochs,
        }


@dataclass(frozen=True)
class CoalitionRun:
    """What one coalition's training gave (passed to ``on_coalition``)."""

    coalition: tuple[str, ...]
    run_id: str
    utility: float
    rounds: int
    wall_seconds: float


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (trunks are 100+ MB)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def study_id(
    players: Iterable[str],
    consortium_hash: str,
    initial_trunk_sha256: str,
    plan: FederationPlan,
    study: StudyConfig,
) -> str:
    """A short hash of everything that shapes the coalitions' models.

    Partners, consortium parameters, the initial trunk, the main plan's training settings
    (its run id aside; its round budget and patience as the coalitions get them,
    :meth:`StudyConfig.budget`) and the study's own (:meth:`StudyConfig.training`). The
    estimator and its seed are left out: changing them reuses the coalitions.
    """
    base = json.loads(plan.model_dump_json())
    for key in ("run_id", "rounds", "patience", "participants", "report_test_gain"):
        base.pop(key, None)
    base["budget"] = study.budget(plan)
    doc = {
        "players": sorted(players),
        "consortium_hash": consortium_hash,
        "initial_trunk": initial_trunk_sha256,
        "plan": base,
        "study": study.training(),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def coalition_run_id(sid: str, players: tuple[str, ...], coalition: Coalition) -> str:
    """``cs-<study id>-<mask>``: bit i of the hex mask is the i-th player (valuation group)
    in sorted order."""
    mask = sum(1 << i for i, p in enumerate(players) if p in coalition)
    return f"cs-{sid}-{mask:0{max(1, (len(players) + 3) // 4)}x}"


def coalition_plan(
    base: FederationPlan, study: StudyConfig, run_id: str, coalition: Coalition
) -> FederationPlan:
    """The main plan, restricted to the partners ``coalition`` under the study's training
    settings. The secure-aggregation threshold is left to the policy's for its size."""
    local = base.local.model_copy(
        update={
            k: v
            for k, v in (
                ("epochs", study.local_epochs),
                ("head_finetune_epochs", study.head_finetune_epochs),
            )
            if v is not None
        }
    )
    rounds, patience = study.budget(base)
    doc = json.loads(base.model_dump_json())
    doc.update(
        run_id=run_id,
        rounds=rounds,
        patience=patience,  # the same rule for every coalition
        participants=sorted(coalition),
        threshold=None,
        report_test_gain=True,
        local=json.loads(local.model_dump_json()),
    )
    if study.stage_timeout_s is not None:
        doc["stage_timeout_s"] = study.stage_timeout_s
    return FederationPlan.model_validate(doc)


def needed_coalitions(method: str, players: tuple[str, ...]) -> list[Coalition]:
    """Non-empty coalitions an estimator will ask for, when known in advance (exact: all of
    them; leave-one-out: N and every N ∖ {i}; permutation sampling: unknown, [])."""
    grand = frozenset(players)
    if method == "exact":
        out = [
            frozenset(c)
            for k in range(1, len(players) + 1)
            for c in itertools.combinations(players, k)
        ]
    elif method == "leave_one_out":
        out = [grand, *(grand - {p} for p in players)]
    else:
        return []
    return [c for c in out if c]


def group_label(members: Iterable[str]) -> str:
    """A valuation group's name in a study: its partners, sorted, joined by '+'."""
    return "+".join(sorted(members))


def study_groups(policy: SecurityPolicy) -> dict[str, tuple[str, ...]]:
    """The study's players: label → partners of each valuation group of the signed policy.

    Raises
    ------
    AccountingError
        The policy declares fewer than two groups: training coalitions of single partners
        would hand the operator and the other members S and S ∖ {i}, whose difference is
        i's update (docs/security.md), so there is nothing to value.
    """
    groups = policy.valuation_groups or ()
    if len(groups) < 2:
        raise AccountingError(
            f"the consortium's signed policy declares {len(groups)} valuation group(s); a "
            "contribution study values at least two. Coalitions of single partners would let "
            "the operator and the other members difference one partner's update out of two "
            "aggregates, so partners refuse them.",
            fix="sign a roster whose policy declares valuation groups of at least "
            f"{policy.min_group_size()} partners each (`pharmafl keys roster "
            "--valuation-group A,B,C --valuation-group D,E,F`); each partner's benefit over "
            "its local-only model is in the report without any study.",
        )
    return {group_label(g): tuple(g) for g in groups}


__all__ = [
    "CoalitionRun",
    "StudyConfig",
    "StudyMethod",
    "coalition_plan",
    "coalition_run_id",
    "file_sha256",
    "group_label",
    "needed_coalitions",
    "study_groups",
    "study_id",
]
