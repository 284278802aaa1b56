"""What the operator decides: the federation plan, and the signed spec of each round."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pharmafl.common.errors import FederationError
from pharmafl.secure.quantize import QuantizationConfig
from pharmafl.server.optimizers import ServerOptimizerConfig

#: Run id of the consortium's main training run (its files keep their historical places:
#: ``operator/plan.json``, ``operator/state/``, ``PARTNER_DIR/models/federated/``).
MAIN_RUN_ID = "train"
#: Allowed run ids (they start every round id of the run).
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class LocalTrainingSpec(BaseModel):
    """How each partner trains in one round (FedAvg local epochs, FedProx optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: float = Field(1.0, gt=0, le=100, description="Local epochs per round.")
    learning_rate: float = Field(1e-3, gt=0, le=10, description="Partner optimizer lr.")
    batch_size: int = Field(512, ge=1, le=1 << 20)
    weight_decay: float = Field(0.0, ge=0)
    prox_mu: float = Field(0.0, ge=0, description="FedProx proximal term (0 = FedAvg).")
    head_finetune_epochs: int = Field(
        3,
        ge=0,
        le=100,
        description="After the last round: epochs training heads on the frozen "
        "global trunk (early-stopped on validation).",
    )


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
    trunk: dict[str, Any] = Field(description="The shared trunk config (pharmafl.model).")
    local: LocalTrainingSpec = Field(default_factory=LocalTrainingSpec)
    server_optimizer: ServerOptimizerConfig = Field(default_factory=ServerOptimizerConfig)
    threshold: int | None = Field(
        None, ge=2, description="Secure aggregation t (default: pharmafl.secure default_threshold)."
    )
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
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
        description="At the final evaluation every participant reports one scalar: the test "
        "AUC-PR of this run's model minus its local-only model's (contribution studies).",
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
        return self

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


class TrainSpec(BaseModel):
    """The signed spec of one round, broadcast to every participant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    round_index: int = Field(ge=0)
    attempt: int = Field(ge=0)
    round_id: str = Field(description="Secure-aggregation round id of this attempt.")
    participants: tuple[str, ...]
    global_trunk_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    trunk: dict[str, Any]
    local: LocalTrainingSpec
    seed: int
    previous_round_completed: bool = Field(
        description="Whether round_index-1 was aggregated (partners then commit their heads)."
    )
    final: bool = Field(False, description="No training: partners fine-tune heads and evaluate.")
    report_test_gain: bool = Field(
        False,
        description="Final evaluation of a contribution-study run: every participant reports "
        "its test AUC-PR gain over its local-only model (one scalar).",
    )


class PartnerRoundReport(BaseModel):
    """What a partner chooses to share after a round: scalars only, no per-task numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str
    round_index: int = Field(ge=0)
    examples: int = Field(ge=0, description="Training rows this round (the FedAvg weight).")
    validation: dict[str, float] = Field(
        default_factory=dict, description="Mean validation metrics the partner shares."
    )
    compute_seconds: float = Field(ge=0)


class PartnerUtilityReport(BaseModel):
    """What a participant of a contribution-study run shares after its final evaluation:
    one scalar on its own tasks, nothing per task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str
    run_id: str = Field(pattern=RUN_ID_PATTERN)
    metric: Literal["auc_pr"] = Field("auc_pr", description="Mean over the partner's tasks.")
    split: Literal["test"] = "test"
    gain: float | None = Field(
        allow_inf_nan=False,
        description="This run's model minus the partner's local-only model on its test fold; "
        "None when the partner has no scorable test task (counted as no gain).",
    )


__all__ = [
    "FederationPlan",
    "LocalTrainingSpec",
    "MAIN_RUN_ID",
    "PartnerRoundReport",
    "PartnerUtilityReport",
    "RUN_ID_PATTERN",
    "TrainSpec",
]
