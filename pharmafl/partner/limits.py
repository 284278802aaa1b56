"""How much data the quorums need, said before anyone trains on too little.

A preparation that yields no trainable task fails (nothing is written): a model needs one
task at least, and an empty ``prepared/`` only fails later, less clearly. One whose tasks
cannot be scored (none passes the per-fold evaluation quorum) still prepares, with a warning:
it can train and contribute to the consortium's trunk, but its own metrics will say "not
scorable" instead of a number.
"""

from __future__ import annotations

import logging

from pharmafl.common.errors import PreparationError
from pharmafl.common.params import TaskParams
from pharmafl.data.catalogue import TaskCatalogue

logger = logging.getLogger(__name__)


def quorum_needs(tasks: TaskParams, assay_type: str = "OTHER") -> str:
    """The training quorums of ``assay_type`` and the evaluation quorum, in words."""
    c = tasks.classification_quorum[assay_type]
    r = tasks.regression_quorum[assay_type]
    e = tasks.evaluation_quorum
    return (
        f"an {assay_type} classification task needs ≥ {c.num_active_total} actives and ≥ "
        f"{c.num_inactive_total} inactives in total, a regression task ≥ {r.num_total} "
        f"measurements ({r.num_uncensored_total} uncensored); to be scored, ≥ "
        f"{e.num_active_fold_min} actives and ≥ {e.num_inactive_fold_min} inactives (or ≥ "
        f"{e.num_uncensored_fold_min} uncensored values) in every fold"
    )


def check_trainable(
    catalogue: TaskCatalogue,
    tasks: TaskParams,
    *,
    measurements: int,
    assays: int,
    rejection_counts: dict[str, int],
) -> None:
    """Refuse a preparation without a trainable task; warn when no task can be scored.

    Raises
    ------
    PreparationError
        No task: says how many measurements came in, where they went and what the quorums
        need.
    """
    if not catalogue.tasks:
        top = sorted(rejection_counts.items(), key=lambda kv: -kv[1])[:4]
        where = ", ".join(f"{k} {v}" for k, v in top) or "none rejected"
        raise PreparationError(
            f"no trainable task: {measurements} measurements on {assays} assays gave no task "
            f"that meets the quorums (rejections: {where}); {quorum_needs(tasks)}.",
            fix="add measurements (assays with a few hundred compounds each, actives and "
            "inactives), or agree lower quorums in consortium.json (tasks.classification_quorum, "
            "tasks.regression_quorum), then prepare again.",
        )
    if not any(t.evaluation_quorum_ok for t in catalogue.tasks):
        logger.warning(
            "none of the %d tasks can be scored (too few labels in some fold): training "
            "works, but metrics will read 'not scorable'; %s.",
            len(catalogue.tasks),
            quorum_needs(tasks),
        )


__all__ = ["check_trainable", "quorum_needs"]
