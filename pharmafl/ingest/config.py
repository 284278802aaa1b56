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

import codecs
import difflib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

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
    delimiter: str | None = Field(
        None,
        min_length=1,
        max_length=1,
        description="CSV/TSV field delimiter, e.g. ';' for many Excel exports; default ',' "
        "for csv and a tab for tsv (or the one other delimiter a header holds when it holds "
        "none of those).",
    )
    encoding: str | None = Field(
        None,
        description="Text encoding of a CSV/TSV/SDF file (utf-8, cp1252, latin-1, utf-16…); "
        "default UTF-8, or what the file's byte-order mark says.",
    )
    decimal: Literal[".", ","] = Field(
        ".",
        description="Decimal mark of the numbers in this file (',' in many European "
        "Excel exports, which then use ';' as the delimiter).",
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
        _check_text_options(self)
        return self

    @property
    def file_format(self) -> FileFormat:
        """The declared or inferred format."""
        fmt = self.format or infer_format(self.path)
        assert fmt is not None  # checked by the validator
        return fmt

    def default_delimiter(self) -> str:
        """The delimiter of this source's format (``,`` for csv, a tab otherwise)."""
        return "," if self.file_format == "csv" else "\t"

    def column(self, target: str) -> str:
        """The file's column for a standard name (the name itself when unmapped)."""
        return self.columns.get(target, target)

    def resolve(self, partner_dir: Path) -> Path:
        """The source's absolute path."""
        p = Path(self.path)
        return p if p.is_absolute() else partner_dir / p


def _known_encoding(encoding: str | None) -> None:
    if encoding is None:
        return
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"unknown encoding {encoding[:20]!r}; use e.g. utf-8, cp1252, latin-1"
        ) from None


def _check_text_options(src: _Source) -> None:
    fmt = src.file_format
    if fmt == "parquet":
        for name in ("delimiter", "encoding"):
            if getattr(src, name) is not None:
                raise ValueError(f"parquet files have no {name}: remove it")
        if src.decimal != ".":
            raise ValueError("parquet files store numbers, not text: remove decimal")
    if fmt == "sdf" and src.delimiter is not None:
        raise ValueError("SDF files have no delimiter: remove it")
    _known_encoding(src.encoding)
    if src.delimiter is not None and src.delimiter in '"\r\n':
        raise ValueError("a quote or line break cannot be the delimiter")
    if fmt in ("csv", "tsv") and src.decimal == (src.delimiter or src.default_delimiter()):
        raise ValueError(f"decimal {src.decimal!r} is also the delimiter: set delimiter (e.g. ';')")


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
    qualifier_in_value: bool | None = Field(
        None,
        description="Values carry their qualifier, e.g. '>10000' or '<= 5'. Unset (default): "
        "split a leading qualifier out of values when no qualifier column is used, and stop "
        "on such values when one is; true: always split; false: values must be plain "
        "numbers (a qualified value stops the run).",
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
        if self.qualifier_in_value is True and "standard_qualifier" in self.columns:
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
        _known_encoding(value)
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
