"""Activity aggregation, T1 → T4r (MELLODDY-TUNER ``aggregate_values``, reference §1.9).

Steps, in TUNER's order: credibility ranges per assay type (binary assays must hold ±1);
qualifier mapping; records of compounds that failed standardization are dropped; replicates
per ``(input_assay_id, descriptor_vector_id, fold_id)`` are aggregated with a rule chosen by
assay type; assays whose smallest per-fold standard deviation is ≤ ``std_min`` are dropped
(catalogue assays are kept but leave regression); dose-response values are rounded to 2
decimals. Everything is vectorised over records (no per-record Python).

Deliberate differences from TUNER 3.0.2 (documented in ``docs/prepared-format.md``):
the CATALOG-PANEL credibility range is applied (TUNER reads it but never uses it), and the
per-fold variance looks at all ``nfolds`` folds (a fold without records counts as 0, which
equals TUNER whenever every fold holds some record, as it does on real data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pharmafl.common.params import TaskParams
from pharmafl.data._common import (
    MAX_RULE_TYPES,
    ROUNDED_TYPES,
    check_folds,
    concat_rejections,
    normalise_t0,
    rejection_frame,
    require_columns,
)

log = logging.getLogger(__name__)

STEP = "aggregate"

#: Qualifier spellings → ``<``, ``=``, ``>`` (TUNER ``map_qualifiers``); empty means ``=``.
QUALIFIER_MAP: dict[str, str] = {
    "<": "<",
    "<=": "<",
    "<<": "<",
    ">": ">",
    ">=": ">",
    ">>": ">",
    "=": "=",
    "~": "=",
    "": "=",
}

# Aggregation rules (codes kept small for vectorised selection).
_BINARY, _MAX, _MIN, _ABSMAX, _MEDIAN = 0, 1, 2, 3, 4

T4R_COLUMNS = (
    "input_assay_id",
    "descriptor_vector_id",
    "fold_id",
    "standard_qualifier",
    "standard_value",
)


@dataclass
class AggregationResult:
    """Output of :func:`aggregate_activities`.

    Attributes
    ----------
    t4r
        One record per ``(input_assay_id, descriptor_vector_id, fold_id)``: columns
        :data:`T4R_COLUMNS`, sorted by assay then descriptor vector.
    t0_upd
        T0 (normalised) plus ``variance_quorum_OK``; ``use_in_regression`` is switched off
        for catalogue assays that failed the variance filter.
    rejections
        One row per rejected measurement (``failed_structure``, ``out_of_range``,
        ``missing_value``, ``binary_value``, ``unknown_assay``, ``unknown_qualifier``) or
        aggregated record (``aggregation_conflict``, ``low_variance``).
    counts
        Counts for the run report.
    """

    t4r: pd.DataFrame
    t0_upd: pd.DataFrame
    rejections: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def map_qualifiers(q: pd.Series) -> pd.Series:
    """Map qualifier spellings onto ``<``, ``=``, ``>``; unknown spellings become NaN."""
    s = q.astype(object).where(q.notna(), "")
    return s.map(lambda v: QUALIFIER_MAP.get(str(v).strip(), np.nan)).astype(object)


def _rules(t0n: pd.DataFrame) -> pd.Series:
    """Aggregation rule per assay (index ``input_assay_id``)."""
    atype = t0n["assay_type"]
    rule = np.select(
        [
            t0n["is_binary"].to_numpy(bool),
            atype.isin(MAX_RULE_TYPES).to_numpy(),
            (atype == "ADME").to_numpy(),
            (t0n["direction"] == "low").to_numpy(),
            (t0n["direction"] == "high").to_numpy(),
        ],
        [_BINARY, _MAX, _MEDIAN, _MIN, _MAX],
        default=_ABSMAX,
    )
    return pd.Series(rule, index=t0n["input_assay_id"].to_numpy())


def _screen_measurements(
    t1: pd.DataFrame, t0n: pd.DataFrame, t5: pd.DataFrame, params: TaskParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Attach assay metadata and descriptor vectors; split into kept rows and rejections."""
    df = pd.DataFrame(
        {
            "input_compound_id": t1["input_compound_id"].to_numpy(np.int64),
            "input_assay_id": t1["input_assay_id"].to_numpy(np.int64),
            "standard_qualifier": map_qualifiers(t1["standard_qualifier"]).to_numpy(object),
            "standard_value": pd.to_numeric(t1["standard_value"], errors="coerce").to_numpy(
                np.float64
            ),
        }
    )
    meta = t0n.set_index("input_assay_id")
    atype = df["input_assay_id"].map(meta["assay_type"])
    binary = df["input_assay_id"].map(meta["is_binary"]).fillna(False).to_numpy(bool)
    lo = atype.map({k: r.min for k, r in params.credibility_range.items()}).fillna(-np.inf)
    hi = atype.map({k: r.max for k, r in params.credibility_range.items()}).fillna(np.inf)
    v = df["standard_value"].to_numpy()
    t5i = t5.set_index("input_compound_id")
    dv = df["input_compound_id"].map(t5i["descriptor_vector_id"])
    df["descriptor_vector_id"] = dv
    df["fold_id"] = df["input_compound_id"].map(t5i["fold_id"])
    reasons = [
        ("unknown_assay", atype.isna().to_numpy(), "assay is not listed in T0"),
        (
            "unknown_qualifier",
            df["standard_qualifier"].isna().to_numpy(),
            "qualifier is not one of < <= << > >= >> = ~ or empty",
        ),
        ("missing_value", np.isnan(v), "standard_value is empty or not a number"),
        (
            "binary_value",
            binary & ~np.isin(v, (-1.0, 1.0)),
            "binary assay value must be exactly -1 or +1",
        ),
        (
            "out_of_range",
            ~binary & ((v < lo.to_numpy()) | (v > hi.to_numpy())),
            "value outside the credibility range of its assay type (consortium "
            "parameter tasks.credibility_range)",
        ),
        (
            "failed_structure",
            dv.isna().to_numpy(),
            "compound has no descriptor vector (its structure failed standardization)",
        ),
    ]
    bad = np.zeros(len(df), dtype=bool)
    parts = []
    for reason, mask, message in reasons:
        hit = mask & ~bad
        if hit.any():
            sub = df.loc[hit]
            parts.append(
                rejection_frame(
                    STEP,
                    reason,
                    message,
                    input_assay_id=sub["input_assay_id"].to_numpy(),
                    input_compound_id=sub["input_compound_id"].to_numpy(),
                )
            )
        bad |= mask
    kept = df.loc[~bad].copy()
    kept["descriptor_vector_id"] = kept["descriptor_vector_id"].astype(np.int64)
    kept["fold_id"] = kept["fold_id"].astype(np.int64)
    return kept.reset_index(drop=True), concat_rejections(parts)


