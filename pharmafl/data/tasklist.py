"""A partner's tasks with their data counts (``pharmafl tasks PARTNER_DIR``).

Read from ``prepared/``: every trained task (a column of the Y matrices) by its label and the
partner's own assay id, with its actives and inactives (classification) or values and
uncensored values (regression), in total and per fold, and whether it is scored; optionally
the candidate tasks that missed the training quorum (from T8c/T8r), with their totals. Local
only: it says which assays the partner runs.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import DataNotFoundError
from pharmafl.data.catalogue import TaskCatalogue, TaskInfo, TaskKind, load_catalogue, name_tasks
from pharmafl.layout import MANIFEST_FILE

_FILES = {
    "folds": "cls_T11_fold_vector.npy",
    "y_cls": "cls_T10_y.npz",
    "y_reg": "reg_T10_y.npz",
    "censor": "reg_T10_censor_y.npz",
}


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FoldCounts(_Doc):
    """Labels of one task in one fold."""

    fold: int = Field(ge=0)
    actives: int | None = Field(None, ge=0, description="Classification: +1 labels.")
    inactives: int | None = Field(None, ge=0, description="Classification: −1 labels.")
    values: int | None = Field(None, ge=0, description="Regression: values.")
    uncensored: int | None = Field(None, ge=0, description="Regression: '=' values.")


class TaskSummary(_Doc):
    """One task of the partner: its names, status and counts."""

    task: str = Field(description="The task's label (pharmafl.data.task_label).")
    assay_id: str = Field(description="The partner's own assay id.")
    kind: TaskKind
    task_id: int | None = Field(None, description="Column in its Y matrix; None: not trained.")
    threshold: float | None = None
    direction: Literal["high", "low"] | None = None
    assay_type: str
    trained: bool = Field(description="Passed the training quorum (a column of Y).")
    evaluated: bool = Field(description="Counted in metrics (evaluation quorum, not auxiliary).")
    actives: int | None = Field(None, ge=0)
    inactives: int | None = Field(None, ge=0)
    values: int | None = Field(None, ge=0)
    uncensored: int | None = Field(None, ge=0)
    per_fold: list[FoldCounts] = Field(default_factory=list, description="Trained tasks only.")
    note: str | None = Field(None, description="Why a task is not trained or not scored.")


class TaskList(_Doc):
    """``pharmafl tasks --json``: a partner's tasks with their data counts."""

    format: Literal["pharmafl.task_list/1"] = "pharmafl.task_list/1"
    prepared_dir: str
    nfolds: int = Field(ge=1)
    n_trained: int = Field(ge=0)
    n_candidates_untrained: int = Field(ge=0, description="Tasks below the training quorum.")
    tasks: list[TaskSummary]


def _load(path: Path, what: str) -> sp.csr_matrix:
    if not path.is_file():
        raise DataNotFoundError(
            f"{what} not found.", file=path, fix="run `pharmafl prepare PARTNER_DIR` first."
        )
    return sp.csr_matrix(sp.load_npz(path))


def _fold_table(y: sp.csr_matrix, folds: np.ndarray, keep: np.ndarray, nfolds: int) -> np.ndarray:
    """Count of stored entries where ``keep`` per (task, fold): shape (n_tasks, nfolds)."""
    coo = y.tocoo()
    cell = coo.col[keep].astype(np.int64) * nfolds + folds[coo.row[keep]]
    counts = np.bincount(cell, minlength=y.shape[1] * nfolds)
    return counts.reshape(y.shape[1], nfolds)


def _note(t: TaskInfo) -> str | None:
    if t.is_auxiliary:
        return "auxiliary task: helps training, not scored"
    if not t.evaluation_quorum_ok:
        what = "actives or inactives" if t.kind == "classification" else "values"
        return (
            f"not scored: a fold has only {t.num_fold_min} {what} (the evaluation quorum needs "
            "more in every fold)"
        )
    return None


def _trained(cat: TaskCatalogue, prepared: Path, nfolds: int) -> list[TaskSummary]:
    folds = np.load(prepared / _FILES["folds"], allow_pickle=False).astype(np.int64)
    y_cls = _load(prepared / _FILES["y_cls"], "classification labels")
    y_reg = _load(prepared / _FILES["y_reg"], "regression values")
    censor = _load(prepared / _FILES["censor"], "censor flags")
    act = _fold_table(y_cls, folds, y_cls.tocoo().data > 0, nfolds)
    ina = _fold_table(y_cls, folds, y_cls.tocoo().data < 0, nfolds)
    val = _fold_table(y_reg, folds, np.ones(y_reg.nnz, dtype=bool), nfolds)
    unc = _fold_table(censor, folds, censor.tocoo().data == 0, nfolds)
    out = []
    for t in cat.tasks:
        j = t.task_id
        if t.kind == "classification":
            per = [
                FoldCounts(fold=f, actives=act[j, f], inactives=ina[j, f]) for f in range(nfolds)
            ]
            counts = {"actives": int(act[j].sum()), "inactives": int(ina[j].sum())}
        else:
            per = [
                FoldCounts(fold=f, values=val[j, f], uncensored=unc[j, f]) for f in range(nfolds)
            ]
            counts = {"values": int(val[j].sum()), "uncensored": int(unc[j].sum())}
        out.append(
            TaskSummary(
                task=t.label, assay_id=t.assay_id, kind=t.kind, task_id=j,
                threshold=t.threshold, direction=t.direction, assay_type=t.assay_type,
                trained=True, evaluated=t.aggregation_weight > 0, per_fold=per,
                note=_note(t), **counts,
            )
        )  # fmt: skip
    return out


