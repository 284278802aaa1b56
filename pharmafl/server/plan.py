"""What the operator decides: the federation plan, and the signed spec of each round."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.secure.quantize import QuantizationConfig
from pharmafl.server.optimizers import ServerOptimizerConfig


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

    run_id: str = Field("train", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
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


__all__ = ["FederationPlan", "LocalTrainingSpec", "PartnerRoundReport", "TrainSpec"]
