"""Optimizers that accept the row-sparse gradient of the sparse input layer.

:class:`RowSparseAdam`, :class:`RowSparseAdamW` and :class:`RowSparseSGD` are
``torch.optim.Adam`` / ``AdamW`` / ``SGD`` (fused CPU kernels where available) that first
scatter any sparse COO gradient into a persistent dense buffer. The update is therefore
*exactly* the dense optimizer's — Adam moments decay for every row, weight decay applies to
every row — unlike ``torch.optim.SparseAdam`` ("lazy Adam"), which updates only the rows seen
in the batch and leaves the moments of unseen rows frozen. After the step only the touched
rows of the buffer are zeroed again (the buffer costs one parameter-sized tensor).

The learning-rate schedule is SparseChem's step schedule (``MultiStepLR(lr_steps, lr_alpha)``)
as a pure function of the completed epochs (:func:`learning_rate`), so checkpoints need no
scheduler state.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from pharmafl.common.errors import ConfigError
from pharmafl.model.config import TrainConfig


class _RowSparseGradients:
    """Mixin: densify sparse gradients into persistent buffers around ``step``."""

    param_groups: list[dict[str, Any]]

    def _buffers(self) -> tuple[dict[int, torch.Tensor], dict[int, tuple[torch.Tensor, Any]]]:
        # Keyed by id(param): tensors hash by identity but compare elementwise.
        if not hasattr(self, "_dense_grads"):
            self._dense_grads: dict[int, torch.Tensor] = {}
            self._touched: dict[int, tuple[torch.Tensor, Any]] = {}
        return self._dense_grads, self._touched

    def densify_gradients(self) -> None:
        """Replace every sparse ``p.grad`` by its dense equivalent (a reused buffer)."""
        dense, touched = self._buffers()
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None or not g.is_sparse:
                    continue
                g = g.coalesce()
                buf = dense.get(id(p))
                if buf is None:
                    buf = dense[id(p)] = torch.zeros_like(p)
                rows = g.indices()[0]
                buf.index_copy_(0, rows, g.values())
                touched[id(p)] = (p, rows)
                p.grad = buf

    def mark_all_rows_touched(self, p: torch.Tensor) -> None:
        """Declare that ``p``'s (densified) gradient was modified on every row."""
        _, touched = self._buffers()
        if id(p) in touched:
            touched[id(p)] = (p, None)

    def step(self, closure: Any = None) -> Any:
        self.densify_gradients()
        loss = super().step(closure)  # type: ignore[misc]
        dense, touched = self._buffers()
        for key, (p, rows) in touched.items():
            buf = dense[key]
            if rows is None:
                buf.zero_()
            else:
                buf.index_fill_(0, rows, 0.0)
            p.grad = None
        touched.clear()
        return loss


class RowSparseAdam(_RowSparseGradients, torch.optim.Adam):
    """``torch.optim.Adam`` (L2 weight decay) that also takes row-sparse gradients."""


class RowSparseAdamW(_RowSparseGradients, torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay) that also takes row-sparse gradients."""


class RowSparseSGD(_RowSparseGradients, torch.optim.SGD):
    """``torch.optim.SGD`` that also takes row-sparse gradients."""


def _fused_supported() -> bool:
    try:
        p = nn.Parameter(torch.zeros(1))
        torch.optim.Adam([p], fused=True)
    except (RuntimeError, TypeError, ValueError):  # pragma: no cover - old torch
        return False
    return True


def build_optimizer(
    params: Iterable[torch.nn.Parameter], config: TrainConfig
) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, over ``params``.

    Raises
    ------
    ConfigError
        Unknown optimizer (the message lists the valid ones).
    """
    params = [p for p in params if p.requires_grad]
    fused = True if _fused_supported() else None
    if config.optimizer == "adam":
        return RowSparseAdam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "adamw":
        return RowSparseAdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "sgd":
        return RowSparseSGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            fused=fused,
        )
    raise ConfigError(  # pragma: no cover - pydantic restricts the value
        f"unknown optimizer {config.optimizer!r}; valid: adam, adamw, sgd."
    )


def learning_rate(config: TrainConfig, completed_epochs: int) -> float:
    """SparseChem's step schedule: ``lr × lr_alpha^(number of lr_steps ≤ completed_epochs)``."""
    n = sum(1 for s in config.lr_steps if completed_epochs >= s)
    return float(config.lr * config.lr_alpha**n)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr


__all__ = [
    "RowSparseAdam",
    "RowSparseAdamW",
    "RowSparseSGD",
    "build_optimizer",
    "learning_rate",
    "set_learning_rate",
]
