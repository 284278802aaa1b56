"""Scores of a partner's models on newly measured compounds, and their differences.

The partner side (:mod:`pharmafl.partner.evaluate`) turns a file of new measurements into
label matrices on the partner's own tasks and into each model's predictions; this module
scores them, torch-free:

- per task and model: ROC-AUC and AUC-PR (classification), R², RMSE and RMSE on uncensored
  values (regression, censor-aware as SparseChem), for tasks with enough new labels
  (:class:`LabelQuorum`); a task with fewer says how many it has and needs, never ``nan``;
- per model: the mean over scored tasks (auxiliary tasks are listed, not averaged);
- per compared model (e.g. federated) against the baseline (local-only): the mean per-task
  difference with a 95 % bootstrap interval over tasks (:func:`benefit_summary`, with the
  paired DeLong test per task for classification) and over compounds
  (:func:`~pharmafl.evaluation.bootstrap.compound_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.evaluation.benefit import BenefitSummary, benefit_summary
from pharmafl.evaluation.bootstrap import COMPOUND_RESAMPLES, compound_bootstrap
from pharmafl.evaluation.significance import significant_improvement_share
from pharmafl.evaluation.tasks import TaskType, evaluate_tasks

#: Metrics reported per task and compared between models, per task type.
NEW_DATA_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "auc_pr"),
    "regression": ("r2", "rmse", "rmse_uncensored"),
}
#: Metrics compared between models (bootstrap intervals), per task type.
COMPARED_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "auc_pr"),
    "regression": ("r2", "rmse"),
}
TaskStatus = Literal["scored", "too_few_labels", "auxiliary"]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class LabelQuorum(_Doc):
    """How many new labels a task needs to be scored."""

    min_actives: int = Field(5, ge=1, description="Classification: actives at least.")
    min_inactives: int = Field(5, ge=1, description="Classification: inactives at least.")
    min_values: int = Field(10, ge=2, description="Regression: uncensored values at least.")


class TaskScores(_Doc):
    """One task with new labels: its counts, status and each model's scores."""

    task: str = Field(description="The task's label, e.g. 'CHEMBL123 >=6.5 (cls)'.")
    assay_id: str = Field(description="The partner's own assay id.")
    kind: Literal["classification", "regression"]
    threshold: float | None = None
    direction: Literal["high", "low"] | None = None
    n_actives: int | None = Field(None, ge=0)
    n_inactives: int | None = Field(None, ge=0)
    n_values: int | None = Field(None, ge=0)
    n_uncensored: int | None = Field(None, ge=0)
    status: TaskStatus
    note: str | None = Field(None, description="Why a task or a metric has no score.")
    scores: dict[str, dict[str, float | None]] = Field(
        default_factory=dict, description="Model name → metric → value (None: undefined)."
    )


class AggregateScores(_Doc):
    """A model's means over the scored tasks of one type."""

    n_tasks: int = Field(ge=0, description="Scored tasks.")
    means: dict[str, float | None]
    note: str | None = None


class ModelScores(_Doc):
    """One model: which, and its means."""

    name: str
    path: str
    head: str
    classification: AggregateScores | None = None
    regression: AggregateScores | None = None


class CompoundInterval(_Doc):
    """Compared − baseline on one metric, resampling compounds."""

    metric: str
    n_compounds: int = Field(ge=0, description="Compounds measured on the scored tasks.")
    n_tasks: int = Field(ge=0)
    mean_delta: float | None = Field(description="Mean over tasks of compared − baseline.")
    ci95: tuple[float, float] | None = Field(
        description="95 % percentile interval over compound resamples; None below 2 "
        "compounds or 2 tasks."
    )
    resamples: int = Field(ge=0)


class ModelComparison(_Doc):
    """Compared model − baseline on one task type, over tasks and over compounds."""

    task_type: Literal["classification", "regression"]
    baseline: str
    compared: str
    over_tasks: BenefitSummary
    over_compounds: list[CompoundInterval]
    note: str | None = None


class NewDataScores(_Doc):
    """Everything scored on the new measurements."""

    quorum: LabelQuorum
    n_rows: int = Field(ge=0, description="Compounds (descriptor vectors) with new labels.")
    tasks: list[TaskScores]
    models: list[ModelScores]
    comparisons: list[ModelComparison]


@dataclass(frozen=True)
class TaskRef:
    """What scoring needs to know of one task (one column of a label matrix)."""

    task: str
    assay_id: str
    kind: TaskType
    threshold: float | None = None
    direction: Literal["high", "low"] | None = None
    is_auxiliary: bool = False


@dataclass
class NewLabels:
    """New labels on the partner's tasks: rows are new compounds (descriptor vectors)."""

    y_cls: sp.csr_matrix
    y_reg: sp.csr_matrix
    censor: sp.csr_matrix
    cls_tasks: list[TaskRef]
    reg_tasks: list[TaskRef]


