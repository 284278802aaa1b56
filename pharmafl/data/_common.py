"""Shared helpers of :mod:`pharmafl.data`: column names, T0 normalisation, rejection rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from pharmafl.common.errors import PreparationError

#: Dose-response assay types (pXC50-like values, TUNER's "panel" family).
DOSE_RESPONSE_TYPES: tuple[str, ...] = ("NON-CATALOG-PANEL", "CATALOG-PANEL", "OTHER")
#: Types whose aggregated values are rounded to 2 decimals (TUNER §1.9 step 7).
ROUNDED_TYPES: tuple[str, ...] = ("NON-CATALOG-PANEL", "OTHER")
#: Types aggregated with the "most potent" rule regardless of direction.
MAX_RULE_TYPES: tuple[str, ...] = ("NON-CATALOG-PANEL", "OTHER")
AUX_TYPES: tuple[str, ...] = ("AUX_HTS",)
EXPERT_COLUMNS: tuple[str, ...] = tuple(f"expert_threshold_{i}" for i in range(1, 6))

#: Columns of every rejection table returned by this package.
REJECTION_COLUMNS: tuple[str, ...] = (
    "step",
    "input_assay_id",
    "input_compound_id",
    "descriptor_vector_id",
    "reason",
    "message",
)

_T0_REQUIRED = ("input_assay_id", "assay_type")
_T1_REQUIRED = ("input_compound_id", "input_assay_id", "standard_qualifier", "standard_value")


def require_columns(df: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise :class:`PreparationError` naming the missing columns of table ``name``."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise PreparationError(
            f"table {name} lacks column(s) {missing}; it has {list(df.columns)}.",
            fix=f"pass {name} as produced by pharmafl.ingest (see schemas/).",
        )


def _bool_column(s: pd.Series) -> pd.Series:
    if s.dtype == bool:
        return s
    mapped = s.map(
        lambda v: (
            False
            if v is None or (isinstance(v, float) and np.isnan(v))
            else (str(v).strip().lower() in ("1", "true", "t", "yes", "y", "1.0"))
        )
    )
    return mapped.astype(bool)


def normalise_t0(t0: pd.DataFrame) -> pd.DataFrame:
    """Return a clean copy of T0: typed flags, normalised ``direction``, all optional columns.

    ``direction`` becomes ``"high"``, ``"low"`` or ``None``; ``is_binary`` and
    ``use_in_regression`` become bool (empty cells → False; a missing ``is_binary`` column →
    False, a missing ``use_in_regression`` column → ``not is_binary``); absent
    expert-threshold or ``catalog_assay_id`` columns are added as NaN.

    Raises
    ------
    PreparationError
        When required columns are missing or ``input_assay_id`` is not unique.
    """
    require_columns(t0, _T0_REQUIRED, "T0")
    out = t0.copy().reset_index(drop=True)
    out["input_assay_id"] = out["input_assay_id"].astype(np.int64)
    if out["input_assay_id"].duplicated().any():
        dup = int(out.loc[out["input_assay_id"].duplicated(), "input_assay_id"].iloc[0])
        raise PreparationError(
            f"T0 lists input_assay_id {dup} more than once.",
            fix="give every assay one row in T0 (ids must be unique across T0 files).",
        )
    out["assay_type"] = out["assay_type"].astype(object)
    out["is_binary"] = _bool_column(out["is_binary"]) if "is_binary" in out.columns else False
    # Like pharmafl.ingest: without the column, every non-binary assay is a regression task.
    out["use_in_regression"] = (
        _bool_column(out["use_in_regression"])
        if "use_in_regression" in out.columns
        else ~out["is_binary"]
    )
    raw = out["direction"].tolist() if "direction" in out.columns else [None] * len(out)
    norm = [str(v).strip().lower() if isinstance(v, str) else None for v in raw]
    out["direction"] = pd.Series(
        [v if v in ("high", "low") else None for v in norm], index=out.index, dtype=object
    )
    for col in (*EXPERT_COLUMNS, "catalog_assay_id"):
        out[col] = (
            pd.to_numeric(out[col], errors="coerce").astype(np.float64)
            if col in out.columns
            else np.nan
        )
    return out


def _length(v: Any) -> int | None:
    if v is None or isinstance(v, str):
        return None
    arr = np.asarray(v)
    return len(arr) if arr.ndim == 1 else None


def rejection_frame(
    step: str,
    reason: str,
    message: Any,
    *,
    input_assay_id: Any = None,
    input_compound_id: Any = None,
    descriptor_vector_id: Any = None,
) -> pd.DataFrame:
    """Build a rejection table (:data:`REJECTION_COLUMNS`).

    ``message`` and the id arguments are scalars or 1-D arrays of one common length; ids
    left as ``None`` are missing (<NA>).
    """
    ids = {
        "input_assay_id": input_assay_id,
        "input_compound_id": input_compound_id,
        "descriptor_vector_id": descriptor_vector_id,
    }
    lengths = {n for v in (*ids.values(), message) if (n := _length(v)) is not None}
    if len(lengths) > 1:
        raise ValueError(f"rejection columns of different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 1
    data: dict[str, Any] = {"step": [step] * n}
    for name, v in ids.items():
        if v is None:
            data[name] = pd.array([pd.NA] * n, dtype="Int64")
        else:
            data[name] = pd.array(
                np.broadcast_to(np.asarray(v, dtype=np.int64), (n,)), dtype="Int64"
            )
    data["reason"] = [reason] * n
    data["message"] = [str(message)] * n if _length(message) is None else [str(x) for x in message]
    return pd.DataFrame(data, columns=list(REJECTION_COLUMNS))


def empty_rejections() -> pd.DataFrame:
    """A rejection table with no rows and the standard columns and dtypes."""
    return pd.DataFrame(
        {
            "step": pd.Series([], dtype=object),
            "input_assay_id": pd.array([], dtype="Int64"),
            "input_compound_id": pd.array([], dtype="Int64"),
            "descriptor_vector_id": pd.array([], dtype="Int64"),
            "reason": pd.Series([], dtype=object),
            "message": pd.Series([], dtype=object),
        }
    )


def concat_rejections(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate rejection tables, keeping the standard dtypes even when all are empty."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return empty_rejections()
    out = pd.concat(parts, ignore_index=True)
    for c in ("input_assay_id", "input_compound_id", "descriptor_vector_id"):
        out[c] = out[c].astype("Int64")
    return out[list(REJECTION_COLUMNS)]


def fold_matrix(
    task_idx: np.ndarray,
    folds: np.ndarray,
    n_tasks: int,
    nfolds: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Counts (or weighted sums) per task and fold as an ``(n_tasks, nfolds)`` array."""
    flat = task_idx.astype(np.int64) * nfolds + folds.astype(np.int64)
    counts = np.bincount(flat, weights=weights, minlength=n_tasks * nfolds)
    return counts.reshape(n_tasks, nfolds)


def check_folds(folds: np.ndarray, nfolds: int, name: str) -> None:
    """Raise when a fold id lies outside ``0 … nfolds-1``."""
    if len(folds) and (int(np.min(folds)) < 0 or int(np.max(folds)) >= nfolds):
        raise PreparationError(
            f"{name} has fold ids outside 0…{nfolds - 1} "
            f"(found {int(np.min(folds))}…{int(np.max(folds))}).",
            fix="use the same folding.nfolds for fold assignment and task building.",
        )


__all__ = [
    "AUX_TYPES",
    "DOSE_RESPONSE_TYPES",
    "EXPERT_COLUMNS",
    "MAX_RULE_TYPES",
    "REJECTION_COLUMNS",
    "ROUNDED_TYPES",
    "check_folds",
    "concat_rejections",
    "empty_rejections",
    "fold_matrix",
    "normalise_t0",
    "rejection_frame",
    "require_columns",
]
