"""Reading source files into tables, and the vectorised checks shared by every source.

Row numbers in every message and rejection are **1-based data rows**: the first row after a
CSV/TSV header is row 1 (file line 2), the first parquet row is row 1, and for SDF files the
row is the record number. Messages name rows and columns, never raw partner values.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.ingest.config import (
    ActivitySource,
    AssaySource,
    FileFormat,
    PartnerConfig,
    StructureSource,
)
from pharmafl.ingest.files import (
    check_readable,
    choose_delimiter,
    delimiter_hint,
    delimiter_name,
    header_line,
    open_text,
    read_error,
    text_encoding,
)
from pharmafl.ingest.models import T0_COLUMNS
from pharmafl.ingest.sdf import SDF_MOLBLOCK, SDF_TITLE, read_sdf_table

logger = logging.getLogger(__name__)

#: Reason codes of rejection rows (value problems in single rows; the run goes on).
REJECTION_REASONS: dict[str, str] = {
    "empty_unit": "the row's unit (unit column) is empty",
    "empty_value": "the value is empty",
    "non_numeric_value": "the value is not a finite number",
    "non_positive_value": "a concentration must be > 0 to have a pXC50",
    "invalid_binary_value": "a binary readout must be 0/1 or -1/+1",
    "empty_smiles": "the structure is empty",
    "unparseable_structure": "RDKit cannot read the SDF molblock",
    "compound_rejected": "the compound's structure was rejected",
    "no_activities": "the compound has no activity (dropped, as MELLODDY-TUNER does)",
}

_ROW_NOTE = {
    "csv": "data rows counted from 1 after the header",
    "tsv": "data rows counted from 1 after the header",
    "parquet": "rows counted from 1",
    "sdf": "SDF records counted from 1",
}


def row_note(fmt: FileFormat) -> str:
    """How row numbers count in files of this format (appended to messages)."""
    return _ROW_NOTE[fmt]


@dataclass
class RejectionLog:
    """Collects rejection rows: ``file, row, input_compound_id, reason, message``."""

    _parts: list[pd.DataFrame] = field(default_factory=list)

    def add(
        self,
        file: str,
        rows: np.ndarray,
        compound_ids: np.ndarray | None,
        reason: str,
        message: str | np.ndarray | None = None,
    ) -> None:
        """Record one rejection per entry of ``rows`` (1-based data rows); ``message`` is
        one text for all rows or one per row (default: the reason's description)."""
        if len(rows) == 0:
            return
        assert reason in REJECTION_REASONS, reason
        n = len(rows)
        ids = (
            pd.array(compound_ids, dtype="Int64")
            if compound_ids is not None
            else pd.array([pd.NA] * n, dtype="Int64")
        )
        self._parts.append(
            pd.DataFrame(
                {
                    "file": pd.Series([file] * n, dtype=str),
                    "row": np.asarray(rows, dtype=np.int64),
                    "input_compound_id": ids,
                    "reason": pd.Series([reason] * n, dtype=str),
                    "message": pd.Series(
                        np.broadcast_to(
                            np.asarray(
                                REJECTION_REASONS[reason] if message is None else message,
                                dtype=object,
                            ),
                            (n,),
                        ),
                        dtype=str,
                    ),
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        """All rejections so far, in the order they were found."""
        if not self._parts:
            return pd.DataFrame(
                {
                    "file": pd.Series([], dtype=str),
                    "row": pd.Series([], dtype=np.int64),
                    "input_compound_id": pd.array([], dtype="Int64"),
                    "reason": pd.Series([], dtype=str),
                    "message": pd.Series([], dtype=str),
                }
            )
        return pd.concat(self._parts, ignore_index=True)


def _check_header(header: str, sep: str, *, display: str) -> None:
    fields = [h.strip() for h in next(csv.reader(io.StringIO(header), delimiter=sep), [])]
    dupes = sorted({h for h in fields if fields.count(h) > 1})
    if dupes:
        raise IngestError(
            f"header: repeats column name(s) {dupes[:5]}.",
            file=display,
            fix="give every column a distinct name.",
        )


def _read_delimited(
    path: Path, fmt: FileFormat, *, display: str, delimiter: str | None, encoding: str | None
) -> pd.DataFrame:
    enc = text_encoding(path, encoding, display=display)
    header = header_line(path, enc, display=display)
    default = "," if fmt == "csv" else "\t"
    sep = choose_delimiter(header, default, delimiter)
    if sep != (delimiter or default):
        logger.info(
            "%s: no %s in the header; reading it as %s-separated (set delimiter to say so)",
            display, delimiter_name(default), delimiter_name(sep),
        )  # fmt: skip
    _check_header(header, sep, display=display)
    try:
        with open_text(path, enc, display=display) as text:
            frame = pd.read_csv(text, sep=sep, dtype=str, na_filter=False, skipinitialspace=False)
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise IngestError(
            "a row has a different number of fields than the header "
            f"({_ROW_NOTE[fmt]}; the file is read as {delimiter_name(sep)}-separated).",
            file=display,
            row=int(m.group(1)) - 1 if m else None,
            fix="quote fields that contain the delimiter, or set delimiter for this source "
            "in the partner config.",
        ) from None
    frame.attrs.update(header_line=header, delimiter=sep)
    return frame


def _read_parquet(path: Path, *, display: str) -> pd.DataFrame:
    check_readable(path, display=display)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, EOFError) as exc:  # pyarrow errors derive from these
        if isinstance(exc, PermissionError):
            raise read_error(exc, display=display) from None
        raise IngestError(
            f"cannot read the file as parquet: it is truncated or corrupt, or not a parquet "
            f"file ({type(exc).__name__}).",
            file=display,
            fix="export it again, or set format for this source if it is not parquet.",
        ) from None


def read_table(
    path: Path,
    fmt: FileFormat,
    *,
    display: str,
    delimiter: str | None = None,
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read one source file; CSV/TSV/SDF cells are strings ('' when empty).

    CSV/TSV frames carry ``attrs["header_line"]`` and ``attrs["delimiter"]`` (used to
    suggest a delimiter when columns are missing).

    Raises
    ------
    IngestError
        For a missing, empty, unreadable, truncated, undecodable or malformed file, or
        duplicate column names, naming ``display``.
    """
    try:
        if fmt == "parquet":
            frame = _read_parquet(path, display=display)
        elif fmt == "sdf":
            frame = read_sdf_table(path, encoding=encoding, display=display)
        else:
            frame = _read_delimited(
                path, fmt, display=display, delimiter=delimiter, encoding=encoding
            )
    except pd.errors.EmptyDataError:
        raise IngestError("file is empty.", file=display, fix="export the data again.") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise IngestError("file has no data rows.", file=display, fix="export the data again.")
    return frame.reset_index(drop=True)


Source = StructureSource | ActivitySource | AssaySource


def used_columns(src: Source) -> tuple[set[str], str | None]:
    """Columns a source reads (plus its ignored ones), and its wide-layout prefix if any."""
    cols = set(src.ignore_columns)
    prefix: str | None = None
    if isinstance(src, StructureSource):
        cols |= {src.id_column(), src.smiles_column()}
    elif isinstance(src, ActivitySource):
        cols.add(src.id_column())
        if src.layout == "wide":
            cols.update(src.assay_columns)
            prefix = src.assay_column_prefix
        else:
            cols |= {src.column("standard_value"), src.column("standard_qualifier")}
            if src.assay_id is None:
                cols.add(src.column("input_assay_id"))
            if src.unit_column is not None:
                cols.add(src.unit_column)
    else:
        cols |= {src.column(c) for c in T0_COLUMNS}
    return cols, prefix


class SourceTables:
    """Reads each source file once and knows which columns any source uses from it.

    A file used by several sources (e.g. one export with structures and activities) may
    hold the columns of all of them without counting as unexpected for either.
    """

    def __init__(self, partner_dir: Path, config: PartnerConfig) -> None:
        self.partner_dir = partner_dir
        self._frames: dict[tuple[Path, str, str | None, str | None], pd.DataFrame] = {}
        self._known: dict[Path, set[str]] = {}
        self._prefixes: dict[Path, set[str]] = {}
        sources: list[Source] = [
            *config.structure_sources(),
            *config.activity_sources(),
            *config.assay_sources(),
        ]
        for src in sources:
            path = src.resolve(partner_dir)
            cols, prefix = used_columns(src)
            self._known.setdefault(path, set()).update(cols)
            if prefix is not None:
                self._prefixes.setdefault(path, set()).add(prefix)

    def frame(self, src: Source) -> pd.DataFrame:
        """The source's table (read on first use)."""
        path = src.resolve(self.partner_dir)
        key = (path, src.file_format, src.delimiter, src.encoding)
        if key not in self._frames:
            self._frames[key] = read_table(
                path,
                src.file_format,
                display=src.path,
                delimiter=src.delimiter,
                encoding=src.encoding,
            )
        return self._frames[key]

    def known(self, src: Source, frame: pd.DataFrame) -> set[str]:
        """Columns of ``frame`` that some source of the same file reads or ignores."""
        path = src.resolve(self.partner_dir)
        prefixes = tuple(self._prefixes.get(path, ()))
        found = {c for c in frame.columns if prefixes and str(c).startswith(prefixes)}
        return self._known.get(path, set()) | found


def check_columns(
    frame: pd.DataFrame,
    *,
    required: list[str],
    known: set[str],
    extra: str,
    display: str,
    what: str,
) -> None:
    """Raise if a required column is missing, or (``extra == "error"``) an unknown one exists."""
    present = list(frame.columns)
    missing = [c for c in dict.fromkeys(required) if c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in present[:12]) + (" …" if len(present) > 12 else "")
        fix = (
            "map the right columns under 'columns' in the partner config, or fix the "
            "export's header."
        )
        used = frame.attrs.get("delimiter")
        other = delimiter_hint(frame.attrs.get("header_line", ""), used, missing) if used else None
        if other is not None:
            fix = (
                f"the header looks {delimiter_name(other)}-separated, not "
                f"{delimiter_name(used)}-separated: set delimiter = {json.dumps(other)} for "
                "this source in the partner config."
            )
        raise IngestError(
            f"header: missing column(s) {missing} needed for the {what} (it has {shown}).",
            file=display,
            fix=fix,
        )
    if extra == "error":
        unknown = [c for c in present if c not in known and c not in (SDF_TITLE, SDF_MOLBLOCK)]
        if unknown:
            raise IngestError(
                f"header: unexpected column(s) {unknown[:8]} in the {what}.",
                file=display,
                fix="map them, list them under ignore_columns, or set extra_columns = "
                "'ignore' for this source in the partner config.",
            )


def id_text(
    series: pd.Series, *, display: str, fmt: FileFormat, what: str, row_of: np.ndarray
) -> pd.Series:
    """Ids as stripped strings; numbers are written as integers.

    Raises
    ------
    IngestError
        On an empty id or a non-integral numeric id (naming the first such row).
    """
    if pd.api.types.is_bool_dtype(series) or (
        pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_integer_dtype(series)
    ):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            first = int(np.argmax(bad))
            raise IngestError(
                f"{what} must be text or whole numbers; found an empty or fractional "
                f"number ({row_note(fmt)}).",
                file=display,
                row=int(row_of[first]),
                fix="export ids as text or integers.",
            )
        text = pd.Series(values.astype(np.int64).astype(str), index=series.index, dtype=str)
    else:
        text = series.astype("object").where(series.notna(), "").astype(str).str.strip()
    empty = (text == "").to_numpy()
    if empty.any():
        first = int(np.argmax(empty))
        raise IngestError(
            f"empty {what} in {int(empty.sum())} row(s) ({row_note(fmt)}).",
            file=display,
            row=int(row_of[first]),
            fix=f"give every row a {what}.",
        )
    return text


def parse_numbers(
    series: pd.Series, *, decimal: str = "."
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse values; returns ``(values, empty, non_numeric)`` (float64, bool, bool).

    ``decimal`` is the decimal mark of text values (``","`` for ``"12,5"``).
    """
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = pd.to_numeric(series).to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.isnan(values)
        non_numeric = ~empty & ~np.isfinite(values)
        return values, empty, non_numeric
    text = series.astype("object").where(series.notna(), "").astype(str).str.strip()
    if decimal != ".":
        text = text.str.replace(decimal, ".", regex=False)
    empty = (text == "").to_numpy()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    non_numeric = ~empty & ~np.isfinite(values)
    return values, empty, non_numeric


_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def parse_bool(
    series: pd.Series,
    *,
    default: bool | np.ndarray,
    display: str,
    fmt: FileFormat,
    column: str,
) -> np.ndarray:
    """Parse a boolean column (true/false, yes/no, 1/0; empty → ``default``, a scalar or
    one value per row)."""
    out = np.broadcast_to(np.asarray(default, dtype=bool), (len(series),)).copy()
    if pd.api.types.is_bool_dtype(series) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    text = series.astype("object").where(series.notna(), "").astype(str).str.strip().str.lower()
    t = text.isin(_TRUE).to_numpy()
    f = text.isin(_FALSE).to_numpy()
    bad = ~(t | f | (text == "").to_numpy())
    if bad.any():
        first = int(np.argmax(bad))
        raise IngestError(
            f"column {column!r} must be true/false (or yes/no, 1/0) ({row_note(fmt)}).",
            file=display,
            row=first + 1,
            fix="write booleans as true or false.",
        )
    out[t] = True
    out[f] = False
    return out


def parse_optional_float(
    series: pd.Series, *, display: str, fmt: FileFormat, column: str, decimal: str = "."
) -> np.ndarray:
    """Parse a nullable numeric column (empty → NaN); text raises naming the row."""
    values, _empty, non_numeric = parse_numbers(series, decimal=decimal)
    if non_numeric.any():
        first = int(np.argmax(non_numeric))
        raise IngestError(
            f"column {column!r} must hold numbers or be empty ({row_note(fmt)}).",
            file=display,
            row=first + 1,
            fix=f"write a plain number (decimal mark {decimal!r}, no unit) or leave the cell "
            "empty; set decimal for this source if the file uses another mark.",
        )
    return values


__all__ = [
    "REJECTION_REASONS",
    "RejectionLog",
    "Source",
    "SourceTables",
    "check_columns",
    "id_text",
    "parse_bool",
    "parse_numbers",
    "parse_optional_float",
    "read_table",
    "row_note",
    "used_columns",
]
