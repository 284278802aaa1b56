"""Saved models: ``model.pt`` + ``hyperparameters.json`` (+ ``metrics.json``) in one folder.

The folder is written atomically (built beside the destination and swapped in). Weights are a
plain ``state_dict`` read back with ``torch.load(weights_only=True)``, so loading a model file
never executes code; the model is rebuilt from its hyperparameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from pharmafl import __version__
from pharmafl.common.errors import DataNotFoundError, ModelError
from pharmafl.common.io import atomic_directory, atomic_write_json
from pharmafl.model.config import TrainConfig
from pharmafl.model.hyperparameters import ModelHyperparameters
from pharmafl.model.multitask import MultiTaskModel

MODEL_FILE = "model.pt"
HYPERPARAMETERS_FILE = "hyperparameters.json"
METRICS_FILE = "metrics.json"


def save_model_dir(
    dest: str | Path,
    model: MultiTaskModel,
    train_config: TrainConfig,
    *,
    metrics: BaseModel | None = None,
    extra: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``dest/`` with the model weights, hyperparameters and (optionally) metrics.

    Parameters
    ----------
    dest : path
        Folder to create or replace atomically.
    model : MultiTaskModel
        Must carry its :class:`ModelConfig`.
    train_config : TrainConfig
    metrics : pydantic model, optional
        Written as ``metrics.json``.
    extra : dict, optional
        Provenance stored in ``hyperparameters.json`` (``extra``).
    files : dict, optional
        Further files (name → bytes) to place in the folder.
    """
    if model.config is None:
        raise ModelError("only models built from a ModelConfig can be saved.")
    hp = ModelHyperparameters(
        pharmafl_version=__version__, model=model.config, train=train_config, extra=extra or {}
    )
    with atomic_directory(dest) as tmp:
        torch.save(model.state_dict(), tmp / MODEL_FILE)
        atomic_write_json(tmp / HYPERPARAMETERS_FILE, hp.model_dump(mode="json"))
        if metrics is not None:
            atomic_write_json(tmp / METRICS_FILE, metrics.model_dump(mode="json"))
        for name, blob in (files or {}).items():
            (tmp / name).write_bytes(blob)
    return Path(dest)


def load_hyperparameters(model_dir: str | Path) -> ModelHyperparameters:
    """Read ``hyperparameters.json`` of a saved model."""
    path = Path(model_dir) / HYPERPARAMETERS_FILE
    if not path.is_file():
        raise DataNotFoundError(
            "model hyperparameters not found.",
            file=path,
            fix="train the model first (`pharmafl baseline PARTNER_DIR`).",
        )
    try:
        return ModelHyperparameters.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ModelError(
            f"invalid hyperparameters file ({exc.error_count()} problems).",
            file=path,
            fix="retrain the model with this pharmafl version.",
        ) from None


def load_model_dir(model_dir: str | Path) -> tuple[MultiTaskModel, ModelHyperparameters]:
    """Rebuild a saved model from its hyperparameters and load its weights.

    Raises
    ------
    DataNotFoundError
        The folder or a file is missing.
    ModelError
        The files are unreadable or do not match each other.
    """
    hp = load_hyperparameters(model_dir)
    weights = Path(model_dir) / MODEL_FILE
    if not weights.is_file():
        raise DataNotFoundError("model weights not found.", file=weights)
    model = MultiTaskModel.from_config(hp.model)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # torch raises several unrelated types
        raise ModelError(
            f"cannot load model weights ({type(exc).__name__}).",
            file=weights,
            fix="retrain the model; the weights do not match its hyperparameters.",
        ) from None
    model.eval()
    return model, hp


__all__ = [
    "HYPERPARAMETERS_FILE",
    "METRICS_FILE",
    "MODEL_FILE",
    "load_hyperparameters",
    "load_model_dir",
    "save_model_dir",
]
