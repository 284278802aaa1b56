"""The partner config: how a company's own export files map onto T0/T1/T2.

A partner folder holds a ``partner.toml`` (or ``partner.yaml``) that lists its structure,
activity and (optionally) assay files, each with a format, a column mapping onto the T0/T1/T2
names, units and qualifier handling. The config is a pydantic model, so its JSON Schema is in
``schemas/partner_config.schema.json`` and every mistake is reported with the file, the field
and a fix. Example (TOML)::

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
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pharmafl.common.errors import ConfigError, IngestError
from pharmafl.common.params import AssayType
from pharmafl.ingest.models import T0_COLUMNS, T1_COLUMNS, T2_COLUMNS
from pharmafl.ingest.sdf import SDF_MOLBLOCK, SDF_TITLE
from pharmafl.ingest.units import resolve_unit

FileFormat = Literal["csv", "tsv", "parquet", "sdf"]

#: File name suffixes and the format they imply (compressed text is read transparently).
SUFFIX_FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".tab": "tsv",
    ".txt": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".sdf": "sdf",
    ".sd": "sdf",
    ".sdf.gz": "sdf",
}

#: Names of partner config files looked for in a partner folder, in order.
CONFIG_FILE_NAMES: tuple[str, ...] = ("partner.toml", "partner.yaml", "partner.yml")


def infer_format(path: str | Path) -> FileFormat | None:
    """Return the format implied by a file name's suffix, or None if it implies none."""
    name = Path(path).name.lower()
    for suffix in sorted(SUFFIX_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIX_FORMATS[suffix]
    return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Source(_Model):
    """Fields shared by every source file."""

    path: str = Field(
        min_length=1, description="File path, relative to the partner folder (or absolute)."
    )
    format: FileFormat | None = Field(
        None, description="csv, tsv, parquet or sdf; inferred from the file suffix if absent."
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Map from standard column name (T0/T1/T2) to the column in this file; "
        "unmapped names are looked up under their standard name.",
    )
    ignore_columns: list[str] = Field(
        default_factory=list, description="Columns of the file that are known and not used."
    )
    extra_columns: Literal["error", "ignore"] = Field(
        "error",
        description="What to do with columns that are neither mapped nor ignored: 'error' "
        "(default, catches a wrong file or mapping) or 'ignore'.",
    )

    _targets: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _check_source(self) -> _Source:
        if self.format is None and infer_format(self.path) is None:
            raise ValueError(
                f"cannot infer the format of {self.path!r} from its suffix; "
                "set format = csv, tsv, parquet or sdf"
            )
        unknown = sorted(set(self.columns) - set(self._targets))
        if unknown:
            raise ValueError(
                f"columns maps unknown standard name(s) {unknown}; "
                f"valid names here: {list(self._targets)}"
            )
        return self

    @property
    def file_format(self) -> FileFormat:
        """The declared or inferred format."""
        fmt = self.format or infer_format(self.path)
        assert fmt is not None  # checked by the validator
        return fmt

    def column(self, target: str) -> str:
        """The file's column for a standard name (the name itself when unmapped)."""
        return self.columns.get(target, target)

    def resolve(self, partner_dir: Path) -> Path:
        """The source's absolute path."""
        p = Path(self.path)
        return p if p.is_absolute() else partner_dir / p


class StructureSource(_Source):
    """A file with compound structures (T2): one id and one structure per row or record.

    For SDF files the id may be the title line (``input_compound_id = "_Name"``, the default
    for SDF) or a property; the structure is read from the molblock unless ``smiles`` is
    mapped to a property.
    """

    _targets: ClassVar[tuple[str, ...]] = T2_COLUMNS

    allow_repeated_ids: bool = Field(
        False,
        description="Set when the file repeats each compound on several rows (e.g. one row "
        "per measurement); repeats must carry the identical structure.",
    )

    def id_column(self) -> str:
        """Column (or SDF pseudo-column) holding the compound id."""
        default = SDF_TITLE if self.file_format == "sdf" else "input_compound_id"
        return self.columns.get("input_compound_id", default)

    def smiles_column(self) -> str:
        """Column holding the structure (``_MolBlock`` for an SDF without a SMILES map)."""
        default = SDF_MOLBLOCK if self.file_format == "sdf" else "smiles"
        return self.columns.get("smiles", default)


class AssayDefaults(_Model):
    """T0 values used for assays (or T0 fields) that no assay file provides."""

    assay_type: AssayType = Field("OTHER", description="MELLODDY assay type.")
    use_in_regression: bool | None = Field(
        None, description="Create a regression task; default: true unless is_binary."
    )
    is_binary: bool = Field(False, description="Values are binary readouts (-1/+1 or 0/1).")
    direction: Literal["high", "low"] | None = Field(None, description="Which side is active.")
    expert_thresholds: list[float] = Field(
        default_factory=list, max_length=5, description="Up to 5 expert thresholds."
    )

    @model_validator(mode="after")
    def _no_regression_for_binary(self) -> AssayDefaults:
        if self.is_binary and self.use_in_regression:
            raise ValueError("binary assays make no regression task: drop use_in_regression")
        return self

    @property
    def regression(self) -> bool:
        """The effective ``use_in_regression``."""
        return (not self.is_binary) if self.use_in_regression is None else self.use_in_regression


class ActivitySource(_Source):
    """A file of measurements (T1).

    ``layout = "long"``: one measurement per row, with compound id, assay id (or a fixed
    ``assay_id`` for a one-assay file), value and optional qualifier columns.
    ``layout = "wide"``: one compound per row and one column per assay (``assay_columns`` or
    every column starting with ``assay_column_prefix``; the assay id is the column name
    without the prefix). SDF activity files are wide: one property per assay.
    """

    _targets: ClassVar[tuple[str, ...]] = T1_COLUMNS

    layout: Literal["long", "wide"] = Field("long", description="long or wide (see above).")
    unit: str | None = Field(
        None,
        description="Unit of every value: nM, uM/µM, mM, M, pM (converted to pXC50, "
        "qualifiers mirrored), pXC50/pIC50/pKi/… (kept), none (ADME, kept) or binary.",
    )
    unit_column: str | None = Field(None, description="Column giving each row's unit instead.")
    qualifier_in_value: bool = Field(
        False, description="Values carry their qualifier, e.g. '<10' or '>= 4.5'."
    )
    assay_id: str | None = Field(None, description="Fixed assay id for a one-assay long file.")
    assay_columns: list[str] = Field(default_factory=list, description="Wide: assay columns.")
    assay_column_prefix: str | None = Field(
        None, min_length=1, description="Wide: every column with this prefix is an assay."
    )
    assay_defaults: AssayDefaults | None = Field(
        None, description="T0 values for this file's assays not listed in an assay file."
    )

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return resolve_unit(value).name
        except IngestError as exc:
            raise ValueError(f"{exc.message} {exc.fix}") from None

    @model_validator(mode="after")
    def _check_activity(self) -> ActivitySource:
        if (self.unit is None) == (self.unit_column is None):
            raise ValueError("give exactly one of unit and unit_column")
        if self.file_format == "sdf" and self.layout != "wide":
            raise ValueError("SDF activity files are wide: set layout = 'wide'")
        if self.layout == "wide":
            if bool(self.assay_columns) == (self.assay_column_prefix is not None):
                raise ValueError("wide layout needs exactly one of assay_columns and prefix")
            if self.assay_id is not None or self.unit_column is not None:
                raise ValueError("wide layout takes neither assay_id nor unit_column")
            for name in ("input_assay_id", "standard_value", "standard_qualifier"):
                if name in self.columns:
                    raise ValueError(f"wide layout: {name} is not a column (remove it)")
        elif self.assay_id is not None and "input_assay_id" in self.columns:
            raise ValueError("give either assay_id or columns.input_assay_id, not both")
        if self.qualifier_in_value and "standard_qualifier" in self.columns:
            raise ValueError("qualifier_in_value and a qualifier column exclude each other")
        return self

    def id_column(self) -> str:
        """Column (or SDF pseudo-column) holding the compound id."""
        default = SDF_TITLE if self.file_format == "sdf" else "input_compound_id"
        return self.columns.get("input_compound_id", default)


class AssaySource(_Source):
    """A file describing assays (T0). Each T0 field is read from its mapped column, else
    from a column of the same name, else taken from ``defaults``; ``input_assay_id`` must be
    in the file."""

    _targets: ClassVar[tuple[str, ...]] = T0_COLUMNS

    defaults: AssayDefaults = Field(
        default_factory=AssayDefaults, description="Values for T0 fields the file lacks."
    )


class PartnerConfig(_Model):
    """Everything pharmafl needs to read one partner's own exports."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Partner name (no spaces)."
    )
    structures: list[StructureSource] = Field(min_length=1, description="Structure files.")
    activities: list[ActivitySource] = Field(min_length=1, description="Activity files.")
    assays: list[AssaySource] = Field(default_factory=list, description="Assay (T0) files.")
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
        if not self.assays and self.assay_defaults is None:
            missing = [i for i, a in enumerate(self.activities) if a.assay_defaults is None]
            if missing:
                raise ValueError(
                    f"activities{missing} have no assay description: add [[assays]] files, "
                    "an [assay_defaults] table or assay_defaults on those sources"
                )
        return self

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
    for model in (PartnerConfig, StructureSource, ActivitySource, AssaySource, AssayDefaults):
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
            fix="start from the example in pharmafl/ingest/config.py.",
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
            fix=f"create {CONFIG_FILE_NAMES[0]} in the partner folder (see docs in "
            "pharmafl/ingest/config.py or run `pharmafl consortium simulate` for examples).",
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
            fix="write one that maps your export files onto T0/T1/T2 "
            "(see pharmafl/ingest/config.py).",
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
    "PartnerConfig",
    "StructureSource",
    "find_partner_config",
    "infer_format",
    "load_partner_config",
    "parse_partner_config",
    "partner_config_path",
]
