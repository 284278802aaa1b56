"""Losses against hand-computed values; unmeasured labels change nothing; hybrid balance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pharmafl.model import (
    LabelBatch,
    LocalTrainer,
    MultiTaskModel,
    SparseTrunkConfig,
    TrainConfig,
    censored_mse_loss,
    classification_loss,
    load_prepared,
    local_model_config,
)
from pharmafl.model.heads import HeadOutput


def test_censored_mse_matches_hand_computed_values() -> None:
    # One row, six tasks: '=' above/below, '>' satisfied/violated, '<' satisfied/violated.
    pred = torch.tensor([[5.0, 5.0, 7.0, 5.0, 5.0, 7.0]])
    y = torch.tensor([[6.0, 4.0, 6.0, 6.0, 6.0, 6.0]])
    censor = torch.tensor([[0.0, 0.0, 1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 6)
    tw = torch.tensor([1.0, 2.0, 1.0, 1.0, 1.0, 1.0])
    cw = torch.full((6,), 0.5)
    # '=': (5-6)^2*1 = 1 and (5-4)^2*2 = 2; '>' at 6 with pred 7: fine (0); pred 5: (6-5)^2*0.5;
    # '<' at 6 with pred 5: fine (0); pred 7: (7-6)^2*0.5.
    expected = 1.0 + 2.0 + 0.0 + 0.5 + 0.0 + 0.5
    got = censored_mse_loss(pred, y, censor, mask, tw, cw)
    assert got.item() == pytest.approx(expected)
    # Plain MSE (SparseChem --censored_loss 0) keeps the censored weights.
    plain = censored_mse_loss(pred, y, censor, mask, tw, cw, censored=False)
    assert plain.item() == pytest.approx(1.0 + 2.0 + 0.5 + 0.5 + 0.5 + 0.5)


def test_censored_mse_gradient_is_zero_on_the_right_side_of_a_bound() -> None:
    pred = torch.tensor([[7.0, 5.0]], requires_grad=True)
    y = torch.tensor([[6.0, 6.0]])
    censor = torch.tensor([[1.0, 1.0]])
    loss = censored_mse_loss(pred, y, censor, torch.ones(1, 2), torch.ones(2), torch.ones(2))
    loss.backward()
    assert pred.grad is not None
    assert pred.grad.tolist() == [[0.0, -2.0]]


def test_classification_loss_matches_hand_computed_bce() -> None:
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    y = torch.tensor([[1.0, 0.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    w = torch.tensor([1.0, 0.5, 3.0])
    expected = math.log(2.0) + 0.5 * (2.0 + math.log1p(math.exp(-2.0)))
    assert classification_loss(logits, y, mask, w).item() == pytest.approx(expected, rel=1e-6)


def test_unmeasured_labels_change_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, generator=g, requires_grad=True)
    y = (torch.rand(4, 5, generator=g) > 0.5).float()
    mask = (torch.rand(4, 5, generator=g) > 0.4).float()
    w = torch.rand(5, generator=g)
    base = classification_loss(logits, y, mask, w)
    (grad_base,) = torch.autograd.grad(base, logits)
    y2 = torch.where(mask > 0, y, 1.0 - y)  # flip every unmeasured label
    y2 = torch.where(mask > 0, y2, torch.full_like(y, float("nan")))  # and even poison it
    other = classification_loss(logits, y2, mask, w)
    (grad_other,) = torch.autograd.grad(other, logits)
    assert other.item() == base.item()
    assert torch.equal(grad_base, grad_other)
    assert torch.all(grad_base[mask == 0] == 0)

    reg_pred = torch.randn(4, 5, generator=g, requires_grad=True)
    reg_y = torch.randn(4, 5, generator=g)
    cens = torch.zeros(4, 5)
    r1 = censored_mse_loss(reg_pred, reg_y, cens, mask, w, w)
    (g1,) = torch.autograd.grad(r1, reg_pred)
    poisoned = torch.where(mask > 0, reg_y, float("nan"))
    cens2 = torch.where(mask > 0, cens, 1.0)
    r2 = censored_mse_loss(reg_pred, poisoned, cens2, mask, w, w)
    (g2,) = torch.autograd.grad(r2, reg_pred)
    assert r1.item() == r2.item()
    assert torch.equal(g1, g2)


def test_hybrid_loss_balances_classification_and_regression(small_prepared) -> None:
    data = load_prepared(small_prepared / "prepared")
    cfg = local_model_config(
        SparseTrunkConfig(input_size=data.n_features, hidden_sizes=(8,)),
        data.n_cls_tasks,
        data.n_reg_tasks,
    )
    model = MultiTaskModel.from_config(cfg)
    b, tc, tr = 3, data.n_cls_tasks, data.n_reg_tasks
    out = HeadOutput(cls_logits=torch.zeros(b, tc), reg_values=torch.zeros(b, tr))
    labels = LabelBatch(
        cls_y=torch.ones(b, tc),
        cls_mask=torch.ones(b, tc),
        reg_y=torch.ones(b, tr),
        reg_censor=torch.zeros(b, tr),
        reg_mask=torch.ones(b, tr),
    )
    cls_sum = b * tc * math.log(2.0)
    reg_sum = float(b * tr)
    for rw in (0.5, 0.2, 1.0):
        trainer = LocalTrainer(model, data, TrainConfig(regression_weight=rw))
        loss = trainer.batch_loss(out, labels, b).item()
        expected = (2 * (1 - rw) * cls_sum + 2 * rw * reg_sum) / b
        assert loss == pytest.approx(expected, rel=1e-6)
    trainer = LocalTrainer(model, data, TrainConfig(normalize_loss=100.0))
    assert trainer.batch_loss(out, labels, b).item() == pytest.approx(
        (cls_sum + reg_sum) / 100.0, rel=1e-6
    )


def test_task_training_weights_reach_the_loss(small_prepared) -> None:
    data = load_prepared(small_prepared / "prepared")
    data.cls_weights = data.cls_weights.assign(
        training_weight=np.r_[0.0, np.ones(data.n_cls_tasks - 1)]
    )
    cfg = local_model_config(
        SparseTrunkConfig(input_size=data.n_features, hidden_sizes=(8,)), data.n_cls_tasks, 0
    )
    data.y_reg = data.y_reg[:, :0]
    data.censor = data.censor[:, :0]
    data.reg_weights = data.reg_weights.iloc[:0]
    trainer = LocalTrainer(MultiTaskModel.from_config(cfg), data, TrainConfig())
    out = HeadOutput(cls_logits=torch.zeros(1, data.n_cls_tasks), reg_values=None)
    only_first = torch.zeros(1, data.n_cls_tasks)
    only_first[0, 0] = 1.0
    labels = LabelBatch(
        torch.ones(1, data.n_cls_tasks),
        only_first,
        torch.zeros(1, 0),
        torch.zeros(1, 0),
        torch.zeros(1, 0),
    )
    assert trainer.batch_loss(out, labels, 1).item() == 0.0
