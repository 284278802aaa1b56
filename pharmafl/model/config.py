"""Configuration models of the multi-task model and its training (shared documents).

The trunk configuration is what a consortium agrees on (every partner builds the same trunk,
so trunk parameters line up by name); head configurations are private to each partner (their
sizes reveal how many tasks a partner has). Defaults follow SparseChem 1.0.0's ``train.py``
(``../shared/reference/melloddy-stack.md`` §2.1–2.4; Arany et al., arXiv:2203.04676, 2022).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pharmafl.contract.trunk_config import GraphTrunkConfig, SparseTrunkConfig, TrunkConfig


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class HeadConfig(_Config):
    """One private head: a classification and/or a regression output layer over the trunk.

    SparseChem's heads: non-linearity (ReLU for classification, tanh for regression), dropout,
    linear map to one output per task.
    """

    n_cls_tasks: int = Field(0, ge=0, le=10_000_000, description="Classification outputs.")
    n_reg_tasks: int = Field(0, ge=0, le=10_000_000, description="Regression outputs.")
    dropout: float | None = Field(
        None, ge=0.0, lt=1.0, description="None = the trunk's last dropout (SparseChem)."
    )

    @model_validator(mode="after")
    def _has_outputs(self) -> HeadConfig:
        if self.n_cls_tasks == 0 and self.n_reg_tasks == 0:
            raise ValueError("a head needs at least one classification or regression task")
        return self


class ModelConfig(_Config):
    """A whole model: one shared trunk and named private heads (``"local"`` by default)."""

    trunk: TrunkConfig = Field(default_factory=SparseTrunkConfig)
    heads: dict[str, HeadConfig] = Field(..., min_length=1, description="Head name → head.")

    @model_validator(mode="after")
    def _head_names(self) -> ModelConfig:
        for name in self.heads:
            if not name.isidentifier():
                raise ValueError(f"head name {name!r} must be a Python identifier")
        return self


class TrainConfig(_Config):
    """Local training (SparseChem ``train.py`` options, same defaults where they exist)."""

    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seeds batch order and dropout.")
    epochs: int = Field(20, ge=0, le=100_000, description="Maximum epochs.")
    batch_ratio: float = Field(
        0.02, gt=0.0, le=1.0, description="Batch size as a fraction of training rows."
    )
    batch_size: int | None = Field(
        None, ge=1, le=10_000_000, description="Fixed batch size (overrides batch_ratio)."
    )
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="Optimizer.")
    lr: float = Field(1e-3, gt=0.0, le=100.0, description="Learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, le=10.0, description="Weight decay.")
    momentum: float = Field(0.0, ge=0.0, lt=1.0, description="SGD momentum.")
    lr_steps: tuple[int, ...] = Field(
        (10,), description="Epochs after which the learning rate is multiplied by lr_alpha."
    )
    lr_alpha: float = Field(0.3, gt=0.0, le=1.0, description="Step-LR factor (gamma).")
    normalize_loss: float | None = Field(
        None, gt=0.0, description="Divide the summed weighted loss by this (None: batch size)."
    )
    regression_weight: float = Field(
        0.5, ge=0.0, le=1.0, description="Hybrid balance: cls × 2(1−w), reg × 2w (SparseChem)."
    )
    censored_loss: bool = Field(True, description="Censored MSE (False: plain MSE).")
    normalize_regression: bool = Field(
        True, description="Standardize regression targets per task over the training rows."
    )
    fold_va: int | None = Field(1, ge=0, description="Validation fold (None: no validation).")
    fold_te: int | None = Field(0, ge=0, description="Test fold, never trained on or used.")
    eval_every: int = Field(1, ge=0, description="Evaluate every N epochs (0: only at the end).")
    early_stopping_patience: int | None = Field(
        3,
        ge=1,
        description="Stop after this many evaluations without validation improvement and "
        "restore the best epoch (None: train every epoch and keep the last). On by default: "
        "small partners' validation peaks after a few epochs.",
    )
    selection_metric: Literal["auto", "roc_auc", "auc_pr", "rmse", "loss"] = Field(
        "auto", description="Validation metric for model selection (auto: roc_auc, else rmse)."
    )
    num_threads: int | None = Field(None, ge=1, le=512, description="torch threads.")
    eval_batch_size: int = Field(4000, ge=1, description="Rows per prediction batch.")

    @model_validator(mode="after")
    def _folds_differ(self) -> TrainConfig:
        if self.fold_va is not None and self.fold_va == self.fold_te:
            raise ValueError("fold_va and fold_te must differ")
        if list(self.lr_steps) != sorted(self.lr_steps) or any(s < 1 for s in self.lr_steps):
            raise ValueError("lr_steps must be positive and increasing")
        return self


__all__ = [
    "GraphTrunkConfig",
    "HeadConfig",
    "ModelConfig",
    "SparseTrunkConfig",
    "TrainConfig",
    "TrunkConfig",
]
