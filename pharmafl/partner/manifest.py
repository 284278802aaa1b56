"""The preparation manifest and run report: what a partner's ``prepare`` produced.

The manifest may leave the partner (accounting reads its counts and hashes); it holds no
compound ids, SMILES, assay names or values. The run report stays local.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class OutputFile(BaseModel):
    """One file of ``prepared/`` with its size and hash."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class PrepareCounts(BaseModel):
    """Aggregate counts of one preparation run (no identifiers)."""

    model_config = ConfigDict(extra="forbid")

    compounds_input: int = Field(ge=0, description="Structures read from the exports.")
    compounds_standardized: int = Field(ge=0, description="Structures that passed RDKit.")
    compounds_rejected: int = Field(ge=0, description="Structures rejected (see run report).")
    measurements_input: int = Field(ge=0, description="Activity rows read (T1).")
    measurements_rejected: int = Field(ge=0, description="Activity rows rejected at ingest.")
    assays: int = Field(ge=0, description="Assays (T0 rows).")
    descriptor_vectors: int = Field(ge=0, description="Rows of X (deduplicated compounds).")
    classification_tasks: int = Field(ge=0)
    regression_tasks: int = Field(ge=0)
    classification_labels: int = Field(ge=0, description="Stored entries of cls_T10_y.")
    regression_values: int = Field(ge=0, description="Stored entries of reg_T10_y.")
    rows_per_fold: list[int] = Field(description="Rows of X in each fold.")


class PrepareManifest(BaseModel):
    """``prepared/manifest.json``: counts, hashes and versions — nothing private."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = Field(1, ge=1)
    pharmafl_version: str
    rdkit_version: str
    consortium_name: str
    partner_name: str
    created_at: datetime
    parameter_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    consistency_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    reference_hash_checked: bool = Field(
        description="True when the consortium published a reference hash and it matched."
    )
    fold_size: int = Field(ge=1, description="Number of X columns.")
    nfolds: int = Field(ge=2)
    counts: PrepareCounts
    files: dict[str, OutputFile]
    wall_seconds: float = Field(ge=0)


class StepReport(BaseModel):
    """Counts and timing of one pipeline step."""

    model_config = ConfigDict(extra="forbid")

    name: str
    seconds: float = Field(ge=0)
    counts: dict[str, int | float] = Field(default_factory=dict)


class RejectionRow(BaseModel):
    """One rejected input row: where it came from and why."""

    model_config = ConfigDict(extra="forbid")

    step: str
    file: str | None = None
    row: int | None = None
    input_compound_id: str | None = None
    input_assay_id: str | None = None
    reason: str
    message: str


class RunReport(BaseModel):
    """``prepared/run_report.json``: every step and every rejection. Local only."""

    model_config = ConfigDict(extra="forbid")

    manifest: PrepareManifest
    steps: list[StepReport]
    rejection_counts: dict[str, int] = Field(description="Rejections per step:reason.")
    rejections: list[RejectionRow]


__all__ = [
    "OutputFile",
    "PrepareCounts",
    "PrepareManifest",
    "RejectionRow",
    "RunReport",
    "StepReport",
]
