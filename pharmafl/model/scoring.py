"""Prediction with a trained model and evaluation of a fold with ``pharmafl.evaluation``.

Classification outputs are probabilities (sigmoid of the logits); regression outputs are in the
task's own units (the head's normalisation is inverted). MC-dropout (Gal & Ghahramani, ICML
2016) keeps dropout active and reports the mean and standard deviation over samples, as
SparseChem's ``predict.py --dropout 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pharmafl.data.catalogue import (
    CATALOGUE_FILE,
    TaskCatalogue,
    TaskInfo,
    TaskKind,
    load_catalogue,
)
from pharmafl.evaluation.documents import SplitMetrics, TaskTypeMetrics
from pharmafl.evaluation.tasks import EvaluationResult
from pharmafl.model.data import PreparedData
from pharmafl.model.dropout import seeded_randomness
from pharmafl.model.multitask import MultiTaskModel


@dataclass
class Predictions:
    """Predictions for ``n`` rows.

    Attributes
    ----------
    cls_prob : ndarray, (n, n_cls_tasks) float32, or None
    reg_value : ndarray, (n, n_reg_tasks) float32, or None
    cls_std, reg_std : ndarray or None
        MC-dropout standard deviations (when ``mc_samples > 0``).
    embeddings : ndarray, (n, trunk output size) float32, or None
    """

    cls_prob: np.ndarray | None
    reg_value: np.ndarray | None
    cls_std: np.ndarray | None = None
    reg_std: np.ndarray | None = None
    embeddings: np.ndarray | None = None


def _enable_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout) or type(m).__name__ == "AttentiveFP":
            m.train()


def predict_rows(
    model: MultiTaskModel,
    make_inputs: Callable[[np.ndarray], Any],
    rows: np.ndarray,
    *,
    head: str = "local",
    batch_size: int = 4000,
    mc_samples: int = 0,
    seed: int = 0,
    embeddings: bool = False,
) -> Predictions:
    """Predict ``rows`` in batches (no gradients; the model's mode is restored).

    Parameters
    ----------
    model : MultiTaskModel
    make_inputs : callable
        Rows → trunk input (a batcher from :mod:`pharmafl.model.batching`).
    rows : ndarray of int
    head : str
        Which head's tasks to predict.
    batch_size : int
    mc_samples : int
        0: deterministic (dropout off). > 0: that many MC-dropout passes.
    seed : int
        Seeds the MC-dropout masks.
    embeddings : bool
        Also return the trunk outputs (dropout off).
    """
    rows = np.asarray(rows, dtype=np.int64)
    h = model.head(head)
    was_training = model.training
    outs: dict[str, list[np.ndarray]] = {k: [] for k in ("cp", "rv", "cs", "rs", "emb")}
    try:
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                inputs = make_inputs(chunk)
                model.eval()
                if embeddings or mc_samples == 0:
                    z = model.embed(inputs)
                    if embeddings:
                        outs["emb"].append(z.numpy().astype(np.float32))
                if mc_samples == 0:
                    o = h(z)
                    if o.cls_logits is not None:
                        outs["cp"].append(torch.sigmoid(o.cls_logits).numpy())
                    if o.reg_values is not None:
                        outs["rv"].append(h.denormalize(o.reg_values).numpy())
                    continue
                _enable_dropout(model)
                samples_c, samples_r = [], []
                with seeded_randomness(model, seed * 1_000_003 + start):
                    for _ in range(mc_samples):
                        o = h(model.embed(inputs))
                        if o.cls_logits is not None:
                            samples_c.append(torch.sigmoid(o.cls_logits))
                        if o.reg_values is not None:
                            samples_r.append(h.denormalize(o.reg_values))
                if samples_c:
                    s = torch.stack(samples_c)
                    outs["cp"].append(s.mean(0).numpy())
                    outs["cs"].append(s.std(0, correction=0).numpy())
                if samples_r:
                    s = torch.stack(samples_r)
                    outs["rv"].append(s.mean(0).numpy())
                    outs["rs"].append(s.std(0, correction=0).numpy())
    finally:
        model.train(was_training)

    def cat(key: str, width: int) -> np.ndarray:
        if not outs[key]:
            return np.zeros((0, width), dtype=np.float32)
        return np.concatenate(outs[key]).astype(np.float32)

    nc, nr = h.n_cls_tasks, h.n_reg_tasks
    return Predictions(
        cls_prob=cat("cp", nc) if nc else None,
        reg_value=cat("rv", nr) if nr else None,
        cls_std=cat("cs", nc) if nc and mc_samples else None,
        reg_std=cat("rs", nr) if nr and mc_samples else None,
        embeddings=cat("emb", int(getattr(model.trunk, "output_size", 0))) if embeddings else None,
    )


def _catalogue(data: PreparedData) -> TaskCatalogue | None:
    """The prepared folder's task catalogue when it matches the data (read once per data)."""
    if "catalogue" not in data._extra:
        cat = None
        if data.source is not None and (data.source / CATALOGUE_FILE).is_file():
            cat = load_catalogue(data.source)
            if (cat.n_classification_tasks, cat.n_regression_tasks) != (
                data.n_cls_tasks,
                data.n_reg_tasks,
            ):
                cat = None
        data._extra["catalogue"] = cat
    out = data._extra["catalogue"]
    return out if isinstance(out, TaskCatalogue) else None


def _named(result: EvaluationResult, data: PreparedData, kind: TaskKind) -> TaskTypeMetrics:
    """Per-task rows led by the partner's names of the tasks (when the catalogue is known)."""
    doc = result.to_json()
    cat = _catalogue(data)
    tasks: list[TaskInfo] = cat.of_kind(kind) if cat is not None else []
    if tasks:
        doc["per_task"] = [
            {"task_id": rec["task_id"], "task": t.label, "assay_id": t.assay_id}
            | ({"threshold": t.threshold} if kind == "classification" else {})
            | rec
            for rec, t in zip(doc["per_task"], tasks, strict=True)
        ]
    return TaskTypeMetrics.model_validate(doc)


def evaluate_predictions(data: PreparedData, rows: np.ndarray, preds: Predictions) -> SplitMetrics:
    """Per-task and aggregated metrics of ``preds`` (for ``rows``) against ``data``'s labels.

    Uses :func:`pharmafl.evaluation.evaluate_tasks` with the tasks' ``aggregation_weight``
    (the evaluation quorum). Per-task rows carry the partner's task names (``task``,
    ``assay_id``, ``threshold``) when the data came with a matching task catalogue.
    """
    from pharmafl.evaluation import evaluate_tasks

    rows = np.asarray(rows, dtype=np.int64)
    cls = reg = None
    if preds.cls_prob is not None and data.n_cls_tasks:
        res = evaluate_tasks(
            data.y_cls[rows],
            preds.cls_prob,
            "classification",
            aggregation_weight=data.cls_weights["aggregation_weight"].to_numpy(np.float64),
        )
        cls = _named(res, data, "classification")
    if preds.reg_value is not None and data.n_reg_tasks:
        res = evaluate_tasks(
            data.y_reg[rows],
            preds.reg_value,
            "regression",
            aggregation_weight=data.reg_weights["aggregation_weight"].to_numpy(np.float64),
            censor=data.censor[rows],
        )
        reg = _named(res, data, "regression")
    folds = sorted({int(f) for f in np.unique(data.folds[rows])}) if len(rows) else []
    return SplitMetrics(folds=folds, n_rows=len(rows), classification=cls, regression=reg)


__all__ = ["Predictions", "evaluate_predictions", "predict_rows"]
