"""The task catalogue: one entry per matrix column, for the partner's own use.

The catalogue is **local-only** (it says which assays a partner runs), but it is a pydantic
model with a committed JSON Schema (``schemas/task_catalogue.schema.json``) so the model
engineer, the evaluation code and the partner's own tools read one documented shape.

Every task carries the partner's **own** assay id (``assay_id``, as in its exports) next to
MELLODDY's integer ``input_assay_id``, and a name (``label``) that every partner-facing
output uses for it (:func:`task_label`): ``<assay id> >=<threshold> (cls)`` for a
classification task whose active side is at or above the threshold, ``<=`` when low values
are active, and ``<assay id> (reg)`` for a regression task.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pharmafl.common.errors import DataNotFoundError, PreparationError

ThresholdMethod = Literal[
    "expert", "fixed_adaptive", "median", "quartile", "aux_low", "aux_high", "fixed"
]
TaskKind = Literal["classification", "regression"]
#: Suffix of a task's label per kind.
KIND_TAGS: dict[str, str] = {"classification": "cls", "regression": "reg"}
#: The file name of the catalogue in ``prepared/``.
CATALOGUE_FILE = "task_catalogue.json"


def task_label(
    assay_id: str,
    kind: TaskKind,
    threshold: float | None = None,
    direction: str | None = None,
    *,
    binary: bool = False,
) -> str:
    """The name of a task in every output a partner reads.

    ``CHEMBL123 >=6.5 (cls)``: classification, active at or above 6.5 (pXC50 for
    dose-response assays, the assay's own unit otherwise); ``<=`` when low values are active;
    ``CHEMBL123 (reg)``: the regression task; ``CHEMBL123 (cls)``: a binary assay's task (its
    ±1 readouts are the labels). Commas and quotes in an assay id are kept (CSV
    writers quote such names).
    """
    if kind == "regression" or threshold is None or binary:
        return f"{assay_id} ({KIND_TAGS[kind]})"
    side = "<=" if direction == "low" else ">="
    return f"{assay_id} {side}{threshold:g} ({KIND_TAGS[kind]})"


class TaskInfo(BaseModel):
    """One task = one column of ``cls_T10_y.npz`` or ``reg_T10_y.npz``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TaskKind = Field(description="Which Y matrix.")
    task_id: int = Field(ge=0, description="Column index in that Y matrix (continuous id).")
    input_assay_id: int = Field(
        description="MELLODDY's integer assay id (the partner's own id when all its assay "
        "ids are integers; else a number given by ingest)."
    )
    assay_id: str = Field(description="The partner's own assay id, as in its exports.")
    label: str = Field(description="The task's name in outputs (see task_label).")
    is_binary: bool = Field(False, description="Binary assay: the ±1 values are the labels.")
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

    @model_validator(mode="before")
    @classmethod
    def _default_names(cls, data: Any) -> Any:
        """Catalogues written before the partner's ids were kept: the integer id stands in."""
        if isinstance(data, dict) and "assay_id" not in data and "input_assay_id" in data:
            data = {**data, "assay_id": str(data["input_assay_id"])}
        if isinstance(data, dict) and "label" not in data and "assay_id" in data:
            label = task_label(
                data["assay_id"], data.get("kind", "classification"), data.get("threshold"),
                data.get("direction"), binary=bool(data.get("is_binary", False)),
            )  # fmt: skip
            data = {**data, "label": label}
        return data