def _aggregate_replicates(df: pd.DataFrame, rule_of_assay: pd.Series) -> pd.DataFrame:
    """One record per (assay, descriptor vector, fold); ``standard_qualifier`` None = conflict."""
    if len(df) == 0:
        return pd.DataFrame(
            {
                "input_assay_id": np.array([], np.int64),
                "descriptor_vector_id": np.array([], np.int64),
                "fold_id": np.array([], np.int64),
                "standard_qualifier": pd.Series([], dtype=object),
                "standard_value": np.array([], np.float64),
            }
        )
    keys = ["input_assay_id", "descriptor_vector_id", "fold_id"]
    gid = df.groupby(keys, sort=True).ngroup().to_numpy(np.int64)
    n_groups = int(gid.max()) + 1
    v = df["standard_value"].to_numpy(np.float64)
    q = df["standard_qualifier"].to_numpy(object)
    rule = df["input_assay_id"].map(rule_of_assay).to_numpy(np.int64)
    pos = np.arange(len(df))
    is_lt, is_gt, is_eq = (q == "<"), (q == ">"), (q == "=")

    # Selection rules (max ignoring "<" when "=" or ">" exist; min; largest |value|):
    # sort each group so that the chosen record comes first; ties keep input order as
    # numpy's argmax/argmin do in TUNER.
    has_non_lt = np.bincount(gid, weights=(~is_lt).astype(np.float64), minlength=n_groups) > 0
    ineligible = (rule == _MAX) & is_lt & has_non_lt[gid]
    score = np.select([rule == _MIN, rule == _ABSMAX], [v, -np.abs(v)], default=-v)
    order = np.lexsort((pos, score, ineligible, gid))
    first = order[np.r_[True, gid[order][1:] != gid[order][:-1]]]
    out_v = v[first].copy()
    out_q = q[first].copy()
    g_rule = rule[first]

    # Binary: the most frequent value, a tie gives +1; qualifier "=".
    b = g_rule == _BINARY
    if b.any():
        s = np.bincount(gid, weights=np.sign(v), minlength=n_groups)
        out_v[b] = np.where(s[b] < 0, -1.0, 1.0)
        out_q[b] = "="

    # ADME: median value, most frequent qualifier ("=" wins ties; "<" vs ">" tie fails).
    m = g_rule == _MEDIAN
    if m.any():
        med = pd.Series(v).groupby(gid).median().to_numpy()
        c = np.stack(
            [
                np.bincount(gid, weights=w.astype(np.float64), minlength=n_groups)
                for w in (is_lt, is_gt, is_eq)
            ],
            axis=1,
        )
        top = c.max(axis=1)
        n_top = (c == top[:, None]).sum(axis=1)
        winner = np.array(["<", ">", "="], dtype=object)[c.argmax(axis=1)]
        qual = winner.copy()
        tie = n_top > 1
        qual[tie & (c[:, 2] == top)] = "="
        qual[tie & (c[:, 2] < top)] = None
        out_v[m] = med[m]
        out_q[m] = qual[m]

    return pd.DataFrame(
        {
            "input_assay_id": df["input_assay_id"].to_numpy(np.int64)[first],
            "descriptor_vector_id": df["descriptor_vector_id"].to_numpy(np.int64)[first],
            "fold_id": df["fold_id"].to_numpy(np.int64)[first],
            "standard_qualifier": out_q,
            "standard_value": out_v,
        }
    )


