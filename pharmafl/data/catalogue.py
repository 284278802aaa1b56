"""The task catalogue: one entry per matrix column, for the partner's own use.

The catalogue is **local-only** (it says which assays a partner runs), but it is a pydantic
model with a committed JSON Schema (``schemas/task_catalogue.schema.json``) so the model
engineer, the evaluation code and the partner's own tools read one documented shape.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

ThresholdMethod = Literal[
    "expert", "fixed_adaptive", "median", "quartile", "aux_low", "aux_high", "fixed"
]


class TaskInfo(BaseModel):
    """One task = one column of ``cls_T10_y.npz`` or ``reg_T10_y.npz``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["classification", "regression"] = Field(description="Which Y matrix.")
    task_id: int = Field(ge=0, description="Column index in that Y matrix (continuous id).")
    input_assay_id: int = Field(description="The partner's assay id (private).")
    assay_type: str = Field(description="Assay type after catalogue demotion.")
    threshold: float | None = Field(None, description="Classification threshold.")
    threshold_method: ThresholdMethod | None = Field(None, description="How it was chosen.")
    direction: Literal["high", "low"] | None = Field(None, description="Which side is active.")
    is_auxiliary: bool = Field(description="Auxiliary task (sandwich or AUX_HTS).")
    training_weight: float = Field(ge=0, description="Loss weight (divided per assay).")
    aggregation_weight: float = Field(ge=0, le=1, description="1 if counted in metrics.")
    censored_weight: float | None = Field(
        None, ge=0, le=1, description="Regression: weight of censored values."
    )
    evaluation_quorum_ok: bool = Field(description="Passes the per-fold evaluation quorum.")
    num_total: int = Field(ge=0, description="Labels or values in the matrix.")
    num_fold_min: int = Field(ge=0, description="Smallest count over folds.")
    num_actives: int | None = Field(None, ge=0, description="Classification: actives.")
    num_inactives: int | None = Field(None, ge=0, description="Classification: inactives.")
    num_uncensored: int | None = Field(None, ge=0, description="Regression: '=' values.")


class TaskCatalogue(BaseModel):
    """All tasks of a partner's prepared matrices, in column order per kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_classification_tasks: int = Field(ge=0)
    n_regression_tasks: int = Field(ge=0)
    tasks: list[TaskInfo] = Field(default_factory=list)

    @model_validator(mode="after")
    def _continuous_ids(self) -> TaskCatalogue:
        for kind, n in (
            ("classification", self.n_classification_tasks),
            ("regression", self.n_regression_tasks),
        ):
            ids = [t.task_id for t in self.tasks if t.kind == kind]
            if ids != list(range(n)):
                raise ValueError(f"{kind} task ids must be 0…{n - 1} in order")
        return self


def _opt_float(v: object) -> float | None:
    if v is None or v is pd.NA:
        return None
    f = float(v)  # type: ignore[arg-type]
    return None if math.isnan(f) else f


def catalogue_from_tables(t8c: pd.DataFrame, t8r: pd.DataFrame) -> TaskCatalogue:
    """Build the catalogue from T8c/T8r (trained tasks only, ordered by continuous id)."""
    tasks: list[TaskInfo] = []
    cls = t8c[t8c["cont_classification_task_id"].notna()].sort_values("cont_classification_task_id")
    for r in cls.to_dict("records"):
        act, ina = int(r["num_total_actives"]), int(r["num_total_inactives"])
        tasks.append(
            TaskInfo(
                kind="classification",
                task_id=int(r["cont_classification_task_id"]),
                input_assay_id=int(r["input_assay_id"]),
                assay_type=str(r["assay_type"]),
                threshold=_opt_float(r["threshold"]),
                threshold_method=r["threshold_method"],
                direction=r["direction"] if r["direction"] in ("high", "low") else None,
                is_auxiliary=bool(r["is_auxiliary"]),
                training_weight=float(r["weight"]),
                aggregation_weight=float(r["aggregation_weight"]),
                evaluation_quorum_ok=bool(r["evaluation_quorum_OK"]),
                num_total=act + ina,
                num_fold_min=int(min(r["num_fold_min_actives"], r["num_fold_min_inactives"])),
                num_actives=act,
                num_inactives=ina,
            )
        )
    reg = t8r[t8r["cont_regression_task_id"].notna()].sort_values("cont_regression_task_id")
    for r in reg.to_dict("records"):
        tasks.append(
            TaskInfo(
                kind="regression",
                task_id=int(r["cont_regression_task_id"]),
                input_assay_id=int(r["input_assay_id"]),
                assay_type=str(r["assay_type"]),
                direction=r["direction"] if r["direction"] in ("high", "low") else None,
                is_auxiliary=bool(r["is_auxiliary"]),
                training_weight=float(r["weight"]),
                aggregation_weight=float(r["aggregation_weight"]),
                censored_weight=float(np.clip(r["censored_weight"], 0.0, 1.0)),
                evaluation_quorum_ok=bool(r["evaluation_quorum_OK"]),
                num_total=int(r["num_total"]),
                num_fold_min=int(r["num_fold_min"]),
                num_uncensored=int(r["num_uncensored_total"]),
            )
        )
    return TaskCatalogue(n_classification_tasks=len(cls), n_regression_tasks=len(reg), tasks=tasks)


__all__ = ["TaskCatalogue", "TaskInfo", "ThresholdMethod", "catalogue_from_tables"]
