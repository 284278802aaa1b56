"""Quorums and weights: T3c/T4c → T8c/T10c and T0/T4r → T8r/T10r (reference §1.11–1.12).

Classification (MELLODDY-TUNER ``filter_classification``): a task is trained when it has at
least ``classification_quorum[assay_type]`` actives and inactives in total (25/25; AUX_HTS
10/10,000). A catalogue task (CATALOG-PANEL with a ``catalog_assay_id``, not auxiliary) is
trained when actives + inactives ≥ ``catalog_num_total`` (400); otherwise, and for
CATALOG-PANEL tasks without a catalogue reference, it is demoted to NON-CATALOG-PANEL
(``catalog_check_INFO``) and judged as such. It counts in aggregated metrics
(``aggregation_weight`` 1) only when it passes the evaluation quorum — at least 10 actives
and 10 inactives in **every** fold — and is not auxiliary. Its training weight is
``initial_task_weights[assay_type]`` divided by the number of trained tasks of its assay.

Regression (``filter_regression``): one task per assay with ``use_in_regression`` (binary
assays never; CATALOG-PANEL is treated as NON-CATALOG-PANEL). Trained when it has
≥ 50 values and ≥ 25 uncensored; evaluated when every fold has ≥ 25 uncensored values and,
for non-ADME assays, the smallest per-fold standard deviation of uncensored values is
≥ ``regression_min_eval_std`` (0.5). Censored values are down-weighted by
b(1−f)/(f(1−b)) when the censored fraction f exceeds the knock-in barrier b (0.05), else 1
[Arany et al., SparseChem, censored regression].

Per-fold counts cover all ``nfolds`` folds: a fold where a task has no record counts 0.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pharmafl.common.params import ClassificationQuorum, RegressionQuorum, TaskParams
from pharmafl.data._common import AUX_TYPES, EXPERT_COLUMNS, check_folds, fold_matrix

log = logging.getLogger(__name__)

T8C_COLUMNS = (
    "cont_classification_task_id",
    "classification_task_id",
    "input_assay_id",
    "catalog_assay_id",
    "catalog_task_id",
    "assay_type",
    "variance_quorum_OK",
    "is_auxiliary",
    "use_in_regression",
    "is_binary",
    "threshold",
    "threshold_method",
    "direction",
    "training_quorum_OK",
    "evaluation_quorum_OK",
    "aggregation_weight",
    "weight",
    "num_total_actives",
    "num_fold_min_actives",
    "num_total_inactives",
    "num_fold_min_inactives",
    "n_tasks",
    "retained_tasks",
    "catalog_check_INFO",
)
T10C_COLUMNS = ("cont_classification_task_id", "descriptor_vector_id", "fold_id", "class_label")
T8R_COLUMNS = (
    "cont_regression_task_id",
    "input_assay_id",
    "assay_type",
    "variance_quorum_OK",
    "is_auxiliary",
    "use_in_regression",
    *EXPERT_COLUMNS,
    "direction",
    "training_quorum_OK",
    "evaluation_quorum_OK",
    "evaluation_stdv_quorum_OK",
    "aggregation_weight",
    "weight",
    "censored_weight",
    "fraction_censored",
    "num_total",
    "num_uncensored_total",
    "num_censored_total",
    "num_fold_min",
    "num_uncensored_fold_min",
)
T10R_COLUMNS = (
    "input_assay_id",
    "descriptor_vector_id",
    "fold_id",
    "standard_qualifier",
    "standard_value",
    "cont_regression_task_id",
)


def censored_weight(fraction_censored: np.ndarray, knock_in_barrier: float) -> np.ndarray:
    """SparseChem's censored down-weighting: b(1−f)/(f(1−b)) where f > b, else 1.

    >>> round(float(censored_weight(np.array([0.5]), 0.05)[0]), 4)
    0.0526
    """
    f = np.asarray(fraction_censored, dtype=np.float64)
    b = float(knock_in_barrier)
    out = np.ones_like(f)
    m = f > b
    out[m] = b * (1.0 - f[m]) / (f[m] * (1.0 - b))
    return out


def _cont_ids(ok: np.ndarray) -> pd.array:
    """Continuous ids 0… for rows where ``ok`` (in row order), <NA> elsewhere."""
    ids = np.full(len(ok), -1, dtype=np.int64)
    ids[ok] = np.arange(int(ok.sum()))
    out = pd.array(ids, dtype="Int64")
    out[~ok] = pd.NA
    return out


def filter_classification(
    t3c: pd.DataFrame, t4c: pd.DataFrame, params: TaskParams, nfolds: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Apply the classification quorums and compute task weights.

    Parameters
    ----------
    t3c, t4c
        Tasks and labels from :func:`~pharmafl.data.make_classification_tasks`.
    params
        Quorums, initial weights and ``catalog_num_total``.
    nfolds
        Number of folds.

    Returns
    -------
    t8c : pandas.DataFrame
        One row per task (:data:`T8C_COLUMNS`); ``cont_classification_task_id`` is set
        (0, 1, … in ``classification_task_id`` order) for trained tasks, <NA> otherwise.
    t10c : pandas.DataFrame
        Labels of trained tasks (:data:`T10C_COLUMNS`), sorted by task then descriptor.
    filtered : pandas.DataFrame
        T4c records of tasks that failed the training quorum.
    """
    check_folds(t4c["fold_id"].to_numpy(), nfolds, "T4c")
    df = t3c.reset_index(drop=True).copy()
    n = len(df)
    pos = pd.Series(np.arange(n), index=df["classification_task_id"].to_numpy())
    tidx = t4c["classification_task_id"].map(pos).to_numpy(np.int64)
    folds = t4c["fold_id"].to_numpy(np.int64)
    label = t4c["class_label"].to_numpy()
    act = fold_matrix(tidx, folds, n, nfolds, (label == 1).astype(np.float64))
    ina = fold_matrix(tidx, folds, n, nfolds, (label == -1).astype(np.float64))
    df["num_total_actives"] = act.sum(axis=1).astype(np.int64)
    df["num_total_inactives"] = ina.sum(axis=1).astype(np.int64)
    df["num_fold_min_actives"] = act.min(axis=1).astype(np.int64) if n else 0
    df["num_fold_min_inactives"] = ina.min(axis=1).astype(np.int64) if n else 0

    eq = params.evaluation_quorum
    eval_ok = (df["num_fold_min_actives"] >= eq.num_active_fold_min) & (
        df["num_fold_min_inactives"] >= eq.num_inactive_fold_min
    )
    total = df["num_total_actives"] + df["num_total_inactives"]
    is_cat = (df["assay_type"] == "CATALOG-PANEL").to_numpy()
    has_ref = df["catalog_assay_id"].notna().to_numpy() & ~df["is_auxiliary"].to_numpy(bool)
    cat_ok = is_cat & has_ref & (total >= params.catalog_num_total).to_numpy()
    info = np.full(n, None, dtype=object)
    info[is_cat & ~has_ref] = "missing_ref_task"
    info[is_cat & has_ref & ~cat_ok] = "failed_quorum"
    df["catalog_check_INFO"] = info
    df.loc[is_cat & ~cat_ok, "assay_type"] = "NON-CATALOG-PANEL"

    default_q = ClassificationQuorum()
    q_act = df["assay_type"].map(
        lambda t: params.classification_quorum.get(t, default_q).num_active_total
    )
    q_ina = df["assay_type"].map(
        lambda t: params.classification_quorum.get(t, default_q).num_inactive_total
    )
    train_ok = (df["num_total_actives"] >= q_act) & (df["num_total_inactives"] >= q_ina)
    train_ok = train_ok.to_numpy(bool) | cat_ok
    df["training_quorum_OK"] = train_ok
    df["evaluation_quorum_OK"] = eval_ok.to_numpy(bool)
    df["aggregation_weight"] = np.where(
        df["is_auxiliary"].to_numpy(bool) | ~df["evaluation_quorum_OK"].to_numpy(bool), 0.0, 1.0
    )
    n_tasks = (
        df.loc[train_ok].groupby("input_assay_id").size().reindex(df["input_assay_id"]).to_numpy()
    )
    df["n_tasks"] = pd.array(np.nan_to_num(n_tasks, nan=0).astype(np.int64), dtype="Int64")
    init = df["assay_type"].map(lambda t: params.initial_task_weights.get(t, 1.0))
    weight = np.full(n, np.nan)
    weight[train_ok] = init.to_numpy(np.float64)[train_ok] / n_tasks[train_ok]
    df["weight"] = weight
    df["cont_classification_task_id"] = _cont_ids(train_ok)
    df["retained_tasks"] = df["n_tasks"]
    t8c = df[list(T8C_COLUMNS)].reset_index(drop=True)

    keep = train_ok[tidx] if len(tidx) else np.zeros(0, dtype=bool)
    cont = df["cont_classification_task_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    t10c = pd.DataFrame(
        {
            "cont_classification_task_id": cont[tidx[keep]].astype(np.int64),
            "descriptor_vector_id": t4c["descriptor_vector_id"].to_numpy(np.int64)[keep],
            "fold_id": folds[keep],
            "class_label": label[keep].astype(np.int8),
        }
    ).sort_values(["cont_classification_task_id", "descriptor_vector_id"], kind="stable")
    filtered = t4c.loc[~keep].reset_index(drop=True)
    log.info("classification: %d of %d tasks trained", int(train_ok.sum()), n)
    return t8c, t10c.reset_index(drop=True), filtered


