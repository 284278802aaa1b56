"""Strong local references: a random forest or gradient boosting per task, on the partner's
own descriptors, folds and tasks — what a chemist already runs in-house.

``pharmafl baseline --model rf|gbm`` trains one scikit-learn model per task on the training
folds (every fold but validation and test) and scores it exactly as the network is scored
(:func:`pharmafl.model.scoring.evaluate_predictions`: the same rows, the same evaluation
quorum, the same ``metrics.json``), so :func:`best_local_model` can pick the partner's best
local model on its validation fold and the benefit of joining is measured against it.

- Classification: the task's labelled training rows (+1/−1); a task whose training rows hold
  one class only predicts that class's training frequency.
- Regression: the task's training values, censored ones at their bound (trees have no
  censored loss); the evaluation itself is censor-aware, as for the network.
- Random forest: ``RandomForest*`` on the sparse folded ECFP (``rf``). Gradient boosting:
  scikit-learn's ``HistGradientBoosting*`` (``gbm``) on the bits set in at least
  ``min_bit_count`` of the task's training rows (dense; histogram GBMs need dense input).

The fitted models are pickled to ``model.joblib`` in the partner's own model folder: a pickle
runs code when loaded, so pharmafl loads it only from the partner's own folder, never from
anything another party sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.io import atomic_directory, atomic_write_json
from pharmafl.evaluation.documents import MetricsReport
from pharmafl.layout import MODELS_DIR, PartnerLayout
from pharmafl.model.data import PreparedData, load_prepared
from pharmafl.model.scoring import Predictions, evaluate_predictions

log = logging.getLogger(__name__)

TreeKind = Literal["rf", "gbm"]
#: Model folder names under ``models/``: the network's is ``local``.
TREE_MODEL_NAMES: dict[str, str] = {"rf": "local_rf", "gbm": "local_gbm"}


class TreeConfig(BaseModel):
    """Settings of the per-task tree models (written to ``trees.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: TreeKind = Field("rf", description="rf: random forest; gbm: histogram gradient boosting.")
    n_estimators: int = Field(200, ge=1, le=10_000, description="rf: trees.")
    max_iter: int = Field(100, ge=1, le=10_000, description="gbm: boosting iterations.")
    max_features: float | Literal["sqrt", "log2"] = Field(
        "sqrt", description="rf: features tried per split."
    )
    min_samples_leaf: int = Field(1, ge=1, description="rf/gbm: smallest leaf.")
    learning_rate: float = Field(0.1, gt=0, le=1, description="gbm: shrinkage.")
    max_leaf_nodes: int = Field(31, ge=2, description="gbm: leaves per tree.")
    min_bit_count: int = Field(3, ge=1, description="gbm: keep bits set in ≥ this many rows.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random state.")
    n_jobs: int = Field(1, ge=1, le=512, description="rf: parallel tree building.")
    fold_va: int | None = Field(1, ge=0, description="Validation fold.")
    fold_te: int | None = Field(0, ge=0, description="Test fold (never trained on).")


class _Constant:
    """A task whose training rows hold one class (or too few values): a fixed prediction."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict_proba(self, x: Any) -> np.ndarray:
        n = x.shape[0]
        return np.column_stack([np.full(n, 1 - self.value), np.full(n, self.value)])

    def predict(self, x: Any) -> np.ndarray:
        return np.full(x.shape[0], self.value)


class _Columns:
    """A fitted model on a dense subset of the fingerprint bits."""

    def __init__(self, model: Any, columns: np.ndarray) -> None:
        self.model, self.columns = model, columns

    def _dense(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(x[:, self.columns].toarray(), dtype=np.float32)

    def predict_proba(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self._dense(x)))

    def predict(self, x: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self.model.predict(self._dense(x)))


def _estimator(cfg: TreeConfig, classification: bool) -> Any:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    if cfg.kind == "rf":
        cls = RandomForestClassifier if classification else RandomForestRegressor
        return cls(
            n_estimators=cfg.n_estimators,
            max_features=cfg.max_features,
            min_samples_leaf=cfg.min_samples_leaf,
            n_jobs=cfg.n_jobs,
            random_state=cfg.seed,
        )
    hgb = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
    return hgb(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        min_samples_leaf=max(cfg.min_samples_leaf, 5),
        early_stopping=False,
        random_state=cfg.seed,
    )


def _fit_one(cfg: TreeConfig, x: sp.csr_matrix, y: np.ndarray, classification: bool) -> Any:
    if classification and len(np.unique(y)) < 2:
        return _Constant(float(y[0] > 0) if len(y) else 0.5)
    if not classification and len(y) < 2:
        return _Constant(float(y.mean()) if len(y) else 0.0)
    target = (y > 0).astype(np.int64) if classification else y
    if cfg.kind == "rf":
        return _estimator(cfg, classification).fit(x, target)
    counts = np.asarray((x != 0).sum(axis=0)).ravel()
    columns = np.flatnonzero(counts >= cfg.min_bit_count)
    if columns.size == 0:
        columns = np.flatnonzero(counts > 0)[:1]
    model = _estimator(cfg, classification).fit(
        np.asarray(x[:, columns].toarray(), dtype=np.float32), target
    )
    return _Columns(model, columns)


def _task_rows(
    y: sp.csr_matrix, task: int, train_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    col = y[train_rows, task].tocoo()
    return train_rows[col.row], col.data.astype(np.float64)


def fit_trees(
    data: PreparedData,
    cfg: TreeConfig,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[Any]]:
    """One fitted model per task: ``{"classification": [...], "regression": [...]}``."""
    train_rows = data.rows_not_in_folds([cfg.fold_va, cfg.fold_te])
    y_cls, y_reg = data.y_cls.tocsc(), data.y_reg.tocsc()
    total, done = data.n_cls_tasks + data.n_reg_tasks, 0
    models: dict[str, list[Any]] = {"classification": [], "regression": []}
    for kind, y, n in (
        ("classification", y_cls, data.n_cls_tasks),
        ("regression", y_reg, data.n_reg_tasks),
    ):
        for task in range(n):
            rows, values = _task_rows(y, task, train_rows)
            models[kind].append(_fit_one(cfg, data.x[rows], values, kind == "classification"))
            done += 1
            if progress is not None:
                progress(done, total)
    return models


def predict_trees(models: dict[str, list[Any]], x: sp.csr_matrix) -> Predictions:
    """Every task's prediction for the rows of ``x`` (probabilities; regression values)."""
    cls = [m.predict_proba(x)[:, 1] for m in models["classification"]]
    reg = [m.predict(x) for m in models["regression"]]
    n = x.shape[0]
    return Predictions(
        cls_prob=np.column_stack(cls).astype(np.float32) if cls else np.zeros((n, 0), np.float32),
        reg_value=np.column_stack(reg).astype(np.float32) if reg else np.zeros((n, 0), np.float32),
    )


def _split_metrics(data: PreparedData, models: dict[str, list[Any]], fold: int | None) -> Any:
    if fold is None:
        return None
    rows = data.rows_in_folds([fold])
    if not len(rows):
        return None
    return evaluate_predictions(data, rows, predict_trees(models, data.x[rows]))


def run_tree_baseline(
    partner_dir: str | Path,
    cfg: TreeConfig,
    *,
    out_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> MetricsReport:
    """Train the partner's per-task tree models, score them on the validation and test
    folds, and write ``models/local_rf/`` (or ``local_gbm/``): ``metrics.json``,
    ``trees.json``, ``model.joblib`` (atomically)."""
    import joblib

    pdir = Path(partner_dir)
    data = load_prepared(PartnerLayout(pdir).prepared)
    t0 = time.perf_counter()
    models = fit_trees(data, cfg, progress)
    name = TREE_MODEL_NAMES[cfg.kind]
    report = MetricsReport(
        model_name=name,
        fold_va=cfg.fold_va,
        fold_te=cfg.fold_te,
        epochs_trained=0,
        validation=_split_metrics(data, models, cfg.fold_va),
        test=_split_metrics(data, models, cfg.fold_te),
    )
    dest = Path(out_dir) if out_dir is not None else pdir / MODELS_DIR / name
    with atomic_directory(dest) as tmp:
        joblib.dump(models, tmp / "model.joblib", compress=3)
        atomic_write_json(tmp / "trees.json", cfg.model_dump(mode="json"))
        atomic_write_json(tmp / "metrics.json", report.model_dump(mode="json"))
    log.info(
        "wrote %s (%d tasks, %.1f s)",
        dest,
        data.n_cls_tasks + data.n_reg_tasks,
        time.perf_counter() - t0,
    )
    return report


__all__ = [
    "TREE_MODEL_NAMES",
    "TreeConfig",
    "TreeKind",
    "fit_trees",
    "predict_trees",
    "run_tree_baseline",
]
