"""Private heads and their losses (SparseChem ``LastNet``, ``censored_mse_loss``).

A :class:`TaskHead` holds a partner's classification and/or regression output layer. Its
parameters and its regression statistics live under ``heads.<name>.`` and never leave the
partner. Losses follow SparseChem (Arany et al., arXiv:2203.04676; reference §2.2):

- classification: binary cross-entropy per measured label × the task's ``training_weight``;
  unmeasured labels contribute nothing;
- regression: censored MSE — an uncensored value gives ``(pred − y)²``; a censored one
  (``>``: +1, ``<``: −1) only ``relu(censor · (y − pred))²``, i.e. only when the prediction
  lies on the wrong side of the bound; censored entries are weighted by
  ``training_weight × censored_weight``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from pharmafl.model.dropout import SeededDropout


@dataclass
class HeadOutput:
    """Raw outputs of one head.

    Attributes
    ----------
    cls_logits : Tensor, (b, n_cls_tasks) or None
    reg_values : Tensor, (b, n_reg_tasks) or None
        In the normalized target space (see :meth:`TaskHead.denormalize`).
    """

    cls_logits: torch.Tensor | None
    reg_values: torch.Tensor | None


class TaskHead(nn.Module):
    """One partner's outputs over the trunk representation.

    Classification path: ReLU → dropout → linear; regression path: tanh → dropout → linear
    (SparseChem hard-codes these non-linearities).

    Parameters
    ----------
    in_features : int
        Trunk output width.
    n_cls_tasks, n_reg_tasks : int
        Outputs per task type (0 = no such layer).
    dropout : float
        Dropout before the output layers.

    Buffers ``reg_mean`` and ``reg_std`` (``(n_reg_tasks,)``) hold the per-task target
    normalisation fitted on the training rows; :meth:`denormalize` inverts it.

    Shapes: input ``(b, in_features)`` → :class:`HeadOutput`.
    """

    classification: nn.Linear | None
    regression: nn.Linear | None
    reg_mean: torch.Tensor
    reg_std: torch.Tensor

    def __init__(
        self, in_features: int, n_cls_tasks: int, n_reg_tasks: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.n_cls_tasks = int(n_cls_tasks)
        self.n_reg_tasks = int(n_reg_tasks)
        self.dropout = SeededDropout(dropout)
        self.classification = (
            nn.Linear(self.in_features, self.n_cls_tasks) if self.n_cls_tasks else None
        )
        self.regression = (
            nn.Linear(self.in_features, self.n_reg_tasks) if self.n_reg_tasks else None
        )
        self.register_buffer("reg_mean", torch.zeros(self.n_reg_tasks))
        self.register_buffer("reg_std", torch.ones(self.n_reg_tasks))

    def reset_parameters(self) -> None:
        """Re-initialise the output layers (normalisation buffers are kept)."""
        for layer in (self.classification, self.regression):
            if layer is not None:
                layer.reset_parameters()

    def forward(self, h: torch.Tensor) -> HeadOutput:
        cls = reg = None
        if self.classification is not None:
            cls = self.classification(self.dropout(nnf.relu(h)))
        if self.regression is not None:
            reg = self.regression(self.dropout(torch.tanh(h)))
        return HeadOutput(cls_logits=cls, reg_values=reg)

    def set_regression_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store per-task target mean and standard deviation (std > 0)."""
        with torch.no_grad():
            self.reg_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.reg_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def denormalize(self, values: torch.Tensor) -> torch.Tensor:
        """Map normalized regression outputs back to the task's units."""
        return values * self.reg_std + self.reg_mean

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, n_cls_tasks={self.n_cls_tasks}, "
            f"n_reg_tasks={self.n_reg_tasks}"
        )


def classification_loss(
    logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, task_weight: torch.Tensor
) -> torch.Tensor:
    """Summed masked binary cross-entropy.

    Parameters
    ----------
    logits, y, mask : Tensor, (b, t)
        ``y`` 1.0 active / 0.0 inactive; ``mask`` 1.0 at measured labels, else 0.0.
    task_weight : Tensor, (t,)
        SparseChem ``training_weight``.

    Returns
    -------
    Tensor
        Scalar ``Σ mask · w_task · BCE(logit, y)``; unmeasured entries are exactly ignored
        (their ``y`` and ``logit`` values do not matter).
    """
    measured = mask > 0
    # Labels of unmeasured entries are replaced before use, so not even NaN there matters.
    y = torch.where(measured, y, torch.zeros_like(y))
    bce = nnf.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return torch.where(measured, bce * task_weight, torch.zeros_like(bce)).sum()


def censored_mse_loss(
    pred: torch.Tensor,
    y: torch.Tensor,
    censor: torch.Tensor,
    mask: torch.Tensor,
    task_weight: torch.Tensor,
    censored_weight: torch.Tensor,
    *,
    censored: bool = True,
) -> torch.Tensor:
    """Summed censored squared error (SparseChem ``censored_mse_loss``).

    Parameters
    ----------
    pred, y, censor, mask : Tensor, (b, t)
        ``censor`` −1 (``<``: true value below ``y``), 0, +1 (``>``: above ``y``).
    task_weight, censored_weight : Tensor, (t,)
        A censored entry is weighted by ``task_weight × censored_weight``.
    censored : bool
        False: plain squared error for every value (SparseChem ``--censored_loss 0``).

    Returns
    -------
    Tensor
        Scalar sum over measured entries.
    """
    measured = mask > 0
    diff = pred - torch.where(measured, y, pred.detach())
    censor = torch.where(measured, censor, torch.zeros_like(censor))
    if censored:
        err = torch.where(
            censor > 0, nnf.relu(-diff), torch.where(censor < 0, nnf.relu(diff), diff)
        )
    else:
        err = diff
    weight = task_weight * torch.where(censor != 0, censored_weight, torch.ones_like(censor))
    sq = err * err * weight
    return torch.where(measured, sq, torch.zeros_like(sq)).sum()


__all__ = ["HeadOutput", "TaskHead", "censored_mse_loss", "classification_loss"]
