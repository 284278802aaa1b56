"""The partner's own ids in what ``prepare`` writes.

Ingest numbers assays and compounds (MELLODDY's integer ``input_assay_id`` /
``input_compound_id``) and keeps the maps back to the partner's own ids. Everything a partner
reads names its own ids instead: T8c/T8r and the task catalogue gain ``assay_id`` and a task
label (:func:`pharmafl.data.name_tasks`), and every rejection of the run report names the
compound and assay as the exports spell them. Integers stay where MELLODDY tools read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pandas as pd

from pharmafl.chem import DescribedBatch
from pharmafl.data import catalogue_from_tables, name_tasks
from pharmafl.data.tasks import TaskBuildResult
from pharmafl.ingest import IngestResult
from pharmafl.partner.manifest import RejectionRow

#: Separates the compounds of one descriptor vector in a rejection's ``input_compound_id``.
COMPOUND_SEPARATOR = "; "


def _id_map(frame: pd.DataFrame, int_column: str) -> dict[int, str]:
    return dict(
        zip(
            frame[int_column].to_numpy(np.int64).tolist(),
            frame["original_id"].astype(str).tolist(),
            strict=True,
        )
    )


def assay_id_map(ingested: IngestResult) -> dict[int, str]:
    """``input_assay_id`` → the partner's own assay id."""
    return _id_map(ingested.assay_ids, "input_assay_id")


def compound_id_map(ingested: IngestResult) -> dict[int, str]:
    """``input_compound_id`` → the partner's own compound id."""
    return _id_map(ingested.compound_ids, "input_compound_id")


def with_partner_ids(built: TaskBuildResult, ingested: IngestResult) -> TaskBuildResult:
    """The tasks with the partner's assay ids and task labels in T8c/T8r and the catalogue."""
    m = built.matrices
    t8c, t8r = name_tasks(m.t8c, m.t8r, assay_id_map(ingested))
    named = dataclasses.replace(m, t8c=t8c, t8r=t8r, catalogue=catalogue_from_tables(t8c, t8r))
    return dataclasses.replace(built, matrices=named, catalogue=named.catalogue)


def _own(value: object, ids: Mapping[int, str]) -> str | None:
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return None
    return ids.get(int(value), str(value))  # type: ignore[call-overload]


def _ingest_rows(ingested: IngestResult, compounds: Mapping[int, str]) -> list[RejectionRow]:
    return [
        RejectionRow(
            step="ingest",
            file=str(r.file),
            row=int(r.row) if pd.notna(r.row) else None,
            input_compound_id=_own(r.input_compound_id, compounds),
            reason=str(r.reason),
            message=str(r.message),
        )
        for r in ingested.rejections.itertuples(index=False)
    ]


def _standardize_rows(
    batch: DescribedBatch, t2: pd.DataFrame, compounds: Mapping[int, str]
) -> list[RejectionRow]:
    ids = t2["input_compound_id"].to_numpy()
    return [
        RejectionRow(
            step="standardize",
            input_compound_id=_own(ids[int(r.row)], compounds),
            reason=str(r.reason),
            message=str(r.message),
        )
        for r in batch.rejections.itertuples(index=False)
    ]


def vector_compounds(t5: pd.DataFrame, compounds: Mapping[int, str]) -> dict[int, str]:
    """Descriptor vector → its compounds' own ids (sorted, joined by
    :data:`COMPOUND_SEPARATOR`)."""
    own = t5["input_compound_id"].map(lambda c: compounds.get(int(c), str(c)))
    grouped = own.groupby(t5["descriptor_vector_id"].to_numpy()).agg(
        lambda s: COMPOUND_SEPARATOR.join(sorted(s))
    )
    return {int(k): str(v) for k, v in grouped.items()}


def _task_rows(
    task_rej: pd.DataFrame,
    t5: pd.DataFrame,
    assays: Mapping[int, str],
    compounds: Mapping[int, str],
) -> list[RejectionRow]:
    vectors = vector_compounds(t5, compounds) if "descriptor_vector_id" in task_rej else {}
    rows = []
    for r in task_rej.to_dict("records"):
        compound = _own(r.get("input_compound_id"), compounds)
        if compound is None:
            compound = _own(r.get("descriptor_vector_id"), vectors)
        rows.append(
            RejectionRow(
                step=str(r.get("step", "tasks")),
                input_compound_id=compound,
                input_assay_id=_own(r.get("input_assay_id"), assays),
                reason=str(r.get("reason", "")),
                message=str(r.get("message", "")),
            )
        )
    return rows


def rejection_rows(
    ingested: IngestResult,
    batch: DescribedBatch,
    t2: pd.DataFrame,
    t5: pd.DataFrame,
    task_rejections: pd.DataFrame,
) -> list[RejectionRow]:
    """Every rejection of one preparation, by the partner's own compound and assay ids.

    Ingest rejections name the file and row (ingest does not say which assay a rejected row
    measured); a rejection of an aggregated record names the compounds of its descriptor
    vector, joined by :data:`COMPOUND_SEPARATOR` when several collapsed into one.
    """
    compounds = compound_id_map(ingested)
    return [
        *_ingest_rows(ingested, compounds),
        *_standardize_rows(batch, t2, compounds),
        *_task_rows(task_rejections, t5, assay_id_map(ingested), compounds),
    ]


__all__ = [
    "COMPOUND_SEPARATOR",
    "assay_id_map",
    "compound_id_map",
    "rejection_rows",
    "vector_compounds",
    "with_partner_ids",
]
