"""Sniffing an export file for ``partner inspect``: encoding, delimiter, decimal mark.

Unlike the reader (:mod:`pharmafl.ingest.files`), which only decides what is safe, these
guesses may be wrong: they end up in the drafted partner config with a comment saying what
was detected, for the user to check.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.ingest.files import (
    CANDIDATE_DELIMITERS,
    check_readable,
    guess_legacy_encoding,
    open_bytes,
    sniff_encoding,
    text_encoding,
)
from pharmafl.ingest.sources import FileFormat, infer_format
from pharmafl.ingest.tables import read_table

#: How much decoded text the column detection looks at.
SAMPLE_BYTES = 4 << 20
_DECIMAL_COMMA = re.compile(r"^\s*[<>=~≤≥]*\s*[+-]?\d+,\d+\s*$")
_DECIMAL_POINT = re.compile(r"^\s*[<>=~≤≥]*\s*[+-]?\d*\.\d+(?:[eE][+-]?\d+)?\s*$")


@dataclass(frozen=True)
class InspectedFile:
    """What an export file looks like.

    Attributes
    ----------
    path, config_path
        The file, and its path as the partner config names it.
    format
        csv, tsv, parquet or sdf (from the suffix).
    encoding
        None for UTF-8 (the default), else the detected encoding; ``encoding_note`` says why.
    delimiter, decimal
        Detected for CSV/TSV (None / ``"."`` otherwise).
    sample
        The file's first rows (all of them when ``complete``), every cell a string
        (``""`` when empty); SDF files have ``_Name``, ``_MolBlock`` and one column per tag.
    """

    path: Path
    config_path: str
    format: FileFormat
    encoding: str | None
    encoding_note: str
    delimiter: str | None
    decimal: str
    sample: pd.DataFrame
    complete: bool

    @property
    def columns(self) -> list[str]:
        """The file's column (or SDF tag) names."""
        return [str(c) for c in self.sample.columns]


def detect_encoding(path: Path, *, display: str) -> tuple[str | None, str]:
    """``(encoding or None for UTF-8, note)``: a BOM, else UTF-8 if every byte decodes,
    else cp1252 / latin-1."""
    text_encoding(path, None, display=display)  # refuses workbooks
    with open_bytes(path, display=display) as fh:
        head = fh.read(4)
        bom = sniff_encoding(head)
        if bom is not None:
            return (None if bom == "utf-8-sig" else bom), f"{bom} (byte-order mark)"
        decoder = codecs.getincrementaldecoder("utf-8")()
        data = head
        while data:
            try:
                decoder.decode(data)
            except UnicodeDecodeError:
                legacy = guess_legacy_encoding(data)
                return legacy, f"{legacy}: not UTF-8 (an Excel or Windows export?)"
            data = fh.read(1 << 20)
    return None, "UTF-8"


def _read_sample(path: Path, encoding: str, *, display: str) -> tuple[str, bool]:
    with open_bytes(path, display=display) as fh:
        raw = fh.read(SAMPLE_BYTES + 1)
    complete = len(raw) <= SAMPLE_BYTES
    text = raw[:SAMPLE_BYTES].decode(encoding, errors="replace")
    if not complete:  # drop the last, cut line
        text = text[: text.rfind("\n") + 1]
    return text, complete


def detect_delimiter(text: str) -> str:
    """The candidate delimiter that splits the first lines into the most, equal, fields."""
    lines = text.splitlines()[:50]
    best, best_fields = ",", 1
    for cand in CANDIDATE_DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=cand) if row}
        if len(counts) == 1 and (n := counts.pop()) > best_fields:
            best, best_fields = cand, n
    return best


def detect_decimal(frame: pd.DataFrame) -> str:
    """``","`` when numbers are written with decimal commas and none with points."""
    commas = points = 0
    for col in frame.columns:
        text = frame[col].astype(str)
        commas += int(text.str.match(_DECIMAL_COMMA).sum())
        points += int(text.str.match(_DECIMAL_POINT).sum())
    return "," if commas > 0 and points == 0 else "."


def _strings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype("object").where(frame.notna(), "").astype(str)


def inspect_file(path: Path, config_path: str) -> InspectedFile:
    """Sniff one export file (see :class:`InspectedFile`).

    Raises
    ------
    IngestError
        If the file is missing, unreadable, of an unknown format, or has no data rows.
    """
    display = str(path)
    fmt = infer_format(path)
    if fmt is None:
        raise IngestError(
            "cannot tell the file's format from its name.",
            file=display,
            fix="inspect reads .csv, .tsv/.txt/.tab, .parquet and .sdf files (also .gz); "
            "save Excel sheets as CSV first.",
        )
    check_readable(path, display=display)
    encoding, note, delimiter, decimal, complete = None, "", None, ".", True
    if fmt == "parquet":
        sample = _strings(read_table(path, fmt, display=display))
    else:
        encoding, note = detect_encoding(path, display=display)
    if fmt == "sdf":
        sample = _strings(read_table(path, fmt, display=display, encoding=encoding))
    elif fmt in ("csv", "tsv"):
        sample, delimiter, complete = _text_sample(path, encoding, display=display)
        decimal = detect_decimal(sample)
    if sample.empty:
        raise IngestError("file has no data rows.", file=display, fix="export the data again.")
    return InspectedFile(
        path, config_path, fmt, encoding, note, delimiter, decimal, sample, complete
    )


def _text_sample(
    path: Path, encoding: str | None, *, display: str
) -> tuple[pd.DataFrame, str, bool]:
    text, complete = _read_sample(path, encoding or "utf-8-sig", display=display)
    delimiter = detect_delimiter(text)
    try:
        sample = pd.read_csv(
            io.StringIO(text), sep=delimiter, dtype=str, na_filter=False, on_bad_lines="skip"
        )
    except pd.errors.EmptyDataError:
        raise IngestError("file is empty.", file=display, fix="export the data again.") from None
    sample.columns = [str(c).strip() for c in sample.columns]
    return sample, delimiter, complete


__all__ = [
    "SAMPLE_BYTES",
    "InspectedFile",
    "detect_decimal",
    "detect_delimiter",
    "detect_encoding",
    "inspect_file",
]