@dataclass
class ModelPredictions:
    """One model's predictions for every row and task of :class:`NewLabels`."""

    name: str
    path: str
    head: str
    cls: np.ndarray | None
    reg: np.ndarray | None


@dataclass
class _Kind:
    """One task type's labels, tasks, counts and status."""

    kind: TaskType
    y: sp.csr_matrix
    censor: sp.csr_matrix | None
    tasks: list[TaskRef]
    counts: dict[str, np.ndarray]
    status: list[TaskStatus]
    notes: list[str | None]

    @property
    def listed(self) -> np.ndarray:
        """Tasks with at least one new label."""
        return np.asarray(np.diff(self.y.tocsc().indptr) > 0)

    @property
    def weight(self) -> np.ndarray:
        return np.array([s == "scored" for s in self.status], dtype=np.float64)


def _counts(
    kind: TaskType, y: sp.csr_matrix, censor: sp.csr_matrix | None
) -> dict[str, np.ndarray]:
    coo = y.tocoo()
    n = y.shape[1]
    if kind == "classification":
        act = np.bincount(coo.col[coo.data > 0], minlength=n)
        return {"n_actives": act, "n_inactives": np.bincount(coo.col, minlength=n) - act}
    unc = np.bincount(coo.col, minlength=n)
    if censor is not None:
        c = censor.tocoo()
        unc = unc - np.bincount(c.col[c.data != 0], minlength=n)
    return {"n_values": np.bincount(coo.col, minlength=n), "n_uncensored": unc}


def _status(
    kind: TaskType, t: TaskRef, c: dict[str, int], q: LabelQuorum
) -> tuple[TaskStatus, str | None]:
    if kind == "classification":
        if c["n_actives"] < q.min_actives or c["n_inactives"] < q.min_inactives:
            return "too_few_labels", (
                f"not scored: {c['n_actives']} actives and {c['n_inactives']} inactives, needs "
                f"≥ {q.min_actives} and ≥ {q.min_inactives}"
            )
    elif c["n_uncensored"] < q.min_values:
        return "too_few_labels", (
            f"not scored: {c['n_uncensored']} uncensored values, needs ≥ {q.min_values}"
        )
    if t.is_auxiliary:
        return "auxiliary", "auxiliary task: scored, not in the means"
    return "scored", None


def _kind(kind: TaskType, labels: NewLabels, quorum: LabelQuorum) -> _Kind:
    cls = kind == "classification"
    y = labels.y_cls if cls else labels.y_reg
    censor = None if cls else labels.censor
    tasks = labels.cls_tasks if cls else labels.reg_tasks
    counts = _counts(kind, y, censor)
    status, notes = [], []
    for j, t in enumerate(tasks):
        s, note = _status(kind, t, {k: int(v[j]) for k, v in counts.items()}, quorum)
        status.append(s)
        notes.append(note)
    return _Kind(kind, y, censor, tasks, counts, status, notes)


def _per_task(k: _Kind, m: ModelPredictions) -> pd.DataFrame | None:
    pred = m.cls if k.kind == "classification" else m.reg
    if pred is None or k.y.shape[1] == 0:
        return None
    res = evaluate_tasks(k.y, pred, k.kind, aggregation_weight=k.weight, censor=k.censor)
    return res.per_task


def _aggregate(
    k: _Kind, per_task: pd.DataFrame | None, quorum: LabelQuorum
) -> AggregateScores | None:
    if per_task is None:
        return None
    names = NEW_DATA_METRICS[k.kind]
    scored = per_task[k.weight > 0]
    means = {m: _none(scored[m].mean()) if len(scored) else None for m in names}
    note = None
    if not len(scored):
        need = (
            f"≥ {quorum.min_actives} actives and ≥ {quorum.min_inactives} inactives"
            if k.kind == "classification"
            else f"≥ {quorum.min_values} uncensored values"
        )
        note = f"no {k.kind} task has enough new labels to be scored ({need})"
    return AggregateScores(n_tasks=len(scored), means=means, note=note)


def _none(v: object) -> float | None:
    f = float(v)  # type: ignore[arg-type]
    return f if np.isfinite(f) else None


def _task_docs(k: _Kind, tables: dict[str, pd.DataFrame]) -> list[TaskScores]:
    out = []
    for j in np.flatnonzero(k.listed):
        t = k.tasks[j]
        scores: dict[str, dict[str, float | None]] = {}
        if k.status[j] != "too_few_labels":
            scores = {
                name: {m: _none(table[m].iloc[j]) for m in NEW_DATA_METRICS[k.kind]}
                for name, table in tables.items()
            }
        undefined = sorted({m for s in scores.values() for m, v in s.items() if v is None})
        note = k.notes[j]
        if undefined:
            note = f"{', '.join(undefined)} undefined on these labels" + (
                f"; {note}" if note else ""
            )
        out.append(
            TaskScores(
                task=t.task, assay_id=t.assay_id, kind=k.kind, threshold=t.threshold,
                direction=t.direction, status=k.status[j], note=note, scores=scores,
                **{c: int(v[j]) for c, v in k.counts.items()},
            )
        )  # fmt: skip
    return out