def filter_regression(
    t0_upd: pd.DataFrame, t4r: pd.DataFrame, params: TaskParams, nfolds: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Apply the regression quorums, the evaluation std filter and compute weights.

    Parameters
    ----------
    t0_upd
        T0 with ``variance_quorum_OK`` (from aggregation).
    t4r
        Aggregated records.
    params
        Regression and evaluation quorums, initial weights, knock-in barrier, min std.
    nfolds
        Number of folds.

    Returns
    -------
    t8r : pandas.DataFrame
        One row per candidate assay (``use_in_regression``, not binary, with records),
        :data:`T8R_COLUMNS`; ``cont_regression_task_id`` (0, 1, … in ``input_assay_id``
        order) for trained tasks, <NA> otherwise.
    t10r : pandas.DataFrame
        Records of trained tasks (:data:`T10R_COLUMNS`), sorted by task then descriptor.
    filtered : pandas.DataFrame
        T4r records of candidate assays that failed the training quorum.
    """
    check_folds(t4r["fold_id"].to_numpy(), nfolds, "T4r")
    t0c = t0_upd[
        t0_upd["use_in_regression"].astype(bool)
        & ~t0_upd["is_binary"].astype(bool)
        & t0_upd["variance_quorum_OK"].astype(bool)
        & t0_upd["input_assay_id"].isin(t4r["input_assay_id"])
    ]
    df = t0c.sort_values("input_assay_id").reset_index(drop=True).copy()
    df["assay_type"] = df["assay_type"].replace({"CATALOG-PANEL": "NON-CATALOG-PANEL"})
    n = len(df)
    pos = pd.Series(np.arange(n), index=df["input_assay_id"].to_numpy())
    recs = t4r[t4r["input_assay_id"].isin(df["input_assay_id"])]
    tidx = recs["input_assay_id"].map(pos).to_numpy(np.int64)
    folds = recs["fold_id"].to_numpy(np.int64)
    unc = (recs["standard_qualifier"] == "=").to_numpy()
    allc = fold_matrix(tidx, folds, n, nfolds)
    uncc = fold_matrix(tidx, folds, n, nfolds, unc.astype(np.float64))
    df["num_total"] = allc.sum(axis=1).astype(np.int64)
    df["num_uncensored_total"] = uncc.sum(axis=1).astype(np.int64)
    df["num_censored_total"] = df["num_total"] - df["num_uncensored_total"]
    df["num_fold_min"] = allc.min(axis=1).astype(np.int64) if n else 0
    df["num_uncensored_fold_min"] = uncc.min(axis=1).astype(np.int64) if n else 0

    default_q = RegressionQuorum()
    q = df["assay_type"].map(lambda t: params.regression_quorum.get(t, default_q))
    train_ok = (
        (df["num_total"] >= q.map(lambda x: x.num_total))
        & (df["num_uncensored_total"] >= q.map(lambda x: x.num_uncensored_total))
    ).to_numpy(bool)
    eq = params.evaluation_quorum
    eval_ok = (
        (df["num_uncensored_fold_min"] >= eq.num_uncensored_fold_min)
        & (df["num_uncensored_total"] >= eq.num_uncensored_total)
    ).to_numpy(bool)
    # Smallest per-fold std of uncensored values (ddof=1; < 2 values or none → 0).
    u = recs.loc[unc]
    std = (
        u.groupby(["input_assay_id", "fold_id"])["standard_value"]
        .std(ddof=1)
        .unstack("fold_id")
        .reindex(index=df["input_assay_id"], columns=range(nfolds))
        .fillna(0.0)
        .min(axis=1)
        .to_numpy()
        if n
        else np.zeros(0)
    )
    stdv_ok = (df["assay_type"] == "ADME").to_numpy() | (std >= params.regression_min_eval_std)
    df["training_quorum_OK"] = train_ok
    df["evaluation_quorum_OK"] = eval_ok
    df["evaluation_stdv_quorum_OK"] = stdv_ok
    df["is_auxiliary"] = df["assay_type"].isin(AUX_TYPES).to_numpy()
    df["aggregation_weight"] = np.where(
        df["is_auxiliary"].to_numpy() | ~eval_ok | ~stdv_ok, 0.0, 1.0
    )
    df["weight"] = df["assay_type"].map(lambda t: params.initial_task_weights.get(t, 1.0))
    frac = np.where(
        df["num_total"] > 0, df["num_censored_total"] / df["num_total"].clip(lower=1), 0.0
    )
    df["fraction_censored"] = frac
    df["censored_weight"] = censored_weight(frac, params.censored_knock_in_barrier)
    df["cont_regression_task_id"] = _cont_ids(train_ok)
    t8r = df[list(T8R_COLUMNS)].reset_index(drop=True)

    keep = train_ok[tidx] if len(tidx) else np.zeros(0, dtype=bool)
    cont = df["cont_regression_task_id"].to_numpy(dtype=np.float64, na_value=np.nan)
    t10r = recs.loc[keep, list(T10R_COLUMNS[:-1])].copy()
    t10r["cont_regression_task_id"] = cont[tidx[keep]].astype(np.int64)
    t10r = t10r.sort_values(["cont_regression_task_id", "descriptor_vector_id"], kind="stable")
    filtered = recs.loc[~keep].reset_index(drop=True)
    log.info("regression: %d of %d candidate tasks trained", int(train_ok.sum()), n)
    return t8r, t10r.reset_index(drop=True), filtered


__all__ = [
    "T10C_COLUMNS",
    "T10R_COLUMNS",
    "T8C_COLUMNS",
    "T8R_COLUMNS",
    "censored_weight",
    "filter_classification",
    "filter_regression",
]