def _read_t8(prepared: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(prepared / name, dtype={"assay_id": str, "task": str})


def _untrained(prepared: Path, taken: set[str]) -> list[TaskSummary]:
    t8c, t8r = _read_t8(prepared, "T8c.csv"), _read_t8(prepared, "T8r.csv")
    if "task" not in t8c.columns:  # prepared before the partner's ids were kept
        t8c, t8r = name_tasks(t8c, t8r, {})
    out = []
    for t8, kind, id_col in (
        (t8c, "classification", "cont_classification_task_id"),
        (t8r, "regression", "cont_regression_task_id"),
    ):
        for r in t8[t8[id_col].isna() & ~t8["task"].isin(taken)].to_dict("records"):
            cls = kind == "classification"
            counts = (
                {"actives": int(r["num_total_actives"]), "inactives": int(r["num_total_inactives"])}
                if cls
                else {"values": int(r["num_total"]), "uncensored": int(r["num_uncensored_total"])}
            )
            out.append(
                TaskSummary(
                    task=str(r["task"]), assay_id=str(r["assay_id"]), kind=kind,
                    threshold=float(r["threshold"]) if cls else None,
                    direction=r["direction"] if r["direction"] in ("high", "low") else None,
                    assay_type=str(r["assay_type"]), trained=False, evaluated=False,
                    note="below the training quorum of its assay type", **counts,
                )
            )  # fmt: skip
    return out


def _nfolds(prepared: Path, folds: np.ndarray) -> int:
    """The manifest's number of folds (an empty last fold still counts), else the data's."""
    manifest = prepared / MANIFEST_FILE
    if manifest.is_file():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return int(json.loads(manifest.read_text(encoding="utf-8"))["nfolds"])
    return int(folds.max()) + 1 if folds.size else 1


def task_list(prepared_dir: str | Path, *, untrained: bool = False) -> TaskList:
    """The tasks of a ``prepared/`` folder with their counts (module docstring).

    Parameters
    ----------
    prepared_dir
        ``PARTNER_DIR/prepared``.
    untrained
        Also list the candidate tasks that missed the training quorum.

    Raises
    ------
    DataNotFoundError
        The folder was not prepared.
    """
    prepared = Path(prepared_dir)
    cat = load_catalogue(prepared)
    folds_file = prepared / _FILES["folds"]
    if not folds_file.is_file():
        raise DataNotFoundError("fold vector not found.", file=folds_file)
    nfolds = _nfolds(prepared, np.load(folds_file, allow_pickle=False))
    tasks = _trained(cat, prepared, nfolds)
    rest = _untrained(prepared, {t.task for t in tasks})
    return TaskList(
        prepared_dir=str(prepared),
        nfolds=nfolds,
        n_trained=len(tasks),
        n_candidates_untrained=len(rest),
        tasks=tasks + (rest if untrained else []),
    )


def _counts_text(t: TaskSummary) -> tuple[str, str]:
    if t.kind == "classification":
        folds = " ".join(f"{f.actives}/{f.inactives}" for f in t.per_fold)
        return f"{t.actives}/{t.inactives}", folds
    folds = " ".join(f"{f.values}({f.uncensored})" for f in t.per_fold)
    return f"{t.values}({t.uncensored})", folds


def render_task_list(tl: TaskList) -> str:
    """The task list as a text table (counts: actives/inactives, or values(uncensored))."""
    width = max([len(t.task) for t in tl.tasks] + [4])
    lines = [
        f"{'task':<{width}}  {'assay_id':<16} {'trained':<7} {'scored':<6} {'total':>11}  "
        f"per fold 0…{tl.nfolds - 1}",
    ]
    for t in tl.tasks:
        total, folds = _counts_text(t)
        lines.append(
            f"{t.task:<{width}}  {t.assay_id:<16} {'yes' if t.trained else 'no':<7} "
            f"{'yes' if t.evaluated else 'no':<6} {total:>11}  {folds}"
            + (f"  ({t.note})" if t.note else "")
        )
    lines.append(
        f"{tl.n_trained} trained tasks; {tl.n_candidates_untrained} candidate tasks below the "
        "training quorum" + ("" if any(not t.trained for t in tl.tasks) else " (--all lists them)")
    )
    lines.append("counts: classification actives/inactives; regression values(uncensored)")
    return "\n".join(lines) + "\n"


__all__ = [
    "FoldCounts",
    "TaskList",
    "TaskSummary",
    "render_task_list",
    "task_list",
]
