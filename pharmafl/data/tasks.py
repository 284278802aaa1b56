"""The activity half of preparation in one call: T0/T1/T5 → SparseChem matrices.

Runs :func:`~pharmafl.data.aggregate_activities`, :func:`~pharmafl.data.make_classification_tasks`,
:func:`~pharmafl.data.filter_classification`, :func:`~pharmafl.data.filter_regression` and
:func:`~pharmafl.data.build_matrices`, and gathers counts and every rejection for the run
report (MELLODDY-TUNER ``prepare_activity_data``, steps 5–9).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from pharmafl.common.params import TaskParams
from pharmafl.data._common import concat_rejections, rejection_frame
from pharmafl.data.aggregate import aggregate_activities
from pharmafl.data.catalogue import TaskCatalogue
from pharmafl.data.filters import filter_classification, filter_regression
from pharmafl.data.matrices import PreparedMatrices, build_matrices
from pharmafl.data.thresholds import make_classification_tasks

log = logging.getLogger(__name__)


@dataclass
class TaskBuildResult:
    """Output of :func:`activities_to_tasks`.

    Attributes
    ----------
    matrices
        The SparseChem matrices, weights and task tables.
    counts
        Flat ``{name: number}`` counts per step, for the run report.
    rejections
        ``step, input_assay_id, input_compound_id, descriptor_vector_id, reason, message``;
        steps ``aggregate``, ``threshold``, ``filter_classification``, ``filter_regression``.
    catalogue
        One entry per matrix column (same object as ``matrices.catalogue``).
    seconds
        Wall time per step.
    tables
        Intermediate TUNER tables (``t0_upd``, ``t4r``, ``t3c``, ``t4c``, ``t10c``,
        ``t10r``) for inspection and tests.
    """

    matrices: PreparedMatrices
    counts: dict[str, int]
    rejections: pd.DataFrame
    catalogue: TaskCatalogue
    seconds: dict[str, float] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def _quorum_rejections(t8c: pd.DataFrame, t8r: pd.DataFrame) -> list[pd.DataFrame]:
    out = []
    c = t8c[~t8c["training_quorum_OK"].to_numpy(bool)]
    if len(c):
        msg = (
            "classification task (threshold method "
            + c["threshold_method"].astype(str)
            + ") has "
            + c["num_total_actives"].astype(str)
            + " actives / "
            + c["num_total_inactives"].astype(str)
            + " inactives, below the training quorum of its assay type"
        )
        out.append(
            rejection_frame(
                "filter_classification",
                "training_quorum",
                msg.to_numpy(),
                input_assay_id=c["input_assay_id"].to_numpy(),
            )
        )
    r = t8r[~t8r["training_quorum_OK"].to_numpy(bool)]
    if len(r):
        msg = (
            "regression task has "
            + r["num_total"].astype(str)
            + " values ("
            + r["num_uncensored_total"].astype(str)
            + " uncensored), below the training quorum of its assay type"
        )
        out.append(
            rejection_frame(
                "filter_regression",
                "training_quorum",
                msg.to_numpy(),
                input_assay_id=r["input_assay_id"].to_numpy(),
            )
        )
    return out


def activities_to_tasks(
    t0: pd.DataFrame,
    t1: pd.DataFrame,
    t5: pd.DataFrame,
    x_unique: csr_matrix,
    folds_unique: np.ndarray,
    params: TaskParams,
    nfolds: int,
) -> TaskBuildResult:
    """Turn assays and measurements into classification and regression matrices.

    Parameters
    ----------
    t0, t1
        Assays and measurements (ingested, qualifiers normalised, pXC50 for dose-response).
    t5, x_unique, folds_unique
        From :func:`~pharmafl.data.dedupe_descriptors`.
    params
        The consortium's :class:`~pharmafl.common.params.TaskParams`.
    nfolds
        Number of folds (``folding.nfolds``).

    Returns
    -------
    TaskBuildResult
    """
    sec: dict[str, float] = {}
    t = time.perf_counter()
    agg = aggregate_activities(t0, t1, t5, params, nfolds)
    sec["aggregate"] = time.perf_counter() - t

    t = time.perf_counter()
    thr = make_classification_tasks(agg.t0_upd, agg.t4r, params)
    sec["threshold"] = time.perf_counter() - t

    t = time.perf_counter()
    t8c, t10c, _ = filter_classification(thr.t3c, thr.t4c, params, nfolds)
    t8r, t10r, _ = filter_regression(agg.t0_upd, agg.t4r, params, nfolds)
    sec["filter"] = time.perf_counter() - t

    t = time.perf_counter()
    m = build_matrices(x_unique, folds_unique, t8c, t10c, t8r, t10r)
    sec["matrices"] = time.perf_counter() - t

    amb = thr.ambiguous
    parts = [agg.rejections]
    if len(amb):
        parts.append(
            rejection_frame(
                "threshold",
                "ambiguous_label",
                "censored value lies on the wrong side of the threshold to be labelled "
                "(e.g. '< x' with x above the threshold); label dropped",
                input_assay_id=amb["input_assay_id"].to_numpy(),
                descriptor_vector_id=amb["descriptor_vector_id"].to_numpy(),
            )
        )
    if len(thr.no_task_assays):
        parts.append(
            rejection_frame(
                "threshold",
                "no_threshold",
                "no classification threshold (ADME needs expert thresholds or at least two "
                "uncensored values; AUX types need a global threshold)",
                input_assay_id=thr.no_task_assays,
            )
        )
    parts.extend(_quorum_rejections(t8c, t8r))
    rejections = concat_rejections(parts)

    cls_ok = t8c["training_quorum_OK"].to_numpy(bool)
    reg_ok = t8r["training_quorum_OK"].to_numpy(bool)
    counts: dict[str, int] = {
        **agg.counts,
        "assays_input": len(t0),
        "assays_variance_ok": int(agg.t0_upd["variance_quorum_OK"].sum()),
        "classification_tasks_created": len(thr.t3c),
        "classification_tasks_auxiliary": int(thr.t3c["is_auxiliary"].sum()),
        "classification_labels": len(thr.t4c),
        "classification_labels_ambiguous": len(amb),
        "assays_without_threshold": len(thr.no_task_assays),
        "classification_tasks_trained": int(cls_ok.sum()),
        "classification_tasks_evaluated": int(
            (t8c["aggregation_weight"].to_numpy() > 0)[cls_ok].sum()
        ),
        "classification_catalog_demoted": int(t8c["catalog_check_INFO"].notna().sum()),
        "regression_tasks_candidate": len(t8r),
        "regression_tasks_trained": int(reg_ok.sum()),
        "regression_tasks_evaluated": int((t8r["aggregation_weight"].to_numpy() > 0)[reg_ok].sum()),
        "descriptor_vectors": int(x_unique.shape[0]),
        "rows": int(m.x.shape[0]),
        "y_cls_entries": int(m.y_cls.nnz),
        "y_reg_entries": int(m.y_reg.nnz),
        "rejections": len(rejections),
    }
    log.info(
        "activities → tasks: %d cls / %d reg tasks on %d rows in %.2f s",
        m.y_cls.shape[1],
        m.y_reg.shape[1],
        m.x.shape[0],
        sum(sec.values()),
    )
    return TaskBuildResult(
        matrices=m,
        counts=counts,
        rejections=rejections,
        catalogue=m.catalogue,
        seconds=sec,
        tables={
            "t0_upd": agg.t0_upd,
            "t4r": agg.t4r,
            "t3c": thr.t3c,
            "t4c": thr.t4c,
            "t10c": t10c,
            "t10r": t10r,
        },
    )


__all__ = ["TaskBuildResult", "activities_to_tasks"]
