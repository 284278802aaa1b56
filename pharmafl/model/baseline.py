"""The single-partner (local-only) baseline: ``PARTNER_DIR/models/local/``.

Every partner trains one on its own ``prepared/`` data; the consortium's benefit is measured
against it on the test fold (MELLODDY's SP model, ``../shared/reference/melloddy-stack.md``
§3.5).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pharmafl.common.errors import ModelError
from pharmafl.evaluation.documents import MetricsReport
from pharmafl.layout import LOCAL_MODEL, MODELS_DIR, PartnerLayout
from pharmafl.model.config import GraphTrunkConfig, SparseTrunkConfig, TrainConfig
from pharmafl.model.data import PreparedData, load_prepared
from pharmafl.model.multitask import MultiTaskModel, local_model_config
from pharmafl.model.persist import save_model_dir
from pharmafl.model.regularisation import regularise
from pharmafl.model.training import LocalTrainer, ProgressCallback, load_checkpoint

log = logging.getLogger(__name__)

LOCAL_MODEL_DIR = Path(MODELS_DIR) / LOCAL_MODEL
CHECKPOINT_FILE = Path(MODELS_DIR) / "checkpoints" / f"{LOCAL_MODEL}.pt"


def fit_trunk_to_data(
    trunk: SparseTrunkConfig | GraphTrunkConfig, data: PreparedData
) -> SparseTrunkConfig | GraphTrunkConfig:
    """Set the data-given sizes of a trunk config (input width; graph vocabulary)."""
    if isinstance(trunk, SparseTrunkConfig):
        return trunk.model_copy(update={"input_size": data.n_features})
    if data.graphs is not None:
        vocab = data.graphs.vocabulary
        return trunk.model_copy(
            update={
                "atom_cardinalities": tuple(vocab.atom_cardinalities),
                "bond_cardinalities": tuple(vocab.bond_cardinalities),
            }
        )
    return trunk


def final_report(trainer: LocalTrainer, model_name: str) -> MetricsReport:
    """Validation and test metrics of a trained model (test scored only now)."""
    cfg = trainer.config
    validation = trainer.evaluate("validation") if len(trainer.valid_rows) else None
    test = trainer.evaluate("test") if len(trainer.test_rows) else None
    return MetricsReport(
        model_name=model_name,
        head=trainer.head_name,
        fold_va=cfg.fold_va,
        fold_te=cfg.fold_te,
        epochs_trained=trainer.epoch,
        best_epoch=trainer.best_epoch,
        validation=validation,
        test=test,
        history=list(trainer.history),
    )


def run_baseline(
    partner_dir: str | Path,
    trunk: SparseTrunkConfig | GraphTrunkConfig,
    train: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    checkpoint: bool = True,
    progress: ProgressCallback | None = None,
    by_size: bool = False,
) -> MetricsReport:
    """Train the local-only model of one partner and write ``models/local/``.

    Parameters
    ----------
    partner_dir : path
        Holds ``prepared/`` (``docs/prepared-format.md``).
    trunk : trunk config
        Its data-given sizes are set from the data (:func:`fit_trunk_to_data`).
    train : TrainConfig
    out_dir : path, optional
        Default ``PARTNER_DIR/models/local``.
    resume : bool
        Continue from ``models/checkpoints/local.pt`` if it exists (same settings only).
    checkpoint : bool
        Write that checkpoint at every epoch end (deleted after success).
    progress : callable, optional
        ``progress(done_steps, total_steps)``.
    by_size : bool
        Choose a sparse trunk's width and dropout and the weight decay from the number of
        training rows (:mod:`pharmafl.model.regularisation`), recorded in
        ``hyperparameters.json`` under ``extra.regularisation``.

    Returns
    -------
    MetricsReport
        Also written as ``metrics.json`` beside ``model.pt`` and ``hyperparameters.json``.
    """
    pdir = Path(partner_dir)
    data = load_prepared(PartnerLayout(pdir).prepared, with_graphs=trunk.kind == "graph")
    trunk = fit_trunk_to_data(trunk, data)
    chosen: dict[str, Any] | None = None
    if by_size and isinstance(trunk, SparseTrunkConfig):
        n_train = len(data.rows_not_in_folds([train.fold_va, train.fold_te]))
        trunk, train, chosen = regularise(trunk, train, n_train)
        log.info(
            "%s training rows: hidden %s, dropout %s, weight decay %s (chosen by data size)",
            n_train,
            chosen["hidden_sizes"],
            chosen["dropouts"],
            chosen["weight_decay"],
        )
    model_cfg = local_model_config(trunk, data.n_cls_tasks, data.n_reg_tasks)
    ckpt = pdir / CHECKPOINT_FILE
    if resume and ckpt.is_file():
        state = load_checkpoint(ckpt)
        if state["model_config"] != model_cfg.model_dump(mode="json") or state[
            "train_config"
        ] != train.model_dump(mode="json"):
            raise ModelError(
                "the checkpoint was written with different model or training settings.",
                file=ckpt,
                fix="rerun with the same options, or without --resume to start over.",
            )
        trainer = LocalTrainer.from_checkpoint(ckpt, data)
        log.info("resuming from %s at epoch %d", ckpt, trainer.epoch)
    else:
        model = MultiTaskModel.from_config(model_cfg, seed=train.seed)
        trainer = LocalTrainer(model, data, train)
    trainer.train(checkpoint=ckpt if checkpoint else None, progress=progress)
    report = final_report(trainer, LOCAL_MODEL)
    extra: dict[str, Any] = {
        "rows": data.n_rows,
        "train_rows": len(trainer.train_rows),
        "cls_tasks": data.n_cls_tasks,
        "reg_tasks": data.n_reg_tasks,
    }
    if chosen is not None:
        extra["regularisation"] = chosen
    dest = Path(out_dir) if out_dir is not None else pdir / LOCAL_MODEL_DIR
    save_model_dir(dest, trainer.model, train, metrics=report, extra=extra)
    if checkpoint:
        ckpt.unlink(missing_ok=True)
    log.info("wrote %s", dest)
    return report


__all__ = [
    "CHECKPOINT_FILE",
    "LOCAL_MODEL_DIR",
    "final_report",
    "fit_trunk_to_data",
    "run_baseline",
]
