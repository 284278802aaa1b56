"""What the operator decides for a training run: the federation plan (``plan.json``), the
local training every partner does per round, and the server optimizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pharmafl.common.errors import FederationError
from pharmafl.contract.runs import MAIN_RUN_ID, RUN_ID_PATTERN
from pharmafl.contract.trunk_config import TrunkConfig
from pharmafl.secure.dp import DPConfig
from pharmafl.secure.quantize import QuantizationConfig

ServerOptimizerName = Literal["fedavg", "fedavgm", "fedadam", "fedyogi"]


class ServerOptimizerConfig(BaseModel):
    """Hyperparameters of the server optimizer (defaults: Reddi et al. 2021 / Flower)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ServerOptimizerName = Field("fedavg", description="Which server optimizer.")
    lr: float = Field(1.0, gt=0, le=100, description="Server learning rate (eta).")
    momentum: float = Field(0.9, ge=0, lt=1, description="FedAvgM momentum.")
    beta1: float = Field(0.9, ge=0, lt=1, description="FedAdam/FedYogi first moment decay.")
    beta2: float = Field(0.99, ge=0, lt=1, description="FedAdam/FedYogi second moment decay.")
    tau: float = Field(1e-3, gt=0, description="Adaptivity (epsilon) of FedAdam/FedYogi.")


