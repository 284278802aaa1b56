"""Seeded dropout: each trainer's randomness is its own, so trainers in threads of one process
(the embedded launcher's partners) train concurrently with the result of one after another."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

from pharmafl.model import (
    LocalTrainer,
    MultiTaskModel,
    PreparedData,
    TrainConfig,
    load_prepared,
    local_model_config,
)
from pharmafl.model.config import SparseTrunkConfig
from pharmafl.model.dropout import (
    SeededDropout,
    dropout_seeded,
    seeded_randomness,
    uses_global_rng,
)


@pytest.fixture(scope="module")
def data(small_prepared) -> PreparedData:
    return load_prepared(small_prepared / "prepared")


def _model(data: PreparedData, seed: int, dropout: float = 0.5) -> MultiTaskModel:
    trunk = SparseTrunkConfig(
        input_size=data.n_features, hidden_sizes=(64, 32), dropouts=(dropout, dropout)
    )
    config = local_model_config(trunk, data.n_cls_tasks, data.n_reg_tasks)
    return MultiTaskModel.from_config(config, seed=seed)


def _train(data: PreparedData, seed: int, start: threading.Barrier | None = None) -> dict:
    model = _model(data, seed)
    trainer = LocalTrainer(model, data, TrainConfig(epochs=3, seed=seed, batch_ratio=0.1))
    if start is not None:
        start.wait()  # every thread trains at once
    trainer.train(evaluate=False)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_masks_come_from_the_seed_and_leave_the_global_rng_alone() -> None:
    drop = SeededDropout(0.5).train()
    x = torch.ones(1000)
    torch.manual_seed(1)
    expected_next = torch.rand(3)
    torch.manual_seed(1)
    with dropout_seeded(drop, 7):
        a = drop(x)
    with dropout_seeded(drop, 7):
        b = drop(x)
    with dropout_seeded(drop, 8):
        c = drop(x)
    assert torch.equal(torch.rand(3), expected_next)  # the global generator did not move
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0.0, 2.0}  # inverted dropout: kept values scaled
    assert 400 < int((a == 0).sum()) < 600
    assert drop.generator is None  # detached after the block
    assert torch.equal(drop.eval()(x), x)


def test_without_a_generator_it_is_nn_dropout() -> None:
    x = torch.randn(50, 20)
    ours, theirs = SeededDropout(0.3).train(), nn.Dropout(0.3).train()
    torch.manual_seed(3)
    a = ours(x)
    torch.manual_seed(3)
    assert torch.equal(a, theirs(x))
    assert torch.equal(SeededDropout(1.0).train()(x), torch.zeros_like(x))
    with dropout_seeded(ours, 1):
        assert torch.equal(SeededDropout(0.0).train()(x), x)


def test_saved_models_keep_their_keys(data) -> None:
    """The dropout modules hold no state: a model saved before loads into one built now."""
    model = _model(data, 0)
    assert not uses_global_rng(model)
    assert [k for k in model.state_dict() if "drop" in k] == []
    with seeded_randomness(model, 5):
        pass
    assert uses_global_rng(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1)))
    assert not uses_global_rng(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.0)))


def test_trainers_in_threads_equal_trainers_one_after_another(data) -> None:
    seeds = (11, 12, 13)
    serial = [_train(data, s) for s in seeds]
    start = threading.Barrier(len(seeds))
    with ThreadPoolExecutor(len(seeds)) as pool:
        parallel = list(pool.map(lambda s: _train(data, s, start), seeds))
    for one, other in zip(serial, parallel, strict=True):
        assert one.keys() == other.keys()
        assert all(torch.equal(v, other[k]) for k, v in one.items())
    first = next(k for k in serial[0] if k.startswith("trunk."))
    assert not torch.equal(serial[0][first], serial[1][first])  # the seeds differ