class TaskCatalogue(BaseModel):
    """All tasks of a partner's prepared matrices, in column order per kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_classification_tasks: int = Field(ge=0)
    n_regression_tasks: int = Field(ge=0)
    partner_ids: bool = Field(
        False,
        description="The tasks carry the partner's own assay ids; false in catalogues written "
        "before they were kept (their assay_id is MELLODDY's integer).",
    )
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
        labels = [t.label for t in self.tasks]
        if len(set(labels)) != len(labels):
            raise ValueError("task labels must be unique")
        return self

    def of_kind(self, kind: TaskKind) -> list[TaskInfo]:
        """The tasks of one matrix, in column order."""
        return [t for t in self.tasks if t.kind == kind]

    def labels(self, kind: TaskKind) -> list[str]:
        """Column names of one matrix (the tasks' labels, in column order)."""
        return [t.label for t in self.of_kind(kind)]


def _opt_float(v: object) -> float | None:
    if v is None or v is pd.NA:
        return None
    f = float(v)  # type: ignore[arg-type]
    return None if math.isnan(f) else f


#: Columns :func:`name_tasks` adds to T8c/T8r (after TUNER's own).
NAME_COLUMNS = ("assay_id", "task_kind", "task")


def _labels(t8: pd.DataFrame, ids: pd.Series, kind: TaskKind) -> list[str]:
    none = pd.Series(None, index=t8.index, dtype=object)
    thresholds = t8["threshold"] if "threshold" in t8.columns else none
    binary = t8["is_binary"] if "is_binary" in t8.columns else none
    return [
        task_label(a, kind, _opt_float(t), d if d in ("high", "low") else None, binary=b is True)
        for a, t, d, b in zip(ids, thresholds, t8["direction"], binary, strict=True)
    ]


def name_tasks(
    t8c: pd.DataFrame, t8r: pd.DataFrame, assay_ids: Mapping[int, str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """T8c/T8r with the partner's own ids: ``assay_id``, ``task_kind`` and ``task`` (label).

    TUNER's columns (``input_assay_id`` and the rest) stay as they are, so MELLODDY tools
    still read the tables. A label that would repeat gets `` #<row>`` appended.

    Parameters
    ----------
    assay_ids
        ``input_assay_id`` → the partner's own id (ingest's ``assay_ids`` map); an id
        missing from it is written as the integer.
    """
    out = []
    for t8, kind in ((t8c, "classification"), (t8r, "regression")):
        named = t8.copy()
        ids = named["input_assay_id"].map(lambda i: assay_ids.get(int(i), str(int(i))))
        named["assay_id"] = ids.astype(object)
        named["task_kind"] = kind
        named["task"] = _labels(named, ids, kind)  # type: ignore[arg-type]
        out.append(named)
    seen: set[str] = set()
    for named in out:
        unique = []
        for i, label in enumerate(named["task"]):
            unique.append(label if label not in seen else f"{label} #{i}")
            seen.add(unique[-1])
        named["task"] = unique
    return out[0], out[1]


def _names(r: dict[str, Any]) -> dict[str, Any]:
    """The id and label fields of a T8 row (absent: the validator's defaults)."""
    if "assay_id" not in r or "task" not in r:
        return {}
    return {"assay_id": str(r["assay_id"]), "label": str(r["task"])}


def catalogue_from_tables(t8c: pd.DataFrame, t8r: pd.DataFrame) -> TaskCatalogue:
    """Build the catalogue from T8c/T8r (trained tasks only, ordered by continuous id).

    Names come from the tables' ``assay_id`` and ``task`` columns (:func:`name_tasks`) when
    present, else from the integer assay ids.
    """
    tasks: list[TaskInfo] = []
    cls = t8c[t8c["cont_classification_task_id"].notna()].sort_values("cont_classification_task_id")
    for r in cls.to_dict("records"):
        act, ina = int(r["num_total_actives"]), int(r["num_total_inactives"])
        tasks.append(
            TaskInfo(
                kind="classification",
                task_id=int(r["cont_classification_task_id"]),
                input_assay_id=int(r["input_assay_id"]),
                **_names(r),
                is_binary=bool(r.get("is_binary", False)),
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
                **_names(r),
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
    return TaskCatalogue(
        n_classification_tasks=len(cls),
        n_regression_tasks=len(reg),
        partner_ids=all(c in t8c.columns and c in t8r.columns for c in ("assay_id", "task")),
        tasks=tasks,
    )


def load_catalogue(prepared_dir: str | Path) -> TaskCatalogue:
    """Read ``prepared/task_catalogue.json``.

    Raises
    ------
    DataNotFoundError
        The folder has no catalogue.
    PreparationError
        The file is not a valid catalogue.
    """
    path = Path(prepared_dir) / CATALOGUE_FILE
    if not path.is_file():
        raise DataNotFoundError(
            "no task catalogue.", file=path, fix="run `pharmafl prepare PARTNER_DIR` first."
        )
    try:
        return TaskCatalogue.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PreparationError(
            f"invalid task catalogue ({where}: {first['msg']}).",
            file=path,
            fix="prepare again with this pharmafl version (`pharmafl prepare PARTNER_DIR`).",
        ) from None


__all__ = [
    "CATALOGUE_FILE",
    "KIND_TAGS",
    "NAME_COLUMNS",
    "TaskCatalogue",
    "TaskInfo",
    "TaskKind",
    "ThresholdMethod",
    "catalogue_from_tables",
    "load_catalogue",
    "name_tasks",
    "task_label",
]
