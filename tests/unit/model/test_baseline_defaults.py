"""The default local baseline does not overfit: early stopping restores the best epoch
(issue 18: validation peaked at epoch 2-3 and the old default kept epoch 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pharmafl.cli.model import build_configs
from pharmafl.model import (
    SparseTrunkConfig,
    TrainConfig,
    load_model_dir,
    load_prepared,
    run_baseline,
    write_synthetic_prepared,
)
from pharmafl.model.regularisation import rule_for


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


@pytest.mark.parametrize(
    ("rows", "hidden", "dropout"),
    [(400, 2000, 0.8), (10_000, 2000, 0.8), (10_001, 2000, 0.6), (10**6, 4000, 0.4)],
)
def test_the_size_rule_regularises_small_partners_more(rows: int, hidden: int, dropout: float):
    rule = rule_for(rows)
    assert (rule.hidden, rule.dropout) == (hidden, dropout)


def test_a_baseline_sized_by_data_records_its_choice(tmp_path: Path) -> None:
    partner = tmp_path / "alpha"
    write_synthetic_prepared(
        partner / "prepared", n_rows=300, n_features=128, n_cls_tasks=2, n_reg_tasks=0, seed=2
    )
    trunk = SparseTrunkConfig(hidden_sizes=(64,), dropouts=(0.1,))
    train = TrainConfig(epochs=1, batch_size=64, weight_decay=0.5)
    run_baseline(partner, trunk, train, checkpoint=False, by_size=True)
    hp = json.loads((partner / "models" / "local" / "hyperparameters.json").read_text())
    chosen = hp["extra"]["regularisation"]
    n_train = len(load_prepared(partner / "prepared").rows_not_in_folds([1, 0]))
    assert chosen["chosen_by"] == "data size" and chosen["train_rows"] == n_train
    assert hp["model"]["trunk"]["hidden_sizes"] == chosen["hidden_sizes"] == [2000]
    assert hp["model"]["trunk"]["dropouts"] == chosen["dropouts"] == [0.8]
    assert hp["train"]["weight_decay"] == chosen["weight_decay"] == 0.0
    run_baseline(partner, trunk, train, checkpoint=False)  # not by size: the given settings
    hp = json.loads((partner / "models" / "local" / "hyperparameters.json").read_text())
    assert "regularisation" not in hp["extra"]
    assert hp["model"]["trunk"]["hidden_sizes"] == [64] and hp["train"]["weight_decay"] == 0.5
