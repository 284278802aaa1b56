"""One export file's settings: where it is, how to read it, which columns are which.

The source models of the partner config (:mod:`pharmafl.ingest.config`): every file has a
path, a format (from its suffix unless given), a column mapping onto the T0/T1/T2 names and
its text options (``delimiter``, ``encoding``, ``decimal``); activity files add a layout,
units and qualifier handling, assay files their T0 defaults.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pharmafl.common.errors import IngestError
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


def known_encoding(encoding: str | None) -> None:
    """Raise ValueError (for a validator) if ``encoding`` names no Python codec."""
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
    known_encoding(src.encoding)
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


__all__ = [
    "SUFFIX_FORMATS",
    "ActivitySource",
    "AssayDefaults",
    "AssaySource",
    "FileFormat",
    "StructureSource",
    "infer_format",
    "known_encoding",
]