#: Fewer scored tasks than this make the interval over tasks rough (said in a note).
FEW_TASKS = 5


def _few_tasks_note(n: int) -> str | None:
    if n < 2:
        return "fewer than 2 scored tasks: no interval"
    if n < FEW_TASKS:
        return f"only {n} scored tasks: the interval over tasks is rough"
    return None


def _compare(
    k: _Kind,
    base: ModelPredictions,
    other: ModelPredictions,
    tables: dict[str, pd.DataFrame],
    resamples: int,
    seed: int,
) -> ModelComparison | None:
    pa = base.cls if k.kind == "classification" else base.reg
    pb = other.cls if k.kind == "classification" else other.reg
    if pa is None or pb is None or base.name not in tables or other.name not in tables:
        return None
    metrics = COMPARED_METRICS[k.kind]
    sig = (
        significant_improvement_share(k.y, pa, pb, aggregation_weight=k.weight)
        if k.kind == "classification"
        else None
    )
    over_tasks = benefit_summary(
        tables[base.name], tables[other.name], k.kind, metrics=metrics, significance=sig,
        baseline=base.name, compared=other.name,
    )  # fmt: skip
    boot = compound_bootstrap(
        k.y, pa, pb, k.kind, metrics=metrics, use=k.weight > 0, censor=k.censor,
        resamples=resamples, seed=seed,
    )  # fmt: skip
    over_compounds = [
        CompoundInterval(
            metric=m, n_compounds=boot.n_compounds, n_tasks=boot.n_tasks,
            mean_delta=_none(boot.mean_delta[i]), ci95=boot.interval[i], resamples=boot.resamples,
        )
        for i, m in enumerate(metrics)
    ]  # fmt: skip
    note = _few_tasks_note(over_tasks.n_tasks)
    return ModelComparison(
        task_type=k.kind, baseline=base.name, compared=other.name,
        over_tasks=over_tasks, over_compounds=over_compounds, note=note,
    )  # fmt: skip


def score_new_data(
    labels: NewLabels,
    models: Sequence[ModelPredictions],
    *,
    quorum: LabelQuorum | None = None,
    baseline: str = "local",
    resamples: int = COMPOUND_RESAMPLES,
    seed: int = 0,
) -> NewDataScores:
    """Score every model on the new labels and compare each with ``baseline``.

    Parameters
    ----------
    labels : NewLabels
    models : sequence of ModelPredictions
        Predictions for every row and task of ``labels``.
    quorum : LabelQuorum, optional
        New labels a task needs to be scored (default :class:`LabelQuorum`).
    baseline : str
        Name of the model the others are compared with (no comparison when absent).
    resamples, seed
        Compound bootstrap resamples and seed.
    """
    q = quorum or LabelQuorum()
    kinds = [_kind(kind, labels, q) for kind in ("classification", "regression")]
    task_docs: list[TaskScores] = []
    aggregates: dict[str, dict[str, AggregateScores | None]] = {m.name: {} for m in models}
    comparisons: list[ModelComparison] = []
    base = next((m for m in models if m.name == baseline), None)
    for k in kinds:
        tables = {m.name: t for m in models if (t := _per_task(k, m)) is not None}
        for m in models:
            aggregates[m.name][k.kind] = _aggregate(k, tables.get(m.name), q)
        task_docs += _task_docs(k, tables)
        for other in models:
            if base is not None and other.name != base.name:
                c = _compare(k, base, other, tables, resamples, seed)
                comparisons += [c] if c is not None else []
    docs = [
        ModelScores(name=m.name, path=m.path, head=m.head, **aggregates[m.name])  # type: ignore[arg-type]
        for m in models
    ]
    rows = sp.hstack([labels.y_cls, labels.y_reg]).tocsr()
    return NewDataScores(
        quorum=q,
        n_rows=int(np.count_nonzero(np.diff(rows.indptr))),
        tasks=task_docs,
        models=docs,
        comparisons=comparisons,
    )


__all__ = [
    "AggregateScores",
    "COMPARED_METRICS",
    "CompoundInterval",
    "LabelQuorum",
    "ModelComparison",
    "ModelPredictions",
    "ModelScores",
    "NEW_DATA_METRICS",
    "NewDataScores",
    "NewLabels",
    "TaskRef",
    "TaskScores",
    "TaskStatus",
    "score_new_data",
]
