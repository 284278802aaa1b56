"""Consortium parameters: shared, identical at every partner (MELLODDY ``parameters.json``).

Defaults follow MELLODDY-TUNER 3.0.2 (see ``../shared/reference/melloddy-stack.md`` §1.13).
The consortium key is *not* part of these parameters; it is loaded separately
(:mod:`pharmafl.common.secret`).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pharmafl.common.errors import ConfigError
from pharmafl.common.io import canonical_json, sha256_bytes

AssayType = Literal["ADME", "NON-CATALOG-PANEL", "CATALOG-PANEL", "OTHER", "AUX_HTS"]
ASSAY_TYPES: tuple[str, ...] = ("ADME", "NON-CATALOG-PANEL", "CATALOG-PANEL", "OTHER", "AUX_HTS")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StandardizationParams(_Frozen):
    """RDKit standardization (TUNER §1.5)."""

    max_num_tautomers: int = Field(256, ge=1, le=10_000, description="Tautomer enumeration cap.")
    max_num_atoms: int = Field(
        100, ge=2, le=10_000, description="Reject at >= this many heavy atoms."
    )
    include_stereoinfo: bool = Field(False, description="Keep stereochemistry.")


class FingerprintParams(_Frozen):
    """Hashed Morgan fingerprint (TUNER §1.6)."""

    radius: int = Field(3, ge=1, le=6, description="Morgan radius (3 = ECFP6-like).")
    fold_size: int = Field(32_000, ge=64, le=1 << 24, description="Folded bit count.")
    binarized: bool = Field(True, description="True: 0/1 bits; False: counts.")


class FoldingParams(_Frozen):
    """Keyed scaffold folds (TUNER §1.8)."""

    nfolds: int = Field(5, ge=2, le=100, description="Number of folds.")
    nrings_target: int = Field(3, ge=1, le=10, description="Scaffold-network ring target.")


class Range(_Frozen):
    """A closed numeric range."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min > self.max:
            raise ValueError(f"range min {self.min} > max {self.max}")
        return self


def _cred() -> dict[str, Range]:
    dr = Range(min=3.0, max=10.0)
    return {
        "NON-CATALOG-PANEL": dr,
        "CATALOG-PANEL": dr,
        "OTHER": dr,
        "AUX_HTS": Range(min=-10.0, max=10.0),
        "ADME": Range(min=-1e12, max=1e12),
    }


class ClassificationQuorum(_Frozen):
    """Minimum actives/inactives in total (training quorum)."""

    num_active_total: int = Field(25, ge=0)
    num_inactive_total: int = Field(25, ge=0)


class RegressionQuorum(_Frozen):
    """Minimum measurements (training quorum)."""

    num_total: int = Field(50, ge=0)
    num_uncensored_total: int = Field(25, ge=0)


class EvaluationQuorum(_Frozen):
    """Per-fold minimums for a task to count in aggregated metrics."""

    num_active_fold_min: int = Field(10, ge=0)
    num_inactive_fold_min: int = Field(10, ge=0)
    num_uncensored_fold_min: int = Field(25, ge=0, description="Regression (TUNER: 25).")
    num_uncensored_total: int = Field(25, ge=0, description="Regression (TUNER: 25).")


class TaskParams(_Frozen):
    """Activities → tasks (TUNER §1.9–1.12)."""

    credibility_range: dict[str, Range] = Field(default_factory=_cred)
    std_min: float = Field(1e-12, ge=0, description="Drop assays whose min fold std <= this.")
    adaptive_thresholds: tuple[float, ...] = Field(
        (8.0, 7.0, 6.0, 5.0, 4.7, 4.4), description="Fixed-adaptive pXC50 ladder."
    )
    adaptive_min_active_fraction: float = Field(0.2, ge=0, le=1)
    classification_quorum: dict[str, ClassificationQuorum] = Field(
        default_factory=lambda: (
            {t: ClassificationQuorum() for t in ASSAY_TYPES}
            | {"AUX_HTS": ClassificationQuorum(num_active_total=10, num_inactive_total=10_000)}
        )
    )
    regression_quorum: dict[str, RegressionQuorum] = Field(
        default_factory=lambda: {t: RegressionQuorum() for t in ASSAY_TYPES}
    )
    evaluation_quorum: EvaluationQuorum = Field(default_factory=EvaluationQuorum)
    catalog_num_total: int = Field(
        400, ge=0, description="CATALOG-PANEL training quorum: actives + inactives (TUNER)."
    )
    initial_task_weights: dict[str, float] = Field(
        default_factory=lambda: {t: 1.0 for t in ASSAY_TYPES} | {"AUX_HTS": 0.1}
    )
    global_thresholds: dict[str, float] = Field(default_factory=lambda: {"AUX_HTS": 3.0})
    censored_knock_in_barrier: float = Field(0.05, gt=0, lt=1, description="b in b(1-f)/(f(1-b)).")
    regression_min_eval_std: float = Field(0.5, ge=0, description="Non-ADME eval std filter.")
    aux_sandwich: bool = Field(True, description="Add ±0.5 auxiliary thresholds (TUNER).")


class ConsortiumParameters(_Frozen):
    """Everything every partner must share to produce compatible matrices."""

    consortium_name: str = Field("pharmafl-consortium", min_length=1, max_length=200)
    standardization: StandardizationParams = Field(default_factory=StandardizationParams)
    fingerprint: FingerprintParams = Field(default_factory=FingerprintParams)
    folding: FoldingParams = Field(default_factory=FoldingParams)
    tasks: TaskParams = Field(default_factory=TaskParams)
    reference_hash: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="Published consistency hash; a partner whose hash differs stops.",
    )

    def parameter_hash(self) -> str:
        """SHA-256 of the canonical JSON of the parameters, excluding ``reference_hash``."""
        doc = self.model_dump(mode="json", exclude={"reference_hash"})
        return sha256_bytes(canonical_json(doc))


def load_consortium_parameters(path: str | Path) -> ConsortiumParameters:
    """Read consortium parameters from JSON, TOML or YAML, with a clear error on any problem."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            "consortium parameters file not found.",
            file=p,
            fix="copy the consortium's parameters file (consortium.json) into the partner folder.",
        )
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            doc = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot parse parameters: {exc}", file=p) from None
    try:
        return ConsortiumParameters.model_validate(doc or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"invalid consortium parameter {loc!r}: {first['msg']}.",
            file=p,
            fix="compare with schemas/consortium_parameters.schema.json.",
        ) from None


SCHEMA_MODELS = {"consortium_parameters": ConsortiumParameters}

__all__ = [
    "ASSAY_TYPES",
    "SCHEMA_MODELS",
    "AssayType",
    "ClassificationQuorum",
    "ConsortiumParameters",
    "EvaluationQuorum",
    "FingerprintParams",
    "FoldingParams",
    "Range",
    "RegressionQuorum",
    "StandardizationParams",
    "TaskParams",
    "load_consortium_parameters",
]
