"""What a partner keeps between federated rounds: its head, its counters and, when the plan
says ``keep_optimizer``, its optimizer's moments (never sent)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from pharmafl.common.errors import FederationError
from pharmafl.model import (
    LocalTrainer,
    MultiTaskModel,
    PreparedData,
    SparseTrunkConfig,
    TrainConfig,
    load_prepared,
    local_model_config,
    write_synthetic_prepared,
)
from pharmafl.partner.federated import _load_local_state, _save_local_state


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> PreparedData:
    root = tmp_path_factory.mktemp("partner") / "prepared"
    write_synthetic_prepared(root, seed=1, n_rows=300, n_features=256, n_cls_tasks=4)
    return load_prepared(root)


def _trainer(data: PreparedData, *, heads_only: bool = False) -> LocalTrainer:
    trunk = SparseTrunkConfig(input_size=data.n_features, hidden_sizes=(16,), dropouts=(0.1,))
    model = MultiTaskModel.from_config(
        local_model_config(trunk, data.n_cls_tasks, data.n_reg_tasks), seed=0
    )
    config = TrainConfig(seed=0, epochs=10_000, batch_size=32, lr_steps=(), eval_every=0)
    if not heads_only:
        return LocalTrainer(model, data, config)
    heads = [p for n, p in model.named_parameters() if n.startswith("heads.")]
    return LocalTrainer(model, data, config, optimizer=torch.optim.Adam(heads))


def _load(trainer: LocalTrainer, path: Path, keep: bool) -> None:
    _load_local_state(trainer, io.BytesIO(path.read_bytes()), path, keep)


def _saved(data: PreparedData, path: Path, keep: bool, steps: int = 5) -> LocalTrainer:
    """A trainer after ``steps`` steps, its state saved to ``path``."""
    trainer = _trainer(data)
    trainer.train(steps=steps, evaluate=False)
    _save_local_state(trainer, path, keep_optimizer=keep)
    return trainer


def test_a_kept_optimizer_carries_its_moments_into_the_next_round(
    data: PreparedData, tmp_path: Path
) -> None:
    path = tmp_path / "state.pt"
    first = _saved(data, path, keep=True)
    again = _trainer(data)
    _load(again, path, keep=True)
    saved, loaded = first.optimizer.state_dict()["state"], again.optimizer.state_dict()["state"]
    assert saved.keys() == loaded.keys() and saved
    for k in saved:
        assert float(loaded[k]["step"]) == 5
        assert torch.equal(saved[k]["exp_avg_sq"], loaded[k]["exp_avg_sq"])
    assert again.step == 5


def test_by_default_the_optimizer_restarts_and_is_not_stored(
    data: PreparedData, tmp_path: Path
) -> None:
    path = tmp_path / "state.pt"
    _saved(data, path, keep=False)
    assert "optimizer" not in torch.load(path, weights_only=True)
    again = _trainer(data)
    _load(again, path, keep=False)
    assert again.optimizer.state_dict()["state"] == {} and again.step == 5


def test_an_optimizer_state_that_does_not_fit_is_refused_naming_the_file(
    data: PreparedData, tmp_path: Path
) -> None:
    path = tmp_path / "state.pt"
    _saved(data, path, keep=True, steps=2)
    with pytest.raises(FederationError, match="optimizer state does not fit") as err:
        _load(_trainer(data, heads_only=True), path, keep=True)
    assert str(path) in str(err.value) and "start a new run" in str(err.value)


def test_a_state_file_of_another_kind_or_other_tasks_is_refused_naming_the_file(
    data: PreparedData, tmp_path: Path
) -> None:
    """A file that is not a partner state (another tool's checkpoint under the name), or a
    head saved for other tasks (prepared/ changed since the run started): refused by file,
    with what to do, and never half loaded."""
    other = tmp_path / "other.pt"
    torch.save({"format": "someone.else/1", "heads": {}}, other)
    with pytest.raises(FederationError, match="not a partner state file") as err:
        _load(_trainer(data), other, keep=False)
    assert str(other) in str(err.value) and "rejoin" in str(err.value)

    wide = tmp_path / "wide"
    write_synthetic_prepared(wide, seed=1, n_rows=300, n_features=256, n_cls_tasks=6)
    path = tmp_path / "state.pt"
    _saved(load_prepared(wide), path, keep=False, steps=1)
    with pytest.raises(FederationError, match="does not fit this partner's tasks") as err:
        _load(_trainer(data), path, keep=False)
    assert str(path) in str(err.value)
