"""Units and qualifiers: partner spellings → pXC50 values and ``<``/``=``/``>`` qualifiers.

Dose-response values are stored as pXC50 = −log10(molar concentration), the MELLODDY-TUNER
convention (credible range 3–10). Turning a concentration into a pXC50 reverses the order of
values, so a censoring qualifier must be **mirrored**: ``> 30000 nM`` (less potent than
30 µM) is ``pXC50 < 4.52``. FS-Mol's ``relation`` column refers to ``value_nM`` and is
mirrored the same way. Qualifier spellings follow TUNER's ``map_qualifiers``: ``<``, ``<=``,
``<<`` → ``<``; ``>``, ``>=``, ``>>`` → ``>``; ``=``, ``~``, empty → ``=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError

UnitKind = Literal["concentration", "log", "passthrough", "binary"]


@dataclass(frozen=True)
class Unit:
    """A unit a partner may declare for a value column.

    Attributes
    ----------
    name
        Canonical spelling (``"nM"``, ``"pIC50"``, ``"none"``…).
    kind
        ``concentration`` (converted to pXC50, qualifiers mirrored), ``log`` (already a
        −log10 molar potency, kept), ``passthrough`` (ADME and other values, kept as given)
        or ``binary`` (0/1 or −1/+1 readouts, stored as −1/+1).
    molar_factor
        Multiply a value by this to get mol/L (concentrations only).
    """

    name: str
    kind: UnitKind
    molar_factor: float | None = None

    @property
    def mirrors_qualifiers(self) -> bool:
        """True when converting to pXC50 reverses the order of values."""
        return self.kind == "concentration"


_CANONICAL: tuple[Unit, ...] = (
    Unit("pM", "concentration", 1e-12),
    Unit("nM", "concentration", 1e-9),
    Unit("uM", "concentration", 1e-6),
    Unit("mM", "concentration", 1e-3),
    Unit("M", "concentration", 1.0),
    Unit("pXC50", "log"),
    Unit("pIC50", "log"),
    Unit("pEC50", "log"),
    Unit("pAC50", "log"),
    Unit("pKi", "log"),
    Unit("pKd", "log"),
    Unit("pKb", "log"),
    Unit("none", "passthrough"),
    Unit("binary", "binary"),
)
#: Canonical units by name.
UNITS: dict[str, Unit] = {u.name: u for u in _CANONICAL}

_ALIASES: dict[str, str] = {
    "µm": "uM",  # micro sign U+00B5
    "μm": "uM",  # Greek small mu U+03BC
    "pmol/l": "pM",
    "nmol/l": "nM",
    "umol/l": "uM",
    "µmol/l": "uM",
    "μmol/l": "uM",
    "mmol/l": "mM",
    "mol/l": "M",
    "molar": "M",
    "log": "none",
    "unitless": "none",
}
_LOOKUP: dict[str, str] = {u.name.lower(): u.name for u in _CANONICAL} | _ALIASES


def valid_unit_names() -> list[str]:
    """Canonical unit names and accepted aliases, for error messages and docs."""
    return [u.name for u in _CANONICAL] + ["µM", "μM", "nmol/L", "umol/L", "mol/L", "log"]


def resolve_unit(name: str) -> Unit:
    """Return the :class:`Unit` for a spelling (case-insensitive, aliases accepted).

    Raises
    ------
    IngestError
        If the spelling is unknown; the message lists the valid units.
    """
    key = str(name).strip().lower()
    canonical = _LOOKUP.get(key)
    if canonical is None:
        raise IngestError(
            f"unknown unit {str(name)[:20]!r}.",
            fix=f"use one of {', '.join(valid_unit_names())}.",
        )
    return UNITS[canonical]


def convert_values(values: np.ndarray, unit: str | Unit) -> np.ndarray:
    """Convert numeric values in ``unit`` to what T1 stores (float64, new array).

    Concentrations become pXC50 (non-positive or NaN inputs give NaN); ``log`` and
    ``passthrough`` values are kept; ``binary`` maps 1 → +1 and 0 or −1 → −1 (anything else
    gives NaN, for the caller to reject).
    """
    u = unit if isinstance(unit, Unit) else resolve_unit(unit)
    arr = np.asarray(values, dtype=np.float64)
    if u.kind == "concentration":
        assert u.molar_factor is not None
        out = np.full(arr.shape, np.nan)
        ok = np.isfinite(arr) & (arr > 0)
        # exponent − log10(value) is exact for the exponent (9 for nM), unlike log10(v·1e-9).
        out[ok] = -np.log10(u.molar_factor) - np.log10(arr[ok])
        return out
    if u.kind == "binary":
        out = np.full(arr.shape, np.nan)
        out[arr == 1] = 1.0
        out[(arr == 0) | (arr == -1)] = -1.0
        return out
    return arr.copy()


def to_pxc50(values: np.ndarray, unit: str | Unit) -> np.ndarray:
    """Convert potencies in ``unit`` to pXC50 = −log10(mol/L) (float64, new array).

    Examples
    --------
    >>> to_pxc50(np.array([30000.0]), "nM").round(3)
    array([4.523])

    Raises
    ------
    IngestError
        If ``unit`` is not a concentration or a −log10 potency unit.
    """
    u = unit if isinstance(unit, Unit) else resolve_unit(unit)
    if u.kind not in ("concentration", "log"):
        raise IngestError(
            f"unit {u.name!r} is not a potency unit and has no pXC50.",
            fix="use a concentration (nM, uM, M…) or a p-value unit (pIC50, pKi…).",
        )
    return convert_values(values, u)


#: Accepted qualifier spellings and what they mean (before any mirroring).
QUALIFIER_SPELLINGS: dict[str, str] = {
    "<": "<",
    "<=": "<",
    "=<": "<",
    "<<": "<",
    "≤": "<",
    ">": ">",
    ">=": ">",
    "=>": ">",
    ">>": ">",
    "≥": ">",
    "=": "=",
    "==": "=",
    "~": "=",
    "≈": "=",
    "": "=",
}
_MIRROR = {"<": ">", ">": "<", "=": "="}
_QUALIFIED_VALUE = r"^\s*(<<|>>|<=|>=|=<|=>|==|≤|≥|≈|<|>|=|~)?\s*(.*?)\s*$"


_MAX_LISTED = 10


def _describe_spellings(text: pd.Series, bad: np.ndarray, rows: np.ndarray) -> str:
    """``'approx' (2 rows, first row 3), 'ca' (row 5)``: every distinct bad spelling."""
    parts = []
    spellings = pd.unique(text[bad])
    for spelling in spellings[:_MAX_LISTED]:
        hit = bad & (text == spelling).to_numpy()
        n, first = int(hit.sum()), int(rows[int(np.argmax(hit))])
        where = f"row {first}" if n == 1 else f"{n} rows, first row {first}"
        parts.append(f"{str(spelling)[:12]!r} ({where})")
    if len(spellings) > _MAX_LISTED:
        parts.append(f"and {len(spellings) - _MAX_LISTED} more")
    return ", ".join(parts)


def normalize_qualifiers(
    raw: pd.Series,
    *,
    mirror: bool,
    file: str | Path | None = None,
    rows: np.ndarray | None = None,
    column: str | None = None,
    row_note: str = "row numbers count data rows from 1, header excluded",
) -> pd.Series:
    """Map qualifier spellings onto ``<``, ``=``, ``>``; mirror them if asked.

    Parameters
    ----------
    raw
        Qualifier spellings; NaN/None/empty mean ``=``.
    mirror
        Swap ``<`` and ``>`` (set when the values are concentrations converted to pXC50).
    file, column
        Where the qualifiers came from, for error messages.
    rows
        The 1-based data row of each entry in ``file`` (default: position + 1).
    row_note
        How rows count in ``file``, appended to the message.

    Returns
    -------
    pandas.Series
        Same index, string dtype, values in ``{"<", "=", ">"}``.

    Raises
    ------
    IngestError
        On unknown spellings: every distinct one is listed with its count and first row;
        the error's row is the first bad row.
    """
    text = raw.astype("object").where(raw.notna(), "").astype(str).str.strip()
    mapped = text.map(QUALIFIER_SPELLINGS)
    bad = mapped.isna().to_numpy()
    if bad.any():
        at = np.arange(1, len(text) + 1) if rows is None else np.asarray(rows)
        where = f" in column {column!r}" if column else ""
        raise IngestError(
            f"unknown qualifier(s){where}: {_describe_spellings(text, bad, at)} "
            f"({int(bad.sum())} row(s) in all; {row_note}).",
            file=file,
            row=int(at[int(np.argmax(bad))]),
            fix="use one of < <= << > >= >> = ~ or leave it empty (means =); fix every "
            "spelling listed.",
        )
    if mirror:
        mapped = mapped.map(_MIRROR)
    return mapped.astype(str)


def split_qualified_values(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Split texts like ``"<10"`` or ``">= 4.5"`` into a qualifier and a number text.

    Returns ``(qualifier_text, number_text)``, both string Series with the same index; a
    text without a leading qualifier gets an empty qualifier.
    """
    text = raw.astype("object").where(raw.notna(), "").astype(str)
    parts = text.str.extract(_QUALIFIED_VALUE, expand=True)
    return parts[0].fillna("").astype(str), parts[1].fillna("").astype(str)


def qualified_values(raw: pd.Series, *, decimal: str = ".") -> np.ndarray:
    """Which entries are a qualifier followed by a number (``">10000"``, ``"<= 5"``).

    Numeric columns hold no qualifiers (all False).
    """
    if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
        return np.zeros(len(raw), dtype=bool)
    qualifier, number = split_qualified_values(raw)
    if decimal != ".":
        number = number.str.replace(decimal, ".", regex=False)
    values = pd.to_numeric(number, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return (qualifier != "").to_numpy() & np.isfinite(values)


__all__ = [
    "QUALIFIER_SPELLINGS",
    "UNITS",
    "Unit",
    "UnitKind",
    "convert_values",
    "normalize_qualifiers",
    "qualified_values",
    "resolve_unit",
    "split_qualified_values",
    "to_pxc50",
    "valid_unit_names",
]
