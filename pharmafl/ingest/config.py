"""The partner config: how a company's own export files map onto T0/T1/T2.

A partner folder holds a ``partner.toml`` (or ``partner.yaml``) that lists its structure,
activity and (optionally) assay files, each with a format, a column mapping onto the T0/T1/T2
names, units and qualifier handling. The config is a pydantic model, so its JSON Schema is in
``schemas/partner_config.schema.json`` and every mistake is reported with the file, the field
and a fix. A partner coming from MELLODDY names its TUNER input files instead of
sources (``[melloddy]`` with ``t0``, ``t1``, ``t2``: :class:`MelloddyInputs`); the
``pharmafl partner inspect`` command writes a first config from the export files, and
``docs/partner-guide.md`` shows one for each common shape. Example (TOML)::

    name = "alpha"

    [[structures]]
    path = "raw/compounds.csv"
    columns = { input_compound_id = "Compound ID", smiles = "SMILES" }

    [[activities]]
    path = "raw/ic50.csv"
    unit = "nM"

    [activities.columns]
    input_compound_id = "Compound ID"
    input_assay_id = "Assay"
    standard_qualifier = "Relation"
    standard_value = "IC50 (nM)"

    [assay_defaults]
    assay_type = "OTHER"
"""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pharmafl.common.errors import ConfigError
from pharmafl.ingest.sources import (
    SUFFIX_FORMATS,
    ActivitySource,
    AssayDefaults,
    AssaySource,
    FileFormat,
    StructureSource,
    infer_format,
    known_encoding,
)

#: Names of partner config files looked for in a partner folder, in order.
CONFIG_FILE_NAMES: tuple[str, ...] = ("partner.toml", "partner.yaml", "partner.yml")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: T0 columns of MELLODDY-TUNER year 3 that pharmafl does not use.
MELLODDY_UNUSED_T0: tuple[str, ...] = ("parent_assay_id",)


_PathText = Annotated[str, Field(min_length=1)]


def _paths(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class MelloddyInputs(_Model):
    """MELLODDY-TUNER year-3 input files (T0 assays, T1 activities, T2 structures), read
    as TUNER reads them: comma-separated, standard column names, T1 values stored as given
    (pXC50 with qualifiers already mirrored, ±1 for binary assays), extra columns such as
    ``parent_assay_id`` ignored, integer ids kept."""

    t0: _PathText | list[_PathText] = Field(
        min_length=1, description="T0 file (assays), or a list (TUNER year 3 takes several)."
    )
    t1: _PathText | list[_PathText] = Field(
        min_length=1, description="T1 file (activities), or a list of them."
    )
    t2: str = Field(min_length=1, description="T2 file (structures).")
    encoding: str | None = Field(None, description="Text encoding of the files (default UTF-8).")

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str | None) -> str | None:
        known_encoding(value)
        return value

    def structure_sources(self) -> list[StructureSource]:
        """The T2 file as a structure source."""
        return [StructureSource(**self._common(self.t2))]

    def activity_sources(self) -> list[ActivitySource]:
        """The T1 files as activity sources (values kept as stored)."""
        return [
            ActivitySource(**self._common(p), unit="none", qualifier_in_value=False)
            for p in _paths(self.t1)
        ]

    def assay_sources(self) -> list[AssaySource]:
        """The T0 files as assay sources."""
        return [
            AssaySource(**self._common(p), ignore_columns=list(MELLODDY_UNUSED_T0))
            for p in _paths(self.t0)
        ]

    def _common(self, path: str) -> dict[str, Any]:
        # TUNER reads every file with pandas' defaults and a non-strict schema.
        return {"path": path, "format": "csv", "encoding": self.encoding, "extra_columns": "ignore"}


class PartnerConfig(_Model):
    """Everything pharmafl needs to read one partner's own exports."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Partner name (no spaces)."
    )
    melloddy: MelloddyInputs | None = Field(
        None, description="MELLODDY-TUNER T0/T1/T2 files, taken as they are (a preset)."
    )
    structures: list[StructureSource] = Field(
        default_factory=list, description="Structure files (besides melloddy.t2)."
    )
    activities: list[ActivitySource] = Field(
        default_factory=list, description="Activity files (besides melloddy.t1)."
    )
    assays: list[AssaySource] = Field(
        default_factory=list, description="Assay (T0) files (besides melloddy.t0)."
    )
    assay_defaults: AssayDefaults | None = Field(
        None, description="T0 values for assays that no assay file lists."
    )
    consortium_file: str = Field(
        "consortium.json", description="Consortium parameters file, relative to the folder."
    )
    key_file: str | None = Field(
        "key.json",
        description="Consortium key file (owner-only permissions), relative to the folder; "
        "null to read PHARMAFL_CONSORTIUM_KEY instead.",
    )

    @model_validator(mode="after")
    def _assays_defined(self) -> PartnerConfig:
        for what, sources in (
            ("structures", self.structure_sources()),
            ("activities", self.activity_sources()),
        ):
            if not sources:
                raise ValueError(f"no {what} files: add [[{what}]] sources or a [melloddy] table")
        if not self.assay_sources() and self.assay_defaults is None:
            missing = [i for i, a in enumerate(self.activities) if a.assay_defaults is None]
            if missing:
                raise ValueError(
                    f"activities{missing} have no assay description: add [[assays]] files, "
                    "an [assay_defaults] table or assay_defaults on those sources"
                )
        return self

    def structure_sources(self) -> list[StructureSource]:
        """Every structure source: the preset's T2 first, then ``structures``."""
        preset = self.melloddy.structure_sources() if self.melloddy else []
        return [*preset, *self.structures]

    def activity_sources(self) -> list[ActivitySource]:
        """Every activity source: the preset's T1 files first, then ``activities``."""
        preset = self.melloddy.activity_sources() if self.melloddy else []
        return [*preset, *self.activities]

    def assay_sources(self) -> list[AssaySource]:
        """Every assay source: the preset's T0 files first, then ``assays``."""
        preset = self.melloddy.assay_sources() if self.melloddy else []
        return [*preset, *self.assays]

    def parameters_path(self, partner_dir: Path) -> Path:
        """Absolute path of the consortium parameters file."""
        p = Path(self.consortium_file)
        return p if p.is_absolute() else Path(partner_dir) / p

    def key_path(self, partner_dir: Path) -> Path | None:
        """Absolute path of the key file, or None to use the environment variable."""
        if self.key_file is None:
            return None
        p = Path(self.key_file)
        return p if p.is_absolute() else Path(partner_dir) / p


