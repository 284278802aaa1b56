"""The shared trunk's configuration: what a consortium agrees on, so that every partner builds
the same trunk and trunk parameters line up by name.

Torch-free (the operator validates plans and specs without torch); the modules that build a
trunk from it live in ``pharmafl.model``. Defaults follow SparseChem 1.0.0's ``train.py``
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


__all__ = ["GraphTrunkConfig", "SparseTrunkConfig", "TrunkConfig"]
