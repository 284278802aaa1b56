"""Classification tasks from T4r: thresholds and censor-aware labels (reference §1.10).

One assay gives one or more classification tasks, one per threshold (MELLODDY-TUNER
``apply_thresholding``):

* binary assays: the value is the label (threshold 0, method ``expert``);
* dose-response (OTHER, NON-CATALOG-PANEL, CATALOG-PANEL): more than three expert
  thresholds → those only; one to three → those plus the auxiliary "sandwich"
  (min − 0.5 ``aux_low``, max + 0.5 ``aux_high``); none → the fixed-adaptive ladder
  8/7/6/5/4.7/4.4 (the first giving ≥ 20 % actives and the OTHER training quorum, counted
  with direction ``high`` as TUNER does), else the median of all values with ``<`` shifted
  by −log10 2 and ``>`` by +log10 2; then the sandwich around it;
* ADME: expert thresholds, else the median of uncensored values plus the upper (direction
  high or unset) or lower (low) quartile when it differs; at least two uncensored values;
* AUX_HTS: the global threshold (an r-score): active if value ≥ t (high), ≤ −t (low), or
  |value| ≥ t (unset); never ambiguous.

Labels (direction high; mirrored for low): active if value ≥ t and not ``<``; inactive if
value < t and not ``>``, or value = t with ``<``; otherwise ambiguous — dropped and
reported. The sandwich is switched off with ``TaskParams.aux_sandwich = False``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pharmafl.common.params import ClassificationQuorum, TaskParams
from pharmafl.data._common import AUX_TYPES, DOSE_RESPONSE_TYPES, EXPERT_COLUMNS

log = logging.getLogger(__name__)

LOG10_2 = float(np.log10(2.0))
SANDWICH = 0.5

T3C_COLUMNS = (
    "classification_task_id",
    "input_assay_id",
    "assay_type",
    "variance_quorum_OK",
    "use_in_regression",
    "is_binary",
    "is_auxiliary",
    "threshold",
    "threshold_method",
    "direction",
    "catalog_assay_id",
    "catalog_task_id",
)
T4C_COLUMNS = (
    "classification_task_id",
    "descriptor_vector_id",
    "fold_id",
    "input_assay_id",
    "standard_qualifier",
    "standard_value",
    "threshold",
    "class_label",
)

# Label modes of a task.
_HIGH, _LOW, _HTS_HIGH, _HTS_LOW, _HTS_ABS, _BIN = 0, 1, 2, 3, 4, 5


@dataclass
class ThresholdResult:
    """Output of :func:`make_classification_tasks`.

    Attributes
    ----------
    t3c
        One row per classification task (:data:`T3C_COLUMNS`), ordered by
        ``classification_task_id`` = rank of ``(input_assay_id, threshold)`` from 1.
    t4c
        Labelled records (:data:`T4C_COLUMNS`), ``class_label`` int8 ±1.
    ambiguous
        Records whose censored value cannot be placed on either side of the threshold
        (same columns, ``class_label`` missing); reported, never used.
    no_task_assays
        Assays with records but no threshold (ADME with fewer than two uncensored values,
        AUX_HTS without a global threshold).
    """

    t3c: pd.DataFrame
    t4c: pd.DataFrame
    ambiguous: pd.DataFrame
    no_task_assays: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))


def class_labels(
    values: np.ndarray, qualifiers: np.ndarray, thresholds: np.ndarray, low: np.ndarray
) -> np.ndarray:
    """Censor-aware labels: +1 active, −1 inactive, NaN ambiguous (TUNER ``get_class_label``).

    ``low`` (bool per record) mirrors the rule for assays where a low value is active.
    """
    v, t = np.asarray(values, np.float64), np.asarray(thresholds, np.float64)
    q = np.asarray(qualifiers, dtype=object)
    lt, gt = q == "<", q == ">"
    # Mirror for direction low: negate values and thresholds and swap < and >.
    vv = np.where(low, -v, v)
    tt = np.where(low, -t, t)
    below, above = np.where(low, gt, lt), np.where(low, lt, gt)
    out = np.zeros(len(v), dtype=np.float64)
    out[(vv >= tt) & ~below] = 1.0
    out[(vv < tt) & ~above] = -1.0
    out[(vv == tt) & below] = -1.0
    out[((vv > tt) & below) | ((vv < tt) & above)] = np.nan
    return out


def label_modes(is_binary: np.ndarray, is_hts: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """How each task turns a value into a label (see :func:`threshold_labels`).

    Parameters
    ----------
    is_binary, is_hts : bool arrays, one per task
        Binary assay; AUX_HTS assay type.
    direction : object array
        ``"high"``, ``"low"`` or None (the task's direction as in T3c/T8c).
    """
    d = np.asarray(direction, dtype=object)
    hts = np.asarray(is_hts, dtype=bool)
    return np.select(
        [
            np.asarray(is_binary, dtype=bool),
            hts & (d == "high"),
            hts & (d == "low"),
            hts,
            d == "low",
        ],
        [_BIN, _HTS_HIGH, _HTS_LOW, _HTS_ABS, _LOW],
        default=_HIGH,
    )


def threshold_labels(
    values: np.ndarray, qualifiers: np.ndarray, thresholds: np.ndarray, modes: np.ndarray
) -> np.ndarray:
    """Labels of aggregated records for their tasks: +1, −1 or NaN (ambiguous).

    Binary tasks take the value's sign, AUX_HTS tasks compare with the global threshold
    (never ambiguous), the rest are censor-aware (:func:`class_labels`). ``modes`` from
    :func:`label_modes`; one entry per record in every argument. The same rule labels the
    preparation's records and a partner's new measurements.
    """
    v = np.asarray(values, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    m = np.asarray(modes)
    lab = class_labels(v, np.asarray(qualifiers, dtype=object), t, m == _LOW)
    lab = np.where(m == _BIN, np.sign(v), lab)
    lab = np.where(m == _HTS_HIGH, np.where(v >= t, 1.0, -1.0), lab)
    lab = np.where(m == _HTS_LOW, np.where(v <= t, 1.0, -1.0), lab)
    return np.where(m == _HTS_ABS, np.where(np.abs(v) >= t, 1.0, -1.0), lab)


def _ladder_threshold(t4r: pd.DataFrame, assays: np.ndarray, params: TaskParams) -> pd.DataFrame:
    """Fixed-adaptive ladder, then the shifted median, for dose-response assays without experts."""
    sub = t4r[t4r["input_assay_id"].isin(assays)]
    if len(sub) == 0:
        return pd.DataFrame({"input_assay_id": [], "threshold": [], "threshold_method": []})
    codes, uniq = pd.factorize(sub["input_assay_id"], sort=True)
    v = sub["standard_value"].to_numpy(np.float64)
    q = sub["standard_qualifier"].to_numpy(object)
    ladder = np.asarray(params.adaptive_thresholds, dtype=np.float64)
    quorum = params.classification_quorum.get("OTHER", ClassificationQuorum())
    n = len(uniq)
    act = np.zeros((n, len(ladder)))
    ina = np.zeros((n, len(ladder)))
    no_low = np.zeros(len(v), dtype=bool)
    for k, t in enumerate(ladder):  # a handful of thresholds, each vectorised over records
        lab = class_labels(v, q, np.full(len(v), t), no_low)
        act[:, k] = np.bincount(codes, weights=(lab == 1.0), minlength=n)
        ina[:, k] = np.bincount(codes, weights=(lab == -1.0), minlength=n)
    tot = act + ina
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(tot > 0, act / np.where(tot > 0, tot, 1), 0.0)
    ok = (
        (tot > 0)
        & (frac >= params.adaptive_min_active_fraction)
        & (act >= quorum.num_active_total)
        & (ina >= quorum.num_inactive_total)
    )
    has = ok.any(axis=1)
    pick = ladder[ok.argmax(axis=1)] if len(ladder) else np.zeros(n)
    shifted = v + np.where(q == "<", -LOG10_2, 0.0) + np.where(q == ">", LOG10_2, 0.0)
    med = pd.Series(shifted).groupby(codes).median().to_numpy()
    return pd.DataFrame(
        {
            "input_assay_id": np.asarray(uniq, dtype=np.int64),
            "threshold": np.where(has, pick, med),
            "threshold_method": np.where(has, "fixed_adaptive", "median"),
        }
    )


def _adme_thresholds(t4r: pd.DataFrame, assays: np.ndarray, direction: pd.Series) -> pd.DataFrame:
    """Median (+ quartile if different) of uncensored values for ADME assays without experts."""
    sub = t4r[t4r["input_assay_id"].isin(assays) & (t4r["standard_qualifier"] == "=")]
    g = sub.groupby("input_assay_id")["standard_value"]
    n = g.size()
    keep = n.index[n.to_numpy() > 1]
    if len(keep) == 0:
        return pd.DataFrame({"input_assay_id": [], "threshold": [], "threshold_method": []})
    med = g.quantile(0.5).reindex(keep)
    upper = g.quantile(0.75).reindex(keep)
    lower = g.quantile(0.25).reindex(keep)
    low = (direction.reindex(keep) == "low").to_numpy()
    quart = np.where(low, lower.to_numpy(), upper.to_numpy())
    parts = [
        pd.DataFrame(
            {"input_assay_id": keep, "threshold": med.to_numpy(), "threshold_method": "median"}
        )
    ]
    differs = quart != med.to_numpy()
    parts.append(
        pd.DataFrame(
            {
                "input_assay_id": keep[differs],
                "threshold": quart[differs],
                "threshold_method": "quartile",
            }
        )
    )
    return pd.concat(parts, ignore_index=True)


def _expert_long(t0v: pd.DataFrame) -> pd.DataFrame:
    """Expert thresholds in long form: input_assay_id, threshold, n_expert."""
    long = t0v.melt(
        id_vars=["input_assay_id"], value_vars=list(EXPERT_COLUMNS), value_name="threshold"
    ).dropna(subset=["threshold"])
    long = long[["input_assay_id", "threshold"]].astype({"threshold": np.float64})
    n = long.groupby("input_assay_id").size().rename("n_expert")
    return long.join(n, on="input_assay_id")


def _task_table(t0v: pd.DataFrame, t4r: pd.DataFrame, params: TaskParams) -> pd.DataFrame:
    """Thresholds of every task: input_assay_id, threshold, threshold_method."""
    atype = t0v.set_index("input_assay_id")["assay_type"]
    binary = t0v.loc[t0v["is_binary"], "input_assay_id"].to_numpy(np.int64)
    nonbin = t0v[~t0v["is_binary"]]
    experts = _expert_long(nonbin)
    n_exp = experts.groupby("input_assay_id")["n_expert"].first()
    parts: list[pd.DataFrame] = [
        pd.DataFrame({"input_assay_id": binary, "threshold": 0.0, "threshold_method": "expert"})
    ]
    # Dose-response.
    dr_ids = nonbin.loc[nonbin["assay_type"].isin(DOSE_RESPONSE_TYPES), "input_assay_id"]
    dr_exp = experts[experts["input_assay_id"].isin(dr_ids)]
    parts.append(dr_exp.assign(threshold_method="expert")[list(parts[0].columns)])
    centre_rows: list[pd.DataFrame] = []
    few = dr_exp[dr_exp["n_expert"] <= 3].groupby("input_assay_id")["threshold"]
    if len(few):
        centre_rows.append(pd.DataFrame({"lo": few.min(), "hi": few.max()}).reset_index())
    no_exp = dr_ids[~dr_ids.isin(n_exp.index)].to_numpy(np.int64)
    adaptive = _ladder_threshold(t4r, no_exp, params)
    parts.append(adaptive)
    if len(adaptive):
        centre_rows.append(
            pd.DataFrame(
                {
                    "input_assay_id": adaptive["input_assay_id"],
                    "lo": adaptive["threshold"],
                    "hi": adaptive["threshold"],
                }
            )
        )
    if params.aux_sandwich and centre_rows:
        c = pd.concat(centre_rows, ignore_index=True)
        parts.append(
            pd.DataFrame(
                {
                    "input_assay_id": c["input_assay_id"],
                    "threshold": c["lo"] - SANDWICH,
                    "threshold_method": "aux_low",
                }
            )
        )
        parts.append(
            pd.DataFrame(
                {
                    "input_assay_id": c["input_assay_id"],
                    "threshold": c["hi"] + SANDWICH,
                    "threshold_method": "aux_high",
                }
            )
        )
    # ADME.
    adme_ids = nonbin.loc[nonbin["assay_type"] == "ADME", "input_assay_id"]
    adme_exp = experts[experts["input_assay_id"].isin(adme_ids)]
    parts.append(adme_exp.assign(threshold_method="expert")[list(parts[0].columns)])
    parts.append(
        _adme_thresholds(
            t4r,
            adme_ids[~adme_ids.isin(n_exp.index)].to_numpy(np.int64),
            t0v.set_index("input_assay_id")["direction"],
        )
    )
    # AUX_HTS: global threshold (stored negated for direction low, as TUNER does).
    hts = nonbin[nonbin["assay_type"].isin(AUX_TYPES)]
    for aux_type in AUX_TYPES:
        t = params.global_thresholds.get(aux_type)
        sel = hts[hts["assay_type"] == aux_type]
        if t is None or len(sel) == 0:
            continue
        parts.append(
            pd.DataFrame(
                {
                    "input_assay_id": sel["input_assay_id"].to_numpy(np.int64),
                    "threshold": np.where(sel["direction"] == "low", -t, t).astype(np.float64),
                    "threshold_method": "fixed",
                }
            )
        )
    tasks = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(len(p) for p in parts)
        else pd.DataFrame({"input_assay_id": [], "threshold": [], "threshold_method": []})
    )
    tasks = tasks.astype({"input_assay_id": np.int64, "threshold": np.float64})
    tasks["threshold_method"] = tasks["threshold_method"].astype(object)
    # Keep assays that have records; one task per (assay, threshold), first method wins.
    tasks = tasks[tasks["input_assay_id"].isin(t4r["input_assay_id"])]
    tasks = tasks.drop_duplicates(subset=["input_assay_id", "threshold"], keep="first")
    tasks = tasks.sort_values(["input_assay_id", "threshold"], kind="stable")
    tasks["assay_type"] = tasks["input_assay_id"].map(atype)
    return tasks.reset_index(drop=True)


def make_classification_tasks(
    t0_upd: pd.DataFrame, t4r: pd.DataFrame, params: TaskParams
) -> ThresholdResult:
    """Create classification tasks and their labels from aggregated records.

    Parameters
    ----------
    t0_upd
        T0 with ``variance_quorum_OK`` (from :func:`~pharmafl.data.aggregate_activities`).
        Assays without ``variance_quorum_OK`` get no task.
    t4r
        Aggregated records.
    params
        Thresholds, the ladder, the OTHER training quorum used by the ladder,
        ``aux_sandwich``, global thresholds.

    Returns
    -------
    ThresholdResult
    """
    t0v = t0_upd[t0_upd["variance_quorum_OK"].astype(bool)].reset_index(drop=True)
    tasks = _task_table(t0v, t4r, params)
    meta = t0v.set_index("input_assay_id")
    tasks["classification_task_id"] = np.arange(1, len(tasks) + 1, dtype=np.int64)
    direction = tasks["input_assay_id"].map(meta["direction"])
    is_hts = tasks["assay_type"].isin(AUX_TYPES).to_numpy()
    tasks["is_binary"] = tasks["input_assay_id"].map(meta["is_binary"]).astype(bool)
    tasks["is_auxiliary"] = is_hts | tasks["threshold_method"].isin(["aux_low", "aux_high"])
    # Dose-response/ADME/binary: anything but "low" is "high" (TUNER); AUX_HTS keeps unset.
    tasks["direction"] = np.where(
        is_hts, direction.to_numpy(object), np.where(direction == "low", "low", "high")
    ).astype(object)
    tasks["variance_quorum_OK"] = True
    tasks["use_in_regression"] = tasks["input_assay_id"].map(meta["use_in_regression"])
    tasks["use_in_regression"] = tasks["use_in_regression"].astype(bool)
    tasks["catalog_assay_id"] = tasks["input_assay_id"].map(meta["catalog_assay_id"])
    tasks["catalog_task_id"] = np.nan  # no shared catalogue file (T_cat) in pharmafl yet
    tasks["_mode"] = label_modes(
        tasks["is_binary"].to_numpy(bool), is_hts, tasks["direction"].to_numpy(object)
    )
    t3c = tasks[[*T3C_COLUMNS]].reset_index(drop=True)

    recs = t4r.merge(
        tasks[["input_assay_id", "classification_task_id", "threshold", "_mode"]],
        on="input_assay_id",
        how="inner",
        sort=False,
    )
    recs["class_label"] = threshold_labels(
        recs["standard_value"].to_numpy(np.float64),
        recs["standard_qualifier"].to_numpy(object),
        recs["threshold"].to_numpy(np.float64),
        recs["_mode"].to_numpy(),
    )
    recs = recs.sort_values(["classification_task_id", "descriptor_vector_id"], kind="stable")
    amb = np.isnan(recs["class_label"].to_numpy())
    t4c = recs.loc[~amb, list(T4C_COLUMNS)].reset_index(drop=True)
    t4c["class_label"] = t4c["class_label"].astype(np.int8)
    ambiguous = recs.loc[amb, list(T4C_COLUMNS)].reset_index(drop=True)
    no_task = np.setdiff1d(
        t0v.loc[t0v["input_assay_id"].isin(t4r["input_assay_id"]), "input_assay_id"].to_numpy(),
        tasks["input_assay_id"].to_numpy(),
    ).astype(np.int64)
    log.info("thresholding: %d tasks, %d labels, %d ambiguous", len(t3c), len(t4c), len(ambiguous))
    return ThresholdResult(t3c=t3c, t4c=t4c, ambiguous=ambiguous, no_task_assays=no_task)


__all__ = [
    "LOG10_2",
    "T3C_COLUMNS",
    "T4C_COLUMNS",
    "ThresholdResult",
    "class_labels",
    "label_modes",
    "make_classification_tasks",
    "threshold_labels",
]