def _field_names() -> list[str]:
    names: set[str] = set()
    for model in (
        PartnerConfig,
        StructureSource,
        ActivitySource,
        AssaySource,
        AssayDefaults,
        MelloddyInputs,
    ):
        names.update(model.model_fields)
    return sorted(names)


def _describe(exc: ValidationError) -> tuple[str, str]:
    errors = exc.errors()
    first = errors[0]
    loc = ""
    for part in first["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = str(first["msg"]).removeprefix("Value error, ")
    fix = "compare with schemas/partner_config.schema.json."
    if first["type"] == "extra_forbidden":
        field = str(first["loc"][-1])
        msg = f"unknown field {field!r}"
        close = difflib.get_close_matches(field, _field_names(), n=1)
        if close:
            fix = f"did you mean {close[0]!r}? " + fix
    more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
    where = f"field {loc!r}: " if loc else ""
    return f"invalid partner config, {where}{msg}{more}.", fix


def parse_partner_config(doc: Any, *, source: str | Path = "<config>") -> PartnerConfig:
    """Validate a parsed config document, raising :class:`ConfigError` on any problem."""
    if not isinstance(doc, dict):
        raise ConfigError(
            "the partner config is not a table of settings.",
            file=source,
            fix="start from an example in docs/partner-guide.md.",
        )
    try:
        return PartnerConfig.model_validate(doc)
    except ValidationError as exc:
        message, fix = _describe(exc)
        raise ConfigError(message, file=source, fix=fix) from None


def load_partner_config(path: str | Path) -> PartnerConfig:
    """Read and check a partner config (TOML, or YAML for ``.yaml``/``.yml``; JSON also).

    Raises
    ------
    ConfigError
        Naming the file, the field and a fix when the file is missing, unparsable or invalid.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            "partner config not found.",
            file=p,
            fix=f"create {CONFIG_FILE_NAMES[0]} in the partner folder: `pharmafl partner "
            "inspect FILE ... --out PARTNER_DIR/partner.toml` writes a first one from your "
            "export files (docs/partner-guide.md).",
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("partner config is not UTF-8 text.", file=p) from None
    try:
        if p.suffix in (".yaml", ".yml"):
            doc = yaml.safe_load(text)
        elif p.suffix == ".json":
            doc = json.loads(text)
        else:
            doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}.", file=p) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{line}.", file=p) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON at line {exc.lineno}.", file=p) from None
    return parse_partner_config(doc, source=p)


def partner_config_path(partner_dir: str | Path) -> Path:
    """Return the partner config file in ``partner_dir`` (exactly one must exist).

    Raises
    ------
    ConfigError
        If there is none, or more than one (``partner.toml`` and ``partner.yaml``).
    """
    d = Path(partner_dir)
    found = [d / n for n in CONFIG_FILE_NAMES if (d / n).is_file()]
    if not found:
        raise ConfigError(
            f"no partner config ({', '.join(CONFIG_FILE_NAMES)}) in the partner folder.",
            file=d,
            fix="write one that maps your export files onto T0/T1/T2: `pharmafl partner "
            "inspect FILE ... --out PARTNER_DIR/partner.toml` drafts it "
            "(docs/partner-guide.md).",
        )
    if len(found) > 1:
        raise ConfigError(
            f"several partner configs found ({', '.join(f.name for f in found)}).",
            file=d,
            fix="keep exactly one.",
        )
    return found[0]


def find_partner_config(partner_dir: str | Path) -> PartnerConfig:
    """Find and load the partner config of ``partner_dir`` (see :func:`partner_config_path`)."""
    return load_partner_config(partner_config_path(partner_dir))


SCHEMA_MODELS = {"partner_config": PartnerConfig}

__all__ = [
    "CONFIG_FILE_NAMES",
    "SCHEMA_MODELS",
    "SUFFIX_FORMATS",
    "ActivitySource",
    "AssayDefaults",
    "AssaySource",
    "FileFormat",
    "MELLODDY_UNUSED_T0",
    "MelloddyInputs",
    "PartnerConfig",
    "StructureSource",
    "find_partner_config",
    "infer_format",
    "load_partner_config",
    "parse_partner_config",
    "partner_config_path",
]
