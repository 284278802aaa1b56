"""The default local baseline does not overfit: early stopping restores the best epoch
(issue 18: validation peaked at epoch 2-3 and the old default kept epoch 20)."""

from __future__ import annotations

from pathlib import Path

from pharmafl.cli.model import build_configs
from pharmafl.model import (
    SparseTrunkConfig,
    TrainConfig,
    load_model_dir,
    load_prepared,
    run_baseline,
    write_synthetic_prepared,
)


def test_a_small_partners_baseline_stops_early_and_keeps_its_best_epoch(tmp_path: Path) -> None:
    partner = tmp_path / "alpha"
    write_synthetic_prepared(
        partner / "prepared",
        n_rows=400,
        n_features=256,
        n_cls_tasks=3,
        n_reg_tasks=1,
        bits_per_row=20,
        label_density=0.5,
        seed=1,
    )
    train = TrainConfig(epochs=60, batch_size=32, lr=3e-3, lr_steps=())  # patience: default
    assert train.early_stopping_patience == 3
    trunk = SparseTrunkConfig(hidden_sizes=(256,), dropouts=(0.0,))
    report = run_baseline(partner, trunk, train, checkpoint=False)
    assert report.best_epoch is not None
    assert report.epochs_trained < 60, "a small partner overfits long before 60 epochs"
    assert report.epochs_trained == report.best_epoch + 3
    # The saved model is the best epoch's: its validation score is that epoch's record.
    best = next(r for r in report.history if r.epoch == report.best_epoch)
    assert report.validation is not None and best.validation is not None
    assert abs(report.validation.metric("roc_auc") - float(best.validation["roc_auc"])) < 1e-9
    model, _ = load_model_dir(partner / "models" / "local")
    assert model is not None and load_prepared(partner / "prepared").n_rows == 400


def test_patience_zero_turns_early_stopping_off() -> None:
    _, train = build_configs(None, {}, {"early_stopping_patience": 0})
    assert train.early_stopping_patience is None
    _, default = build_configs(None, {}, {})
    assert default.early_stopping_patience == 3
