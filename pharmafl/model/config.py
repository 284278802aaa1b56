"""Configuration models of the multi-task model and its training (shared documents).

The trunk configuration is what a consortium agrees on (every partner builds the same trunk,
so trunk parameters line up by name); head configurations are private to each partner (their
sizes reveal how many tasks a partner has). Defaults follow SparseChem 1.0.0's ``train.py``
(``../shared/reference/melloddy-stack.md`` §2.1–2.4; Arany et al., arXiv:2203.04676, 2022).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class SparseTrunkConfig(_Config):
    """SparseChem-like trunk: sparse linear over the fingerprint bits, then dense layers.

    The trunk output is the last hidden layer *before* its non-linearity (SparseChem's
    convention); heads apply the non-linearity and dropout.
    """

    kind: Literal["sparse"] = Field("sparse", description="Trunk family (registry key).")
    input_size: int = Field(
        32_000, ge=1, le=1 << 26, description="Number of input features (fingerprint fold size)."
    )
    hidden_sizes: tuple[int, ...] = Field(
        (2000,), min_length=1, description="Width of each hidden layer; the first is sparse."
    )
    dropouts: tuple[float, ...] | None = Field(
        None,
        description="Dropout per hidden layer (SparseChem --dropouts_trunk). Layer i>0 applies "
        "dropouts[i-1] before its linear map; the last one is used by the heads. "
        "None = 0.0 everywhere.",
    )
    non_linearity: Literal["relu", "tanh"] = Field("relu", description="Between hidden layers.")
    input_transform: Literal["none", "binarize", "log1p"] = Field(
        "binarize", description="Applied to X values before the first layer."
    )

    @model_validator(mode="after")
    def _dropouts_match(self) -> SparseTrunkConfig:
        if self.dropouts is not None:
            if len(self.dropouts) != len(self.hidden_sizes):
                raise ValueError(
                    f"dropouts has {len(self.dropouts)} values, hidden_sizes "
                    f"{len(self.hidden_sizes)}; give one dropout per hidden layer"
                )
            if any(not 0.0 <= d < 1.0 for d in self.dropouts):
                raise ValueError("every dropout must be in [0, 1)")
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError("hidden sizes must be positive")
        return self

    @property
    def output_size(self) -> int:
        """Width of the trunk output."""
        return self.hidden_sizes[-1]

    @property
    def last_dropout(self) -> float:
        """Dropout the heads apply by default (SparseChem: the last trunk dropout)."""
        return self.dropouts[-1] if self.dropouts else 0.0


class GraphTrunkConfig(_Config):
    """Message-passing trunk over the molecular graphs of preparation (``graphs.npz``).

    Categorical atom and bond features are embedded (one embedding table per column, summed);
    ``conv`` picks GINE (Hu et al., ICLR 2020) or AttentiveFP (Xiong et al., J. Med. Chem.
    2020) from torch-geometric. The output is a graph embedding of ``hidden_size``.
    """

    kind: Literal["graph"] = Field("graph", description="Trunk family (registry key).")
    conv: Literal["gine", "attentivefp"] = Field("gine", description="Message-passing layer.")
    atom_cardinalities: tuple[int, ...] = Field(
        (15, 8, 6, 6, 7, 2, 2),
        min_length=1,
        description="Categories per atom feature column (pharmafl.chem GraphVocabulary).",
    )
    bond_cardinalities: tuple[int, ...] = Field(
        (5, 2, 2), min_length=1, description="Categories per bond feature column."
    )
    hidden_size: int = Field(256, ge=4, le=8192, description="Node and graph embedding width.")
    num_layers: int = Field(4, ge=1, le=32, description="Message-passing layers.")
    dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout inside the trunk.")
    head_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Default head dropout.")
    pooling: Literal["sum", "mean", "max"] = Field("sum", description="GINE graph readout.")
    norm: Literal["batch", "layer"] = Field(
        "batch",
        description="Normalisation of node states and of the pooled graph embedding: batch "
        "(across molecules; running statistics are trunk buffers) or layer (per molecule; "
        "learns far more slowly, see pharmafl.model.trunks.GraphTrunk).",
    )
    num_timesteps: int = Field(2, ge=1, le=16, description="AttentiveFP readout steps.")

    @model_validator(mode="after")
    def _cardinalities_positive(self) -> GraphTrunkConfig:
        if any(c < 1 for c in (*self.atom_cardinalities, *self.bond_cardinalities)):
            raise ValueError("cardinalities must be positive")
        return self

    @property
    def output_size(self) -> int:
        """Width of the trunk output."""
        return self.hidden_size

    @property
    def last_dropout(self) -> float:
        """Dropout the heads apply by default."""
        return self.head_dropout


TrunkConfig = Annotated[SparseTrunkConfig | GraphTrunkConfig, Field(discriminator="kind")]


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
        None, ge=1, description="Stop after this many evaluations without improvement."
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
