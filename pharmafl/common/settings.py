"""Runtime settings read from the environment (``PHARMAFL_`` prefix).

Only machine-local runtime settings live here; consortium parameters are a shared pydantic
model passed explicitly (no global mutable config, STYLE.md §6).

The public data folder (:func:`data_dir`) is, in this order: ``PHARMAFL_DATA_DIR`` when set;
``../shared/data`` beside the checkout when it exists (the full datasets); else the compact
extract shipped in the repository (``data/extract/``, built by
``scripts/build_data_extract.py``), so the demo and the tests run on a fresh clone.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pharmafl.common.errors import DataNotFoundError

logger = logging.getLogger(__name__)

_CHECKOUT = Path(__file__).resolve().parents[2]
#: The full public datasets, ``../shared/data`` beside the checkout, where a machine has them.
SHARED_DATA_DIR = _CHECKOUT.parent / "shared" / "data"
#: The compact extract shipped in the repository: the fallback when SHARED_DATA_DIR is absent.
EXTRACT_DATA_DIR = _CHECKOUT / "data" / "extract"


class RuntimeSettings(BaseSettings):
    """Machine-local settings; every field can be set as ``PHARMAFL_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PHARMAFL_", extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Folder with the public datasets (fsmol/, tox21/, adme/). Unset: "
        "../shared/data beside the checkout when it exists, else the extract shipped in "
        "data/extract/.",
    )
    workers: int = Field(default=0, ge=0, le=512, description="Worker processes; 0 = all cores.")
    retry_window_s: float = Field(
        default=120.0,
        ge=0.0,
        le=3600.0,
        description="How long an unreachable exchange store or Prefect API is retried (with "
        "backoff) before the run fails with a resumable error.",
    )

    parallel_partners: int | None = Field(
        default=None,
        ge=0,
        le=1024,
        description="Embedded launcher: how many partners train at once in the operator's "
        "process (unset: half the cores, at least 1; 0 = all; 1 = one after another). Each "
        "training partner holds its model and optimizer in memory, and on 2 cores training "
        "at once gained little (benchmarks/rounds.py); the result is the same for any value.",
    )

    @field_validator("data_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


def get_settings() -> RuntimeSettings:
    """Return the settings as the environment gives them now."""
    return RuntimeSettings()


@functools.cache
def _announce(base: Path, why: str) -> None:
    """Say once per process which public data folder is read, and why."""
    logger.info("public data: %s (%s)", base, why)


def data_dir(subdir: str | None = None) -> Path:
    """Return the public data folder (or one of its subfolders), checking that it exists.

    ``PHARMAFL_DATA_DIR`` when set; else ``../shared/data`` beside the checkout when it
    exists; else the extract shipped in ``data/extract/``. The folder chosen is logged (INFO,
    once per process).

    Raises
    ------
    DataNotFoundError
        With a message saying where it looked and how to point pharmafl elsewhere.
    """
    configured = get_settings().data_dir
    if configured is not None:
        base, why = configured, "PHARMAFL_DATA_DIR"
        if not base.is_dir():
            raise DataNotFoundError(
                f"public data folder {base} (PHARMAFL_DATA_DIR) does not exist.",
                fix="set PHARMAFL_DATA_DIR to the folder holding fsmol/, tox21/ and adme/, or "
                f"unset it to read {SHARED_DATA_DIR} (or, without it, the shipped extract "
                f"{EXTRACT_DATA_DIR}).",
            )
    elif SHARED_DATA_DIR.is_dir():
        base, why = SHARED_DATA_DIR, "../shared/data beside the checkout"
    elif EXTRACT_DATA_DIR.is_dir():
        base, why = EXTRACT_DATA_DIR, f"shipped extract; {SHARED_DATA_DIR} does not exist"
    else:
        raise DataNotFoundError(
            f"no public data folder: neither {SHARED_DATA_DIR} nor the shipped extract "
            f"{EXTRACT_DATA_DIR} exists.",
            fix="place the shared data at ../shared/data beside the checkout, restore the "
            "extract (git checkout data/extract, or scripts/build_data_extract.py), or set "
            "PHARMAFL_DATA_DIR to the folder holding fsmol/, tox21/ and adme/.",
        )
    _announce(base, why)
    path = base / subdir if subdir else base
    if not path.exists():
        raise DataNotFoundError(
            f"public data folder {path} does not exist ({why}).",
            fix="set PHARMAFL_DATA_DIR to a folder holding fsmol/, tox21/ and adme/ (the "
            f"shipped extract {EXTRACT_DATA_DIR} has all three).",
        )
    return path


__all__ = ["EXTRACT_DATA_DIR", "SHARED_DATA_DIR", "RuntimeSettings", "data_dir", "get_settings"]
