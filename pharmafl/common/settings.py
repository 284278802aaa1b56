"""Runtime settings read from the environment (``PHARMAFL_`` prefix).

Only machine-local runtime settings live here; consortium parameters are a shared pydantic
model passed explicitly (no global mutable config, STYLE.md §6).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pharmafl.common.errors import DataNotFoundError

_DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"


class RuntimeSettings(BaseSettings):
    """Machine-local settings; every field can be set as ``PHARMAFL_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PHARMAFL_", extra="ignore")

    data_dir: Path = Field(
        default=_DEFAULT_DATA_DIR,
        description="Folder with the public datasets (fsmol/, tox21/, adme/).",
    )
    workers: int = Field(default=0, ge=0, le=512, description="Worker processes; 0 = all cores.")


def get_settings() -> RuntimeSettings:
    """Return the settings as the environment gives them now."""
    return RuntimeSettings()


def data_dir(subdir: str | None = None) -> Path:
    """Return the public data folder (or one of its subfolders), checking that it exists.

    Raises
    ------
    DataNotFoundError
        With a message saying where it looked and how to point pharmafl elsewhere.
    """
    base = get_settings().data_dir
    path = base / subdir if subdir else base
    if not path.exists():
        raise DataNotFoundError(
            f"public data folder {path} does not exist.",
            fix="place the shared data at ../shared/data beside the checkout or set "
            "PHARMAFL_DATA_DIR to the folder holding fsmol/, tox21/ and adme/.",
        )
    return path


__all__ = ["RuntimeSettings", "data_dir", "get_settings"]
