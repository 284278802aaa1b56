"""Value cells → qualifier and number, so that no censored value is lost on the way.

Exports write censored values two ways: a qualifier column beside a plain number
(ChEMBL's ``standard_relation``), or the qualifier inside the value (``>10000``,
``<= 5``, ``>1e4``: Excel sheets, ELNs, SDF tags). ``qualifier_in_value`` on an activity
source picks the reading: unset, a leading qualifier is split out of the value whenever no
qualifier column is used; ``true`` always splits; ``false`` wants plain numbers. A value
that still carries a qualifier where none is expected stops the run, naming the column, the
count and the setting, rather than being rejected as non-numeric (which would drop exactly
the censored inactives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.ingest.config import ActivitySource
from pharmafl.ingest.tables import parse_numbers
from pharmafl.ingest.units import normalize_qualifiers, qualified_values, split_qualified_values

_DECIMAL_COMMA = re.compile(r"^\s*[+-]?\d+,\d+\s*$")


@dataclass(frozen=True)
class ParsedValues:
    """Per cell: qualifier (``<``/``=``/``>``, before mirroring), number, and flags."""

    qualifier: np.ndarray
    values: np.ndarray
    empty: np.ndarray
    non_numeric: np.ndarray


def qualifier_column(src: ActivitySource, frame: pd.DataFrame) -> str | None:
    """The column qualifiers are read from: mapped, else ``standard_qualifier`` when the
    file has it; None for wide layouts and ``qualifier_in_value = true``."""
    if src.qualifier_in_value is True or src.layout == "wide":
        return None
    mapped = src.columns.get("standard_qualifier")
    return mapped or ("standard_qualifier" if "standard_qualifier" in frame else None)


def _columns(src: ActivitySource, cells: pd.DataFrame, mask: np.ndarray) -> list[str]:
    if "column" in cells:
        return [str(c) for c in pd.unique(cells["column"].to_numpy(dtype=object)[mask])][:8]
    return [src.column("standard_value")]


def _refuse_qualified(
    src: ActivitySource, cells: pd.DataFrame, qual_col: str | None, *, rows: np.ndarray, note: str
) -> None:
    mask = qualified_values(cells["value_raw"], decimal=src.decimal)
    if not mask.any():
        return
    if src.qualifier_in_value is False:
        fix = (
            "remove qualifier_in_value = false (or set it to true) for this source in the "
            "partner config, so that qualifiers are split out of the values."
        )
    else:
        fix = (
            f"clean the values (column {qual_col!r} already gives each row's qualifier), or "
            "stop mapping standard_qualifier for this source so that qualifiers are split "
            "out of the values."
        )
    raise IngestError(
        f"{int(mask.sum())} value(s) in column(s) {_columns(src, cells, mask)} carry a "
        f"qualifier inside the value (like '>10000'; {note}); read as they are, these "
        "censored values would be rejected as non-numeric.",
        file=src.path,
        row=int(rows[int(np.argmax(mask))]),
        fix=fix,
    )


def _refuse_decimal_commas(
    src: ActivitySource,
    cells: pd.DataFrame,
    text: pd.Series,
    non_numeric: np.ndarray,
    *,
    rows: np.ndarray,
    note: str,
) -> None:
    if src.decimal != "." or not non_numeric.any() or pd.api.types.is_numeric_dtype(text):
        return
    mask = non_numeric & text.astype(str).str.match(_DECIMAL_COMMA).to_numpy(dtype=bool)
    if mask.any():
        raise IngestError(
            f"{int(mask.sum())} value(s) in column(s) {_columns(src, cells, mask)} use a "
            f"decimal comma (like '12,5'; {note}); they would be rejected as non-numeric.",
            file=src.path,
            row=int(rows[int(np.argmax(mask))]),
            fix='set decimal = "," for this source in the partner config (if "," is the '
            "decimal mark there, not a thousands separator).",
        )


def parse_values(
    src: ActivitySource, cells: pd.DataFrame, qual_col: str | None, *, rows: np.ndarray, note: str
) -> ParsedValues:
    """Qualifiers and numbers of the cells' ``value_raw`` (and ``qualifier_raw``).

    Raises
    ------
    IngestError
        On unknown qualifier spellings (each one listed), qualified values where plain
        numbers are expected, or decimal commas in a file read with a decimal point.
    """
    raw = cells["value_raw"].reset_index(drop=True)
    split = src.qualifier_in_value is True or (src.qualifier_in_value is None and not qual_col)
    column: str | None
    if split and not pd.api.types.is_numeric_dtype(raw):
        qual_raw, text = split_qualified_values(raw)
        names = _columns(src, cells, np.ones(len(raw), dtype=bool))
        column = names[0] if len(names) == 1 else None
    else:
        _refuse_qualified(src, cells, qual_col, rows=rows, note=note)
        qual_raw, text, column = cells["qualifier_raw"], raw, qual_col
    qualifier = normalize_qualifiers(
        pd.Series(qual_raw.to_numpy(dtype=object)),
        mirror=False,
        file=src.path,
        rows=rows,
        column=column,
        row_note=note,
    ).to_numpy(dtype=object)
    values, empty, non_numeric = parse_numbers(text, decimal=src.decimal)
    _refuse_decimal_commas(src, cells, text, non_numeric, rows=rows, note=note)
    return ParsedValues(qualifier, values, empty, non_numeric)


__all__ = ["ParsedValues", "parse_values", "qualifier_column"]