def low_variance_assays(t4r: pd.DataFrame, nfolds: int, std_min: float) -> np.ndarray:
    """Assay ids whose smallest per-fold standard deviation (ddof=1) is ≤ ``std_min``.

    A fold with fewer than two records, or none, has standard deviation 0 (TUNER fills the
    undefined values with 0).
    """
    if len(t4r) == 0:
        return np.array([], dtype=np.int64)
    std = t4r.groupby(["input_assay_id", "fold_id"])["standard_value"].std(ddof=1)
    table = std.unstack("fold_id").reindex(columns=range(nfolds)).fillna(0.0)
    min_std = table.min(axis=1)
    return min_std.index[min_std.to_numpy() <= std_min].to_numpy(np.int64)


def aggregate_activities(
    t0: pd.DataFrame,
    t1: pd.DataFrame,
    t5: pd.DataFrame,
    params: TaskParams,
    nfolds: int,
) -> AggregationResult:
    """Aggregate T1 measurements into T4r records (MELLODDY-TUNER §1.9).

    Replicate rules per assay: binary → most frequent value (tie → +1);
    NON-CATALOG-PANEL and OTHER → maximum, ignoring ``<`` values when any ``=`` or ``>``
    exist; ADME → median value and most frequent qualifier (``=`` wins ties, a ``<``/``>``
    tie is rejected as ``aggregation_conflict``); CATALOG-PANEL and AUX_HTS by direction
    (``low`` → minimum, ``high`` → maximum as above, unset → largest absolute value).

    Parameters
    ----------
    t0, t1
        Assays and measurements as given by :mod:`pharmafl.ingest` (qualifiers and units
        already normalised; values are pXC50 for dose-response).
    t5
        ``input_compound_id → descriptor_vector_id, fold_id`` from
        :func:`~pharmafl.data.descriptors.dedupe_descriptors`.
    params
        The consortium's task parameters.
    nfolds
        Number of folds (fold ids are ``0 … nfolds-1``).

    Returns
    -------
    AggregationResult
    """
    require_columns(
        t1, ("input_compound_id", "input_assay_id", "standard_qualifier", "standard_value"), "T1"
    )
    require_columns(t5, ("input_compound_id", "descriptor_vector_id", "fold_id"), "T5")
    check_folds(t5["fold_id"].to_numpy(), nfolds, "T5")
    t0n = normalise_t0(t0)
    kept, rej_screen = _screen_measurements(t1, t0n, t5, params)

    agg = _aggregate_replicates(kept, _rules(t0n))
    conflict = agg["standard_qualifier"].isna().to_numpy()
    rej_conflict = (
        rejection_frame(
            STEP,
            "aggregation_conflict",
            "replicates of an ADME record tie between < and > qualifiers",
            input_assay_id=agg.loc[conflict, "input_assay_id"].to_numpy(),
            descriptor_vector_id=agg.loc[conflict, "descriptor_vector_id"].to_numpy(),
        )
        if conflict.any()
        else concat_rejections([])
    )
    agg = agg.loc[~conflict].reset_index(drop=True)

    low = low_variance_assays(agg, nfolds, params.std_min)
    atype = t0n.set_index("input_assay_id")["assay_type"]
    low_types = atype.reindex(low)
    low_catalog = low[(low_types == "CATALOG-PANEL").to_numpy()]
    low_drop = low[(low_types != "CATALOG-PANEL").to_numpy()]
    dropped = agg["input_assay_id"].isin(low_drop).to_numpy()
    rej_std = (
        rejection_frame(
            STEP,
            "low_variance",
            "assay dropped: its smallest per-fold standard deviation is not above "
            "tasks.std_min (a fold has fewer than two distinct values)",
            input_assay_id=agg.loc[dropped, "input_assay_id"].to_numpy(),
            descriptor_vector_id=agg.loc[dropped, "descriptor_vector_id"].to_numpy(),
        )
        if dropped.any()
        else concat_rejections([])
    )
    t4r = agg.loc[~dropped].reset_index(drop=True)

    rounded = t4r["input_assay_id"].map(atype).isin(ROUNDED_TYPES).to_numpy()
    vals = t4r["standard_value"].to_numpy(np.float64).copy()
    vals[rounded] = np.round(vals[rounded], 2)
    t4r["standard_value"] = vals
    t4r["standard_qualifier"] = t4r["standard_qualifier"].astype(object)

    t0_upd = t0n.copy()
    t0_upd["variance_quorum_OK"] = t0_upd["input_assay_id"].isin(t4r["input_assay_id"])
    t0_upd.loc[t0_upd["input_assay_id"].isin(low_catalog), "use_in_regression"] = False

    rejections = concat_rejections([rej_screen, rej_conflict, rej_std])
    counts = {
        "measurements_input": len(t1),
        "measurements_kept": len(kept),
        **{
            f"measurements_rejected_{r}": int(n)
            for r, n in rej_screen["reason"].value_counts().sort_index().items()
        },
        "records_aggregated": len(agg) + int(conflict.sum()),
        "records_aggregation_conflict": int(conflict.sum()),
        "records_low_variance": int(dropped.sum()),
        "assays_low_variance_dropped": len(low_drop),
        "assays_low_variance_catalog_kept": len(low_catalog),
        "assays_with_records": int(t4r["input_assay_id"].nunique()),
        "t4r_records": len(t4r),
    }
    log.info("aggregation: %d measurements → %d T4r records", len(t1), len(t4r))
    return AggregationResult(t4r=t4r, t0_upd=t0_upd, rejections=rejections, counts=counts)


__all__ = [
    "AggregationResult",
    "QUALIFIER_MAP",
    "T4R_COLUMNS",
    "aggregate_activities",
    "low_variance_assays",
    "map_qualifiers",
]
