"""Activity sources (long or wide, any unit) → T1 measurements keyed by original ids.

Per row: qualifier spelling normalised (and mirrored for concentrations, see
:mod:`pharmafl.ingest.units`), value parsed and converted. Shape problems (missing columns,
unknown units or qualifiers, empty ids, unknown compounds) stop the run with an
:class:`~pharmafl.common.errors.IngestError`; value problems in single rows (empty,
non-numeric, non-positive concentration, bad binary readout) become rejection rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.ingest.config import ActivitySource
from pharmafl.ingest.tables import (
    REJECTION_REASONS,
    RejectionLog,
    SourceTables,
    check_columns,
    id_text,
    row_note,
)
from pharmafl.ingest.units import Unit, convert_values, resolve_unit, valid_unit_names
from pharmafl.ingest.values import ParsedValues, parse_values, qualifier_column


def _long_cells(src: ActivitySource, frame: pd.DataFrame, known: set[str]) -> pd.DataFrame:
    """The long table: ``row, compound_raw, assay_raw, value_raw, qualifier_raw, unit_raw``."""
    display = src.path
    id_col = src.id_column()
    qual_col = qualifier_column(src, frame)
    if src.layout == "long":
        assay_col = None if src.assay_id is not None else src.column("input_assay_id")
        value_col = src.column("standard_value")
        required = [id_col, value_col]
        required += [c for c in (assay_col, qual_col, src.unit_column) if c is not None]
        check_columns(
            frame,
            required=required,
            known=known,
            extra=src.extra_columns,
            display=display,
            what="activities",
        )
        n = len(frame)
        return pd.DataFrame(
            {
                "row": np.arange(1, n + 1, dtype=np.int64),
                "compound_raw": frame[id_col],
                "assay_raw": frame[assay_col] if assay_col else src.assay_id,
                "value_raw": frame[value_col],
                "qualifier_raw": frame[qual_col] if qual_col else "",
                "unit_raw": frame[src.unit_column] if src.unit_column else src.unit,
            }
        )
    return _wide_cells(src, frame, known)


def _wide_cells(src: ActivitySource, frame: pd.DataFrame, known: set[str]) -> pd.DataFrame:
    """The filled cells of a wide table (one column per assay), in row-major order."""
    display, id_col = src.path, src.id_column()
    if src.assay_column_prefix is not None:
        prefix = src.assay_column_prefix
        assay_cols = [c for c in frame.columns if str(c).startswith(prefix)]
        if not assay_cols:
            raise IngestError(
                f"no column starts with the assay prefix {prefix!r}.",
                file=display,
                fix="check assay_column_prefix in the partner config against the header.",
            )
        names = [str(c)[len(prefix) :].strip() for c in assay_cols]
    else:
        assay_cols = list(src.assay_columns)
        names = [str(c) for c in assay_cols]
    check_columns(
        frame,
        required=[id_col, *assay_cols],
        known=known,
        extra=src.extra_columns,
        display=display,
        what="activities",
    )
    if any(not n for n in names):
        raise IngestError(
            "an assay column is named exactly like the prefix, so its assay id is empty.",
            file=display,
            fix="rename the column or change assay_column_prefix.",
        )
    # Gather the filled cells column by column (wide files are mostly empty), then order
    # them row-major: compound order, then assay column order.
    rs, cs, vals = [], [], []
    for j, name in enumerate(assay_cols):
        col = frame[name]
        filled = col.notna().to_numpy().copy()
        if not pd.api.types.is_numeric_dtype(col):
            idx = np.flatnonzero(filled)
            filled[idx] = (col.iloc[idx].astype(str).str.strip() != "").to_numpy()
        rows_j = np.flatnonzero(filled)
        rs.append(rows_j)
        cs.append(np.full(len(rows_j), j, dtype=np.int64))
        vals.append(col.to_numpy(dtype=object)[rows_j])
    r_all, c_all = np.concatenate(rs), np.concatenate(cs)
    order = np.lexsort((c_all, r_all))
    r, c = r_all[order], c_all[order]
    values = np.concatenate(vals)[order] if vals else np.array([], dtype=object)
    return pd.DataFrame(
        {
            "row": (r + 1).astype(np.int64),
            "compound_raw": frame[id_col].to_numpy(dtype=object)[r],
            "assay_raw": np.asarray(names, dtype=object)[c],
            "value_raw": values,
            "qualifier_raw": "",
            "unit_raw": src.unit,
            "column": np.asarray(assay_cols, dtype=object)[c],
        }
    )


def _map_ids(
    src: ActivitySource,
    cells: pd.DataFrame,
    compound_ids: pd.Series,
    *,
    known_assays: set[str],
    has_defaults: bool,
) -> tuple[np.ndarray, pd.Series]:
    """``input_compound_id`` per cell, and the original assay id texts."""
    display, fmt = src.path, src.file_format
    rows = cells["row"].to_numpy()
    note = row_note(fmt)
    compounds = id_text(
        cells["compound_raw"], display=display, fmt=fmt, what="compound id", row_of=rows
    )
    assays = id_text(cells["assay_raw"], display=display, fmt=fmt, what="assay id", row_of=rows)
    cid = compounds.map(compound_ids)
    unknown = cid.isna().to_numpy()
    if unknown.any():
        raise IngestError(
            f"{int(unknown.sum())} measurement(s) refer to a compound id that is in no "
            f"structure file ({note}).",
            file=display,
            row=int(rows[int(np.argmax(unknown))]),
            fix="add the compounds' structures to a structure file, or fix the compound "
            "id column mapping.",
        )
    if not has_defaults:
        unlisted = ~assays.isin(known_assays).to_numpy()
        if unlisted.any():
            raise IngestError(
                f"{int(unlisted.sum())} measurement(s) refer to an assay id that is in no "
                f"assay file ({note}).",
                file=display,
                row=int(rows[int(np.argmax(unlisted))]),
                fix="add the assays to an assay file, give this source assay_defaults, or "
                "fix the assay id column mapping.",
            )
    return cid.to_numpy(dtype=np.int64), assays


def _units(src: ActivitySource, cells: pd.DataFrame) -> tuple[pd.Series, dict[str, Unit | None]]:
    """Each cell's unit text and the :class:`Unit` of every distinct spelling (``""``:
    none given, for rejection)."""
    rows = cells["row"].to_numpy()
    unit_text = (
        cells["unit_raw"].astype("object").where(cells["unit_raw"].notna(), "").astype(str)
    ).str.strip()
    factors: dict[str, Unit | None] = {"": None}
    for spelling in pd.unique(unit_text[unit_text != ""]):
        try:
            factors[spelling] = resolve_unit(spelling)
        except IngestError:
            bad = (unit_text == spelling).to_numpy()
            raise IngestError(
                f"unknown unit {str(spelling)[:20]!r} in {int(bad.sum())} row(s) "
                f"(column {src.unit_column!r}; {row_note(src.file_format)}).",
                file=src.path,
                row=int(rows[int(np.argmax(bad))]),
                fix=f"use one of {', '.join(valid_unit_names())}.",
            ) from None
    return unit_text, factors


def read_activities(
    src: ActivitySource,
    tables: SourceTables,
    compound_ids: pd.Series,
    rejected_compounds: set[int],
    log: RejectionLog,
    *,
    known_assays: set[str],
    has_defaults: bool,
) -> tuple[pd.DataFrame, int]:
    """Read one activity source into measurements.

    Parameters
    ----------
    compound_ids
        Map from original compound id text to ``input_compound_id`` (every structure).
    rejected_compounds
        ``input_compound_id`` values whose structure was rejected.
    log
        Receives one rejection row per dropped measurement.
    known_assays
        Original ids of the assays listed in assay files.
    has_defaults
        Whether assays missing from ``known_assays`` get T0 rows from assay defaults; if
        not, a measurement of such an assay is an error.

    Returns
    -------
    (pandas.DataFrame, int)
        Accepted measurements in file order: ``input_compound_id`` (int64), ``assay``
        (original assay id text), ``standard_qualifier``, ``standard_value`` (float64),
        ``file``, ``row``; and the number of measurements read (accepted or rejected).
    """
    frame = tables.frame(src)
    cells = _long_cells(src, frame, tables.known(src, frame))
    rows = cells["row"].to_numpy()
    cid_arr, assays = _map_ids(
        src, cells, compound_ids, known_assays=known_assays, has_defaults=has_defaults
    )
    unit_text, factors = _units(src, cells)
    parsed = parse_values(
        src, cells, qualifier_column(src, frame), rows=rows, note=row_note(src.file_format)
    )
    converted, qualifier, problems = _convert(parsed, unit_text, factors)
    compound_rejected = np.isin(cid_arr, np.fromiter(rejected_compounds, dtype=np.int64))
    keep = _reject(src, cells, log, cid_arr, (("compound_rejected", compound_rejected), *problems))
    accepted = pd.DataFrame(
        {
            "input_compound_id": cid_arr[keep],
            "assay": assays.to_numpy(dtype=object)[keep].astype(str),
            "standard_qualifier": pd.Series(qualifier[keep], dtype=str),
            "standard_value": converted[keep],
            "file": src.path,
            "row": rows[keep],
        }
    ).astype({"assay": str, "file": str})
    return accepted, len(cells)


def _convert(
    parsed: ParsedValues, unit_text: pd.Series, factors: dict[str, Unit | None]
) -> tuple[np.ndarray, np.ndarray, tuple[tuple[str, np.ndarray], ...]]:
    """Values in their stored unit, qualifiers as stored, and each rejection reason's
    cells (in the order they are checked)."""
    values, empty, non_numeric = parsed.values, parsed.empty, parsed.non_numeric
    kinds = np.array(
        [u.kind if u is not None else "" for u in unit_text.map(factors)], dtype=object
    )
    conc, binary = kinds == "concentration", kinds == "binary"
    converted = np.full(len(values), np.nan)
    for spelling, unit in factors.items():
        m = (unit_text == spelling).to_numpy()
        if unit is not None and m.any():
            converted[m] = convert_values(values[m], unit)
    # Concentrations turn into pXC50: "> 30000 nM" means "pXC50 < 4.52".
    qualifier = parsed.qualifier.copy()
    mirror = {"<": ">", ">": "<", "=": "="}
    qualifier[conc] = [mirror[q] for q in qualifier[conc]]
    qualifier[binary] = "="
    numeric = ~empty & ~non_numeric
    problems = (
        ("empty_unit", (unit_text == "").to_numpy()),
        ("empty_value", empty),
        ("non_numeric_value", non_numeric),
        ("non_positive_value", conc & numeric & (values <= 0)),
        ("invalid_binary_value", binary & numeric & ~np.isin(values, (0.0, 1.0, -1.0))),
    )
    return converted, qualifier, problems


def _reject(
    src: ActivitySource,
    cells: pd.DataFrame,
    log: RejectionLog,
    cid_arr: np.ndarray,
    reasons: tuple[tuple[str, np.ndarray], ...],
) -> np.ndarray:
    """Log one rejection per cell and first reason that applies; returns the kept cells."""
    rows = cells["row"].to_numpy()
    column = cells["column"].to_numpy(dtype=object) if "column" in cells else None
    keep = np.ones(len(cells), dtype=bool)
    for reason, mask in reasons:
        mask = mask & keep
        if mask.any():
            message = None
            if column is not None:
                text = REJECTION_REASONS[reason]
                message = np.array([f"{text} (column {c!r})" for c in column[mask]], dtype=object)
            log.add(src.path, rows[mask], cid_arr[mask], reason, message)
            keep &= ~mask
    return keep


__all__ = ["read_activities"]
