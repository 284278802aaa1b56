"""The signed spec of one round, broadcast by the operator to every participant."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pharmafl.contract.heads import LedgerHead
from pharmafl.contract.plan import LocalTrainingSpec
from pharmafl.contract.runs import ROUND_ID_PATTERN, RUN_ID_PATTERN, format_round_id
from pharmafl.contract.trunk_config import TrunkConfig
from pharmafl.secure.identity import PARTY_ID_PATTERN


class TrainSpec(BaseModel):
    """The signed spec of one round, broadcast to every participant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(
        pattern=RUN_ID_PATTERN,
        description="The run (partners keep its state in models/runs/<run id>/).",
    )
    round_index: int = Field(ge=0)
    attempt: int = Field(ge=0)
    round_id: str = Field(
        pattern=ROUND_ID_PATTERN, description="Secure-aggregation round id of this attempt."
    )
    participants: tuple[Annotated[str, Field(pattern=PARTY_ID_PATTERN)], ...]
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
        "its test AUC-PR gain over its local-only model and that gain's standard error.",
    )
    ledger_head: LedgerHead = Field(
        description="The operator's ledger when it signed this spec: its commitment to the "
        "history so far, which every partner records and checks (pharmafl.contract.heads)."
    )

    @model_validator(mode="after")
    def _round_id_is_the_runs(self) -> TrainSpec:
        # Run and round ids reach paths and store keys at every partner: the round id must
        # be exactly the one this run, round, attempt and phase give.
        expected = format_round_id(self.run_id, self.round_index, self.attempt, self.final)
        if self.round_id != expected:
            raise ValueError(
                f"round_id {self.round_id!r} is not this spec's round (expected {expected!r})"
            )
        return self


__all__ = ["TrainSpec"]
