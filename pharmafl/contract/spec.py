"""The signed spec of one round, broadcast by the operator to every participant."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.contract.heads import LedgerHead
from pharmafl.contract.plan import LocalTrainingSpec
from pharmafl.contract.trunk_config import TrunkConfig


class TrainSpec(BaseModel):
    """The signed spec of one round, broadcast to every participant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    round_index: int = Field(ge=0)
    attempt: int = Field(ge=0)
    round_id: str = Field(description="Secure-aggregation round id of this attempt.")
    participants: tuple[str, ...]
    global_trunk_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    trunk: TrunkConfig
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
    ledger_head: LedgerHead = Field(
        description="The operator's ledger when it signed this spec: its commitment to the "
        "history so far, which every partner records and checks (pharmafl.contract.heads)."
    )


__all__ = ["TrainSpec"]
