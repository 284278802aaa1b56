"""Assay sources and defaults → T0 rows keyed by the partner's own assay id.

The checks are the vectorised form of :class:`pharmafl.ingest.models.T0Assay` (MELLODDY
TUNER ``validate_T0`` and ``sanity_check_input_assay_id``): one row per assay id across all
assay files, a known assay type, booleans, numeric thresholds, ``direction`` high/low/empty,
and ``catalog_assay_id`` only on CATALOG-PANEL assays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.common.params import ASSAY_TYPES
from pharmafl.ingest.config import AssayDefaults, AssaySource
from pharmafl.ingest.models import EXPERT_THRESHOLD_COLUMNS, T0_COLUMNS
from pharmafl.ingest.tables import (
    SourceTables,
    check_columns,
    id_text,
    parse_bool,
    parse_optional_float,
    row_note,
)

#: Columns of the assay table built here: the partner's id plus every T0 field but the id.
ASSAY_FIELDS: tuple[str, ...] = tuple(c for c in T0_COLUMNS if c != "input_assay_id")


def _text(series: pd.Series) -> pd.Series:
    return series.astype("object").where(series.notna(), "").astype(str).str.strip()


def defaults_table(assays: Sequence[str], defaults: AssayDefaults, *, origin: str) -> pd.DataFrame:
    """T0 rows for ``assays`` filled from ``defaults``; ``file`` is set to ``origin``."""
    n = len(assays)
    data: dict[str, object] = {
        "assay": pd.Series(list(assays), dtype=str),
        "assay_type": pd.Series([defaults.assay_type] * n, dtype=str),
        "use_in_regression": np.full(n, defaults.regression, dtype=bool),
        "is_binary": np.full(n, defaults.is_binary, dtype=bool),
    }
    for i, name in enumerate(EXPERT_THRESHOLD_COLUMNS):
        value = defaults.expert_thresholds[i] if i < len(defaults.expert_thresholds) else np.nan
        data[name] = np.full(n, value, dtype=np.float64)
    data["direction"] = pd.Series([defaults.direction] * n, dtype=object)
    data["catalog_assay_id"] = np.full(n, np.nan)
    data["file"] = pd.Series([origin] * n, dtype=str)
    data["row"] = np.zeros(n, dtype=np.int64)
    return pd.DataFrame(data)


def read_assays(src: AssaySource, tables: SourceTables) -> pd.DataFrame:
    """Read one assay file into T0 fields (see :data:`ASSAY_FIELDS`) plus ``assay``,
    ``file`` and ``row``.

    Raises
    ------
    IngestError
        On a missing id column or mapped column, an unexpected column, an empty or repeated
        assay id, or a value of the wrong type, naming the file and row.
    """
    frame = tables.frame(src)
    display, fmt, d = src.path, src.file_format, src.defaults
    id_col = src.column("input_assay_id")
    present = set(frame.columns)
    source_of = {f: src.columns.get(f, f) for f in ASSAY_FIELDS if f in src.columns or f in present}
    check_columns(
        frame,
        required=[id_col, *source_of.values()],
        known=tables.known(src, frame),
        extra=src.extra_columns,
        display=display,
        what="assays",
    )
    n = len(frame)
    rows = np.arange(1, n + 1, dtype=np.int64)
    ids = id_text(frame[id_col], display=display, fmt=fmt, what="assay id", row_of=rows)
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        raise IngestError(
            f"duplicate assay id: {int(dup.sum())} row(s) repeat an earlier id ({row_note(fmt)}).",
            file=display,
            row=int(rows[int(np.argmax(dup))]),
            fix="list every assay once.",
        )
    out = defaults_table(ids.tolist(), d, origin=display)
    out["row"] = rows

    def col(field: str) -> pd.Series | None:
        name = source_of.get(field)
        return None if name is None else frame[name]

    if (s := col("assay_type")) is not None:
        text = _text(s).str.upper()
        text = text.where(text != "", d.assay_type)
        bad = ~text.isin(ASSAY_TYPES).to_numpy()
        if bad.any():
            raise IngestError(
                f"unknown assay_type in column {source_of['assay_type']!r} ({row_note(fmt)}).",
                file=display,
                row=int(np.argmax(bad)) + 1,
                fix=f"use one of {', '.join(ASSAY_TYPES)}.",
            )
        out["assay_type"] = text.astype(str).to_numpy()
    if (s := col("is_binary")) is not None:
        out["is_binary"] = parse_bool(
            s, default=d.is_binary, display=display, fmt=fmt, column=source_of["is_binary"]
        )
    # use_in_regression defaults to "not binary" per row unless the defaults say otherwise.
    regression = (
        ~out["is_binary"].to_numpy()
        if d.use_in_regression is None
        else np.full(n, d.use_in_regression, dtype=bool)
    )
    if (s := col("use_in_regression")) is not None:
        regression = parse_bool(
            s, default=regression, display=display, fmt=fmt, column=source_of["use_in_regression"]
        )
    out["use_in_regression"] = regression
    for field in (*EXPERT_THRESHOLD_COLUMNS, "catalog_assay_id"):
        if (s := col(field)) is not None:
            out[field] = parse_optional_float(
                s, display=display, fmt=fmt, column=source_of[field], decimal=src.decimal
            )
    if (s := col("direction")) is not None:
        text = _text(s).str.lower()
        bad = ~text.isin(["high", "low", ""]).to_numpy()
        if bad.any():
            raise IngestError(
                f"direction must be high, low or empty ({row_note(fmt)}).",
                file=display,
                row=int(np.argmax(bad)) + 1,
                fix="write high (larger values are active) or low.",
            )
        fallback = d.direction
        out["direction"] = pd.Series(
            [v if v else fallback for v in text.tolist()], dtype=object
        ).to_numpy()
    cat = (
        out["catalog_assay_id"].notna().to_numpy()
        & (out["assay_type"] != "CATALOG-PANEL").to_numpy()
    )
    if cat.any():
        raise IngestError(
            f"catalog_assay_id is only allowed on CATALOG-PANEL assays ({row_note(fmt)}).",
            file=display,
            row=int(np.argmax(cat)) + 1,
            fix="clear catalog_assay_id or set assay_type = CATALOG-PANEL.",
        )
    return out


def combine_assays(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate assay tables; an assay id listed in two files is an error."""
    if not parts:
        return defaults_table([], AssayDefaults(), origin="")
    allt = pd.concat(parts, ignore_index=True)
    dup = allt["assay"].duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        first = int(np.flatnonzero((allt["assay"] == allt["assay"].iat[i]).to_numpy())[0])
        raise IngestError(
            f"duplicate assay id: this row's id is also in {allt['file'].iat[first]} "
            f"(row {int(allt['row'].iat[first])}).",
            file=str(allt["file"].iat[i]),
            row=int(allt["row"].iat[i]),
            fix="list every assay in one file only.",
        )
    return allt


__all__ = ["ASSAY_FIELDS", "combine_assays", "defaults_table", "read_assays"]
