"""``hyperparameters.json``: everything needed to rebuild and re-train a saved model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.model.config import ModelConfig, TrainConfig


class ModelHyperparameters(BaseModel):
    """``hyperparameters.json``: everything needed to rebuild and re-train a saved model."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format: Literal["pharmafl.model_hyperparameters/1"] = "pharmafl.model_hyperparameters/1"
    pharmafl_version: str
    model: ModelConfig
    train: TrainConfig
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Free-form provenance (data source, counts)."
    )


__all__ = ["ModelHyperparameters"]
