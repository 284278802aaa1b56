"""Local training: determinism, resume, folds, early stopping, FedProx, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pharmafl.common.errors import ConfigError, ModelError
from pharmafl.model import (
    LocalTrainer,
    MultiTaskModel,
    PreparedData,
    SparseTrunkConfig,
    TrainConfig,
    export_trunk,
    learning_rate,
    load_prepared,
    local_model_config,
    regression_stats,
    train_local,
)


def _model(data: PreparedData, seed: int = 0, dropout: float = 0.2) -> MultiTaskModel:
    torch.manual_seed(seed)
    cfg = local_model_config(
        SparseTrunkConfig(
            input_size=data.n_features, hidden_sizes=(16, 8), dropouts=(dropout,) * 2
        ),
        data.n_cls_tasks,
        data.n_reg_tasks,
    )
    return MultiTaskModel.from_config(cfg)


@pytest.fixture()
def data(small_prepared) -> PreparedData:
    return load_prepared(small_prepared / "prepared")


def _same(a: MultiTaskModel, b: MultiTaskModel) -> bool:
    sb = b.state_dict()
    return all(torch.equal(v, sb[k]) for k, v in a.state_dict().items())


def test_same_seed_same_model_other_seed_other_model(data) -> None:
    cfg = TrainConfig(epochs=2, seed=5, batch_ratio=0.1)
    a, b, c = _model(data), _model(data), _model(data)
    LocalTrainer(a, data, cfg).train(evaluate=False)
    LocalTrainer(b, data, cfg).train(evaluate=False)
    LocalTrainer(c, data, cfg.model_copy(update={"seed": 6})).train(evaluate=False)
    assert _same(a, b)
    assert not _same(a, c)


def test_training_leaves_global_torch_rng_alone(data) -> None:
    trainer = LocalTrainer(_model(data), data, TrainConfig(epochs=1, batch_ratio=0.2))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainer.train()
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("split_steps", [3, 7])  # mid-epoch and across an epoch boundary
def test_resume_from_checkpoint_equals_uninterrupted_run(data, tmp_path, split_steps) -> None:
    cfg = TrainConfig(epochs=3, seed=2, batch_ratio=0.2, early_stopping_patience=2)
    full = LocalTrainer(_model(data), data, cfg)
    full.train()
    part = LocalTrainer(_model(data), data, cfg)
    part.train(steps=split_steps)
    ckpt = part.save_checkpoint(tmp_path / "ckpt.pt")
    del part
    resumed = LocalTrainer.from_checkpoint(ckpt, data)
    assert resumed.step == split_steps
    resumed.train()
    assert resumed.epoch == full.epoch == 3
    assert _same(full.model, resumed.model)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in full.history]
    assert resumed.best_epoch == full.best_epoch


def test_checkpoint_errors_are_clear(data, tmp_path) -> None:
    with pytest.raises(ModelError, match="checkpoint not found"):
        LocalTrainer.from_checkpoint(tmp_path / "nope.pt", data)
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ModelError, match="not a pharmafl checkpoint"):
        LocalTrainer.from_checkpoint(bad, data)


def test_test_fold_is_never_touched_during_training(data) -> None:
    cfg = TrainConfig(epochs=2, fold_va=1, fold_te=0, batch_ratio=0.2, early_stopping_patience=5)
    trainer = LocalTrainer(_model(data), data, cfg)
    seen: list[np.ndarray] = []
    inner_inputs, inner_labels = trainer.inputs, trainer.labels

    def spy_inputs(rows: np.ndarray):
        seen.append(np.asarray(rows))
        return inner_inputs(rows)

    def spy_labels(rows: np.ndarray):
        seen.append(np.asarray(rows))
        return inner_labels(rows)

    trainer.inputs, trainer.labels = spy_inputs, spy_labels  # type: ignore[assignment]
    trainer.train()
    touched = np.unique(np.concatenate(seen))
    assert not np.isin(data.folds[touched], [0]).any()
    # Training batches never include validation rows either; validation rows are scored.
    assert set(np.unique(data.folds[touched])) == {1, 2, 3, 4}
    assert not np.isin(trainer.train_rows, trainer.valid_rows).any()
    test = trainer.evaluate("test")
    assert test.folds == [0] and test.n_rows == int((data.folds == 0).sum())


def test_training_learns_the_synthetic_signal(data) -> None:
    model = _model(data, dropout=0.0)
    trainer = LocalTrainer(model, data, TrainConfig(epochs=6, lr=0.01, batch_ratio=0.1))
    before, train_before = trainer.evaluate("validation"), trainer.evaluate("train")
    result = trainer.train()
    after, train_after = trainer.evaluate("validation"), trainer.evaluate("train")
    assert result.steps == 6 * trainer.steps_per_epoch
    assert after.metric("roc_auc") > before.metric("roc_auc") + 0.05
    # Regression (in the task's units, after inverse normalisation) fits the training rows.
    assert train_after.metric("rmse") < 0.8 * train_before.metric("rmse")
    losses = [r.train_loss for r in trainer.history]
    assert losses[-1] < losses[0]
    assert trainer.history[-1].validation is not None
    assert "roc_auc" in trainer.history[-1].validation
    assert "reg_rmse" in trainer.history[-1].validation


def test_early_stopping_restores_the_best_epoch(data) -> None:
    cfg = TrainConfig(epochs=12, lr=0.05, batch_ratio=0.1, early_stopping_patience=2)
    trainer = LocalTrainer(_model(data, dropout=0.0), data, cfg)
    result = trainer.train()
    assert trainer.best_epoch is not None
    scores = [r.validation["roc_auc"] for r in trainer.history if r.validation]
    assert trainer.history[trainer.best_epoch - 1].validation["roc_auc"] == max(scores)
    if result.stopped_early:
        assert trainer.epoch == trainer.best_epoch + 2
    final = trainer.evaluate("validation").metric("roc_auc")
    assert final == pytest.approx(max(scores))


def test_steps_mode_and_learning_rate_schedule(data) -> None:
    cfg = TrainConfig(epochs=5, lr=0.1, lr_steps=(1, 3), lr_alpha=0.5, batch_ratio=0.25)
    assert [learning_rate(cfg, e) for e in range(5)] == [0.1, 0.05, 0.05, 0.025, 0.025]
    trainer = LocalTrainer(_model(data), data, cfg)
    res = trainer.train(steps=trainer.steps_per_epoch + 1)
    assert res.steps == trainer.steps_per_epoch + 1
    assert trainer.epoch == 1 and trainer.position == 1
    assert trainer.history[0].validation is None  # no evaluation in steps mode
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)
    with pytest.raises(ConfigError):
        trainer.train(steps=1, epochs=1)


def test_fedprox_pulls_the_trunk_towards_the_global_state(data) -> None:
    start = _model(data)
    global_trunk = export_trunk(start)
    cfg = TrainConfig(epochs=1, lr=0.01, batch_ratio=0.2, optimizer="sgd")

    def drift(mu: float) -> float:
        model = _model(data, seed=9)  # different init: import_trunk must set the start point
        train_local(model, data, cfg, steps=8, prox_mu=mu, global_trunk=global_trunk)
        now = export_trunk(model)
        return sum(float((now[k] - v).pow(2).sum()) for k, v in global_trunk.items())

    free, prox = drift(0.0), drift(20.0)
    assert prox < 0.5 * free


def test_fedprox_refuses_an_optimizer_that_cannot_pull(data) -> None:
    """A plain torch optimizer has no proximal term: FedProx would silently be FedAvg."""
    model = _model(data)
    custom = torch.optim.SGD(model.parameters(), lr=0.01)
    trainer = LocalTrainer(model, data, TrainConfig(epochs=1), optimizer=custom)
    with pytest.raises(ModelError, match="FedProx needs an optimizer from pharmafl"):
        trainer.train(steps=1, prox_mu=1.0, global_trunk=export_trunk(model))
    trainer.train(steps=1)  # without FedProx the custom optimizer is fine


def test_regression_stats_and_mismatched_head(data) -> None:
    rows = np.arange(data.n_rows)
    mean, std = regression_stats(data.y_reg, rows)
    dense = data.y_reg.tocsc()
    for j in range(data.n_reg_tasks):
        col = dense[:, j].data
        assert mean[j] == pytest.approx(col.mean(), rel=1e-5)
        assert std[j] == pytest.approx(col.std(), rel=1e-4)
    cfg = local_model_config(
        SparseTrunkConfig(input_size=data.n_features, hidden_sizes=(4,)), data.n_cls_tasks + 1, 0
    )
    with pytest.raises(ModelError, match="size the head"):
        LocalTrainer(MultiTaskModel.from_config(cfg), data, TrainConfig())
    cfg = local_model_config(
        SparseTrunkConfig(input_size=99, hidden_sizes=(4,)), data.n_cls_tasks, data.n_reg_tasks
    )
    with pytest.raises(ModelError, match="input features"):
        LocalTrainer(MultiTaskModel.from_config(cfg), data, TrainConfig())


def test_baseline_is_reproducible_from_its_seed(small_prepared, tmp_path) -> None:
    from pharmafl.model import load_model_dir, run_baseline

    trunk = SparseTrunkConfig(hidden_sizes=(8,), dropouts=(0.3,))
    cfg = TrainConfig(epochs=1, batch_ratio=0.25, seed=4)
    a = run_baseline(small_prepared, trunk, cfg, out_dir=tmp_path / "a", checkpoint=False)
    b = run_baseline(small_prepared, trunk, cfg, out_dir=tmp_path / "b", checkpoint=False)
    assert a.test == b.test
    ma, _ = load_model_dir(tmp_path / "a")
    mb, _ = load_model_dir(tmp_path / "b")
    assert _same(ma, mb)


def test_pooled_training_needs_a_partner() -> None:
    from pharmafl.model.pooled import train_pooled

    with pytest.raises(ConfigError, match="pooled training needs at least one partner"):
        train_pooled({}, SparseTrunkConfig(hidden_sizes=(4,)), TrainConfig(epochs=1))


def test_a_checkpoint_needs_the_models_config(data, tmp_path) -> None:
    """Without its config a checkpoint could not be resumed: refused, nothing written."""
    built = _model(data)
    bare = MultiTaskModel(built.trunk, dict(built.heads))
    trainer = LocalTrainer(bare, data, TrainConfig(epochs=1))
    with pytest.raises(ModelError, match="checkpoints need a model built from a ModelConfig"):
        trainer.save_checkpoint(tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()


def test_a_negative_prox_mu_or_an_unknown_split_is_refused(data) -> None:
    trainer = LocalTrainer(_model(data), data, TrainConfig(epochs=1))
    with pytest.raises(ConfigError, match="unknown split 'valid'; valid: train, validation, test"):
        trainer.rows("valid")
    with pytest.raises(ConfigError, match=r"prox_mu must be >= 0, got -0\.1"):
        trainer.train(steps=1, prox_mu=-0.1)


def test_training_stops_on_a_loss_that_is_not_finite(data) -> None:
    trainer = LocalTrainer(_model(data), data, TrainConfig(epochs=1))
    trainer.train_step = lambda rows: float("nan")  # type: ignore[method-assign]
    with pytest.raises(ModelError, match="training loss became nan at step 0") as err:
        trainer.train(steps=1)
    assert "lower the learning rate" in (err.value.fix or "")


def test_no_training_rows_left_is_refused(data) -> None:
    import dataclasses

    two = dataclasses.replace(data, folds=data.folds % 2)  # only folds 0 and 1
    with pytest.raises(ModelError, match="no training rows left"):
        LocalTrainer(_model(data), two, TrainConfig(fold_va=0, fold_te=1))
    for steps in ((5, 3), (0,)):
        with pytest.raises(ValueError, match="lr_steps must be positive and increasing"):
            TrainConfig(lr_steps=steps)
