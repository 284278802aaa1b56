"""Optimizers that accept the row-sparse gradient of the sparse input layer.

:class:`RowSparseAdam`, :class:`RowSparseAdamW` and :class:`RowSparseSGD` are
``torch.optim.Adam`` / ``AdamW`` / ``SGD`` (fused CPU kernels where available) whose update is
*exactly* the dense optimizer's — Adam moments decay for every row, weight decay applies to
every row — unlike ``torch.optim.SparseAdam`` ("lazy Adam", TF's LazyAdam), which updates only
the rows seen in the batch and freezes the moments of unseen rows.

How, without a parameter-sized gradient buffer: for a parameter whose gradient is a sparse
COO tensor (rows of the batch's columns), Adam is applied in row chunks of ~32 MB; each chunk's
dense gradient (zeros + the batch rows that fall in it) is built in one reused buffer and handed
to ``torch.optim.adam.adam`` (the fused kernel streams parameters and moments once). SGD
densifies into one persistent buffer instead (simpler; its state is smaller).

A FedProx proximal term ``μ/2 ||w − w_ref||²`` (Li et al., MLSys 2020) can be set with
:meth:`set_proximal`; its gradient ``μ (w − w_ref)`` is added to every row, chunk by chunk.

The learning-rate schedule is SparseChem's step schedule (``MultiStepLR(lr_steps, lr_alpha)``)
as a pure function of the completed epochs (:func:`learning_rate`), so checkpoints need no
scheduler state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.adam import adam as _functional_adam

from pharmafl.common.errors import ConfigError
from pharmafl.model.config import TrainConfig

#: Elements per row chunk of the chunked sparse update (32 MB of float32).
CHUNK_ELEMENTS = 8 * 1024 * 1024


class _RowSparseGradients:
    """Mixin: proximal term and row-sparse gradients around the base optimizer's ``step``."""

    param_groups: list[dict[str, Any]]
    state: Any

    def _extra(self) -> dict[str, Any]:
        if not hasattr(self, "_rowsparse"):
            self._rowsparse: dict[str, Any] = {"prox": None, "buffers": {}}
        return self._rowsparse

    def set_proximal(
        self, mu: float, reference: Sequence[tuple[torch.Tensor, torch.Tensor]] | None
    ) -> None:
        """Add ``μ (p − ref)`` to the gradient of each ``(p, ref)`` at every step (None: off)."""
        self._extra()["prox"] = (
            None
            if not reference or mu <= 0
            else (float(mu), {id(p): (p, ref) for p, ref in reference})
        )

    def _prox(self, p: torch.Tensor) -> tuple[float, torch.Tensor] | None:
        prox = self._extra()["prox"]
        if prox is None or id(p) not in prox[1]:
            return None
        return prox[0], prox[1][id(p)][1]

    def _buffer(self, p: torch.Tensor, rows: int) -> torch.Tensor:
        buffers = self._extra()["buffers"]
        buf = buffers.get(id(p))
        if buf is None or buf.shape[0] < rows:
            buf = buffers[id(p)] = torch.zeros((rows, *p.shape[1:]), dtype=p.dtype)
        return buf

    def _sparse_step(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        raise NotImplementedError  # pragma: no cover

    def step(self, closure: Any = None) -> Any:
        sparse: list[tuple[torch.Tensor, torch.Tensor, dict[str, Any]]] = []
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is not None and g.is_sparse:
                        sparse.append((p, g.coalesce(), group))
                        p.grad = None
                        continue
                    prox = self._prox(p)
                    if prox is not None:
                        mu, ref = prox
                        if g is None:
                            p.grad = (p.detach() - ref).mul_(mu)
                        else:
                            g.add_(p.detach(), alpha=mu).add_(ref, alpha=-mu)
        loss = super().step(closure)  # type: ignore[misc]
        with torch.no_grad():
            for p, g, group in sparse:
                self._sparse_step(p, g, group)
        return loss


class _ChunkedAdam(_RowSparseGradients):
    """The chunked exact Adam/AdamW update for row-sparse gradients."""

    def _sparse_step(self, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros((), dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        n = p.shape[0]
        row_size = max(1, p[0].numel()) if n else 1
        chunk = max(1, min(n, CHUNK_ELEMENTS // row_size))
        rows, values = grad.indices()[0], grad.values()
        bounds = torch.searchsorted(rows, torch.arange(0, n + chunk, chunk)).tolist()
        buf = self._buffer(p, chunk)
        prox = self._prox(p)
        data = p.detach()
        fused = bool(group.get("fused"))
        beta1, beta2 = group["betas"]
        step_after = state["step"]
        for k, a in enumerate(range(0, n, chunk)):
            b = min(a + chunk, n)
            gb = buf[: b - a]
            gb.zero_()
            lo, hi = bounds[k], bounds[k + 1]
            if hi > lo:
                gb.index_copy_(0, rows[lo:hi] - a, values[lo:hi])
            if prox is not None:
                gb.add_(data[a:b], alpha=prox[0]).add_(prox[1][a:b], alpha=-prox[0])
            step_after = state["step"].clone()
            _functional_adam(
                [data[a:b]],
                [gb],
                [state["exp_avg"][a:b]],
                [state["exp_avg_sq"][a:b]],
                [state["max_exp_avg_sq"][a:b]] if group["amsgrad"] else [],
                [step_after],
                foreach=False,
                fused=fused or None,
                decoupled_weight_decay=bool(group.get("decoupled_weight_decay", False)),
                amsgrad=group["amsgrad"],
                beta1=beta1,
                beta2=beta2,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
            )
        state["step"].copy_(step_after)


class RowSparseAdam(_ChunkedAdam, torch.optim.Adam):
    """``torch.optim.Adam`` (L2 weight decay) that also takes row-sparse gradients."""


class RowSparseAdamW(_ChunkedAdam, torch.optim.AdamW):
    """``torch.optim.AdamW`` (decoupled weight decay) that also takes row-sparse gradients."""


class RowSparseSGD(_RowSparseGradients, torch.optim.SGD):
    """``torch.optim.SGD`` that also takes row-sparse gradients (via a dense buffer)."""

    def step(self, closure: Any = None) -> Any:
        touched: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None or not g.is_sparse:
                        continue
                    g = g.coalesce()
                    buf = self._buffer(p, p.shape[0])
                    rows = g.indices()[0]
                    buf.index_copy_(0, rows, g.values())
                    p.grad = buf
                    # The proximal term (added by the mixin) touches every row.
                    touched.append((p, buf, None if self._prox(p) else rows))
        loss = super().step(closure)
        for p, buf, rows in touched:
            if rows is None:
                buf.zero_()
            else:
                buf.index_fill_(0, rows, 0.0)
            p.grad = None
        return loss


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
    "CHUNK_ELEMENTS",
    "RowSparseAdam",
    "RowSparseAdamW",
    "RowSparseSGD",
    "build_optimizer",
    "learning_rate",
    "set_learning_rate",
]