class LocalTrainingSpec(BaseModel):
    """How each partner trains in one round (FedAvg local epochs, FedProx optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float = Field(1.0, gt=0, le=100, description="Local epochs per round.")
    learning_rate: float = Field(1e-3, gt=0, le=10, description="Partner optimizer lr.")
    batch_size: int | None = Field(
        None,
        ge=1,
        le=1 << 20,
        description="Fixed batch size (None: batch_ratio of the partner's training rows, as "
        "the local baseline, so a small partner takes as many steps per epoch as a large one).",
    )
    batch_ratio: float = Field(
        0.02, gt=0, le=1, description="Batch size as a fraction of training rows (SparseChem)."
    )
    min_steps: int = Field(
        10,
        ge=1,
        le=1_000_000,
        description="At least this many optimizer steps per round (a small partner's round "
        "is never a handful of steps).",
    )
    weight_decay: float = Field(0.0, ge=0)
    prox_mu: float = Field(0.0, ge=0, description="FedProx proximal term (0 = FedAvg).")
    keep_optimizer: bool = Field(
        False,
        description="Each partner keeps its local optimizer's state (Adam's moments) from "
        "round to round in its own run folder, instead of restarting it every round as the "
        "FedAvg/FedProx reference implementations do. Never sent; costs two trunk-sized "
        "arrays of disk per partner. `federation setup`, `consortium create` and the demo "
        "turn it on (the measured better recipe); a plan without the field keeps its meaning.",
    )
    head_finetune_epochs: int = Field(
        3,
        ge=0,
        le=100,
        description="After the last round: epochs training heads on the frozen "
        "global trunk (early-stopped on validation).",
    )
    weight_cap: int | None = Field(
        None,
        ge=100,
        le=1 << 40,
        description="Cap on a partner's FedAvg weight: it weighs its trunk update by "
        "min(training rows, weight_cap) instead of its training rows, so that no partner (a "
        "large public partner) dominates the trunk. None: FedAvg's row weights. Each round's "
        "public bound on a weight (quantization max_examples) is then the cap, so the "
        "operator refuses a masked input that declares more. A compressed ring (8/16 bits) "
        "weighs partners equally anyway.",
    )

    def fedavg_weight(self, training_rows: int) -> int:
        """The weight (example count) a partner with ``training_rows`` sends with its update."""
        if self.weight_cap is None:
            return training_rows
        return min(training_rows, self.weight_cap)


class FederationPlan(BaseModel):
    """The operator's plan for one federated training run (``operator/plan.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(MAIN_RUN_ID, pattern=RUN_ID_PATTERN)
    rounds: int = Field(10, ge=1, le=10_000, description="Round budget.")
    patience: int = Field(
        3,
        ge=1,
        le=10_000,
        description="Stop when mean validation AUC-PR has not improved for this many rounds.",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seeds every partner's local training.")
    trunk: TrunkConfig = Field(description="The shared trunk config every partner builds.")
    local: LocalTrainingSpec = Field(default_factory=LocalTrainingSpec)
    server_optimizer: ServerOptimizerConfig = Field(default_factory=ServerOptimizerConfig)
    threshold: int | None = Field(
        None, ge=2, description="Secure aggregation t (default: pharmafl.secure default_threshold)."
    )
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    dp: DPConfig | None = Field(
        None,
        description="Differential privacy of every round (distributed Gaussian noise before "
        "masking); None: no DP. The consortium's security policy may require it.",
    )
    stage_timeout_s: float = Field(600.0, gt=0, description="Per secure-aggregation stage.")
    max_round_attempts: int = Field(3, ge=1, le=100, description="Retries of an aborted round.")
    secure_aggregation: Literal[True] = Field(
        True, description="Always on: trunk updates only ever leave a partner masked."
    )
    participants: tuple[str, ...] | None = Field(
        None,
        description="Partners taking part (e.g. one coalition of a contribution study), "
        "sorted; None: every partner in the roster. At least 2 (secure aggregation needs 2; "
        "one partner alone is local training).",
    )
    final_trunk: Literal["best", "last"] = Field(
        "last",
        description="The global trunk partners fine-tune their heads on and evaluate after the "
        "last round: the last round's, or that of the round with the best mean validation "
        "AUC-PR the partners shared ('best': model selection on validation folds; test folds "
        "are never used). The shared score is that of each round's local models and plateaus "
        "early; on the demo consortium 'best' picked rounds 4-7 of 8-16 and gave less test "
        "AUC-PR gain than 'last' (+0.017-0.018 against +0.021).",
    )
    report_test_gain: bool = Field(
        False,
        description="At the final evaluation every participant reports the test AUC-PR of "
        "this run's model minus its local-only model's, and that gain's standard error over "
        "its tasks (contribution studies).",
    )

    @field_validator("participants")
    @classmethod
    def _sorted_participants(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return None
        if len(set(v)) != len(v):
            raise ValueError(f"participants must be unique, got {list(v)}")
        if len(v) < 2:
            raise ValueError(
                "a federated run needs at least 2 participants (one partner alone is local "
                "training, and secure aggregation needs 2)"
            )
        return tuple(sorted(v))

    @model_validator(mode="after")
    def _threshold_fits(self) -> FederationPlan:
        n = None if self.participants is None else len(self.participants)
        if n is not None and self.threshold is not None and self.threshold > n:
            raise ValueError(
                f"threshold {self.threshold} exceeds the {n} participants "
                "(leave it unset for the default of that many partners)"
            )
        problem = self.quantization.dp_violation(self.dp)
        if problem is not None:  # every round would be refused: say so before any starts
            raise ValueError(problem)
        return self

    def with_dp(self, dp: DPConfig | None) -> FederationPlan:
        """This plan with ``dp`` on every round, its quantization clip raised (when needed)
        to C + 6·noise std so that the noise is never clamped."""
        quantization = self.quantization
        if dp is not None and quantization.dp_violation(dp) is not None:
            need = quantization.dp_floor(dp)
            quantization = quantization.model_copy(update={"clip": float(f"{need:.3g}") * 1.01})
        doc = self.model_dump(mode="json")
        doc |= {
            "dp": None if dp is None else dp.model_dump(mode="json"),
            "quantization": quantization.model_dump(mode="json"),
        }
        return FederationPlan.model_validate(doc)

    def round_quantization(self) -> QuantizationConfig:
        """The encoding of every round: the plan's, with the public bound on one partner's
        weight (``max_examples``) lowered to the weight cap when there is one. Weights are then
        n_u / cap (finer steps on the 32-bit ring), and the operator refuses a masked input
        that declares more than the cap (a partner that weighs itself above it)."""
        cap, q = self.local.weight_cap, self.quantization
        if cap is None or cap >= q.max_examples:
            return q
        return q.model_copy(update={"max_examples": cap})

    def members(self, roster_partners: Sequence[str]) -> tuple[str, ...]:
        """The partners of this run (sorted), checked against the roster's partners.

        Raises
        ------
        FederationError
            A participant is not a partner of the roster, or the threshold exceeds the
            roster's partners.
        """
        partners = tuple(sorted(roster_partners))
        if self.participants is None:
            chosen = partners
        else:
            unknown = sorted(set(self.participants).difference(partners))
            if unknown:
                raise FederationError(
                    f"plan {self.run_id!r} names participant(s) {unknown} that are not "
                    f"partners of the roster ({', '.join(partners)}).",
                    fix="list only roster partners in the plan's participants.",
                )
            chosen = self.participants
        if self.threshold is not None and self.threshold > len(chosen):
            raise FederationError(
                f"plan {self.run_id!r}: threshold {self.threshold} exceeds its "
                f"{len(chosen)} participants.",
                fix="lower the threshold or leave it unset (default for that many partners).",
            )
        return chosen


__all__ = ["FederationPlan", "LocalTrainingSpec", "ServerOptimizerConfig", "ServerOptimizerName"]
