"""The document ``pharmafl evaluate`` writes (torch-free, so its schema loads anywhere)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.evaluation.newdata import NewDataScores
from pharmafl.partner.manifest import RejectionRow


class NewDataEvaluation(BaseModel):
    """What ``pharmafl evaluate`` writes: counts, every model's scores, the comparisons."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: Literal["pharmafl.new_data_evaluation/1"] = "pharmafl.new_data_evaluation/1"
    pharmafl_version: str
    partner: str
    created_at: datetime
    inputs: list[str] = Field(description="The files of new measurements.")
    excluded_training_overlap: bool = Field(
        description="Compounds identical (same descriptors) to a training row were left out."
    )
    counts: dict[str, int] = Field(description="Compounds and measurements at each step.")
    assays_without_task: dict[str, int] = Field(
        description="The partner's assay ids measured anew that no model has a task of, with "
        "their records."
    )
    scores: NewDataScores
    rejections: list[RejectionRow] = Field(default_factory=list)


__all__ = ["NewDataEvaluation"]
