"""What a partner sends back to the operator: signed scalars, never per-task numbers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.contract.runs import RUN_ID_PATTERN
from pharmafl.secure.identity import PARTY_ID_PATTERN


class PartnerRoundReport(BaseModel):
    """What a partner chooses to share after a round: scalars only, no per-task numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str = Field(pattern=PARTY_ID_PATTERN)
    round_index: int = Field(ge=0)
    examples: int = Field(ge=0, description="Training rows this round (the FedAvg weight).")
    validation: dict[
        Annotated[str, Field(max_length=50)], Annotated[float, Field(allow_inf_nan=False)]
    ] = Field(
        default_factory=dict,
        max_length=20,
        description="Mean validation metrics the partner shares (finite numbers only: they go "
        "on the ledger).",
    )
    compute_seconds: float = Field(ge=0, allow_inf_nan=False)


#: Fewest paired test tasks behind a reported standard error: with two, the gain and its
#: error would give both per-task gains exactly (mean ± half the difference); below this a
#: partner reports its gain alone, and the study's values carry no evaluation interval.
GAIN_SE_MIN_TASKS = 5


class PartnerUtilityReport(BaseModel):
    """What a participant of a contribution-study run shares after its final evaluation:
    one gain on its own tasks and its standard error, nothing per task."""

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
    gain_se: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Standard error of the gain over the partner's test tasks (the spread of "
        "its per-task gains over √tasks; the study's intervals). None below "
        f"{GAIN_SE_MIN_TASKS} paired tasks, so that no per-task gain can be solved for.",
    )


__all__ = ["GAIN_SE_MIN_TASKS", "PartnerRoundReport", "PartnerUtilityReport"]
