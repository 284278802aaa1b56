"""The standard partner tables T0 (assays), T1 (activities) and T2 (structures).

These row models define the MELLODDY-TUNER year-3 input schema (Heyndrickx et al. /
MELLODDY consortium, TUNER 3.0.2 ``validate_T0/T1/T2``) as pydantic models, so that the JSON
Schemas in ``schemas/`` are generated from them. Ingestion validates whole tables with
vectorised pandas code (:mod:`pharmafl.ingest.validate`) that enforces the same rules; the
models are the single written-down definition and are used for sample rows and documents.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pharmafl.common.params import AssayType

#: T0 columns, in order (MELLODDY year 3, without the unused ``parent_assay_id``).
T0_COLUMNS: tuple[str, ...] = (
    "input_assay_id",
    "assay_type",
    "use_in_regression",
    "is_binary",
    "expert_threshold_1",
    "expert_threshold_2",
    "expert_threshold_3",
    "expert_threshold_4",
    "expert_threshold_5",
    "direction",
    "catalog_assay_id",
)
#: T1 columns, in order.
T1_COLUMNS: tuple[str, ...] = (
    "input_compound_id",
    "input_assay_id",
    "standard_qualifier",
    "standard_value",
)
#: T2 columns, in order.
T2_COLUMNS: tuple[str, ...] = ("input_compound_id", "smiles")

#: The expert-threshold column names.
EXPERT_THRESHOLD_COLUMNS: tuple[str, ...] = tuple(f"expert_threshold_{i}" for i in range(1, 6))

_INT64_MAX = 2**63 - 1


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class T0Assay(_Row):
    """One assay of a partner (T0): how its measurements become tasks."""

    input_assay_id: int = Field(ge=0, le=_INT64_MAX, description="Partner's own assay id.")
    assay_type: AssayType = Field(
        description="Drives credibility range, aggregation, thresholds, quorums, weights."
    )
    use_in_regression: bool = Field(description="Create a regression task for this assay.")
    is_binary: bool = Field(description="Readout is already binary: values are -1 or +1.")
    expert_threshold_1: float | None = Field(None, description="Expert classification threshold.")
    expert_threshold_2: float | None = Field(None, description="Expert classification threshold.")
    expert_threshold_3: float | None = Field(None, description="Expert classification threshold.")
    expert_threshold_4: float | None = Field(None, description="Expert classification threshold.")
    expert_threshold_5: float | None = Field(None, description="Expert classification threshold.")
    direction: Literal["high", "low"] | None = Field(
        None, description="Which side is active; unset means 'high' for dose-response."
    )
    catalog_assay_id: float | None = Field(
        None, description="Link to the consortium catalogue; only for CATALOG-PANEL assays."
    )

    @model_validator(mode="after")
    def _consistent(self) -> T0Assay:
        for name in EXPERT_THRESHOLD_COLUMNS:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number or empty")
        if self.catalog_assay_id is not None and self.assay_type != "CATALOG-PANEL":
            raise ValueError("catalog_assay_id is only allowed for CATALOG-PANEL assays")
        if self.catalog_assay_id is not None and not math.isfinite(self.catalog_assay_id):
            raise ValueError("catalog_assay_id must be a finite number or empty")
        return self


class T1Activity(_Row):
    """One measurement (T1). ``standard_value`` is a pXC50 for dose-response assays."""

    input_compound_id: int = Field(ge=0, le=_INT64_MAX, description="Compound id (in T2).")
    input_assay_id: int = Field(ge=0, le=_INT64_MAX, description="Assay id (in T0).")
    standard_qualifier: Literal["<", "=", ">"] = Field(
        description="Censoring of the value as stored (after unit conversion)."
    )
    standard_value: float = Field(
        description="pXC50 for dose-response, ±1 for binary assays, as given for ADME."
    )

    @model_validator(mode="after")
    def _finite(self) -> T1Activity:
        if not math.isfinite(self.standard_value):
            raise ValueError("standard_value must be finite")
        return self


class T2Structure(_Row):
    """One compound structure (T2)."""

    input_compound_id: int = Field(ge=0, le=_INT64_MAX, description="Unique compound id.")
    smiles: str = Field(min_length=1, description="Structure as SMILES (before standardization).")


SCHEMA_MODELS = {"t0_assay": T0Assay, "t1_activity": T1Activity, "t2_structure": T2Structure}

__all__ = [
    "EXPERT_THRESHOLD_COLUMNS",
    "SCHEMA_MODELS",
    "T0Assay",
    "T0_COLUMNS",
    "T1Activity",
    "T1_COLUMNS",
    "T2Structure",
    "T2_COLUMNS",
]
