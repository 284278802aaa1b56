"""New measurements → labels on the partner's own tasks, exactly as ``prepare`` makes them.

A file of newly measured compounds in the partner's own export shape is read with the
partner's own config (its source files swapped for the new ones, or another config), so
units, qualifiers and ids are handled as at preparation. Structures are standardized and
described with the same consortium parameters and key; replicates are aggregated with the
same rules (without the variance filter: nothing is trained on them); each measurement is
labelled on the tasks of ``prepared/task_catalogue.json`` with the *same* thresholds, matched
by the partner's own assay id. Compounds whose descriptors equal a training row are left
out by default (a model scored on its own training compounds looks better than it is).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import ValidationError

from pharmafl.chem import DescribedBatch, describe_structures
from pharmafl.common.errors import ConfigError, DataNotFoundError
from pharmafl.data import aggregate_activities, dedupe_descriptors, label_modes, threshold_labels
from pharmafl.data._common import AUX_TYPES
from pharmafl.data.catalogue import TaskCatalogue, TaskInfo
from pharmafl.data.descriptors import row_digests
from pharmafl.evaluation.newdata import NewLabels, TaskRef
from pharmafl.ingest import IngestResult, PartnerConfig, ingest_partner, load_partner_config
from pharmafl.layout import PartnerLayout
from pharmafl.partner.ids import (
    assay_id_map,
    compound_id_map,
    rejection_rows,
    vector_compounds,
)
from pharmafl.partner.manifest import RejectionRow
from pharmafl.partner.prepare import PartnerContext

log = logging.getLogger(__name__)

_CENSOR = {"<": -1.0, "=": 0.0, ">": 1.0}


@dataclass
class NewMeasurements:
    """New measurements described and labelled on the partner's tasks.

    Attributes
    ----------
    labels : NewLabels
        One row per new compound (descriptor vector) with a label on some task.
    x : csr_matrix
        Their descriptors (the rows of ``labels``).
    graphs : PackedGraphs or None
        Their graphs (when asked for).
    row_compounds : list of str
        The partner's compound id(s) of each row (``; ``-joined when several compounds have
        one descriptor vector).
    counts : dict
        Compounds and measurements read, rejected, in training, labelled.
    assays_without_task : dict
        The partner's assay id → aggregated records, for new assays no model has a task of.
    rejections : list of RejectionRow
        Every row left out, by the partner's own ids.
    """

    labels: NewLabels
    x: sp.csr_matrix
    graphs: object | None
    row_compounds: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    assays_without_task: dict[str, int] = field(default_factory=dict)
    rejections: list[RejectionRow] = field(default_factory=list)


def _swap(src: object, path: str) -> object:
    kind = type(src)
    try:
        return kind.model_validate({**src.model_dump(), "path": path})  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise ConfigError(
            f"cannot read {path} as the config's source: {exc.errors()[0]['msg']}.",
            file=path,
            fix="give a file of the same format, or write a config for it (--config).",
        ) from None


def _replacements(config: PartnerConfig, inputs: Sequence[str]) -> dict[str, str]:
    """``config path`` → new file, from ``NEW`` (one export file) or ``OLD=NEW`` entries."""
    used = sorted({s.path for s in (*config.structure_sources(), *config.activity_sources())})
    pairs: list[tuple[str | None, str]] = [
        (i.split("=", 1)[0], i.split("=", 1)[1]) if "=" in i else (None, i) for i in inputs
    ]
    if any(old is None for old, _ in pairs):
        if len(pairs) != 1 or len(used) != 1:
            raise ConfigError(
                f"the partner config reads structures and activities from {len(used)} files "
                f"({', '.join(used)}); say which new file replaces which.",
                fix="pass --input OLD=NEW for each, e.g. --input "
                f"{used[0]}=new_{Path(used[0]).name}, or a config for the new files (--config).",
            )
        return {used[0]: str(Path(pairs[0][1]).resolve())}
    unknown = [old for old, _ in pairs if old not in used]
    if unknown:
        raise ConfigError(
            f"--input names {unknown}, which the partner config does not read.",
            fix=f"use the paths as the config writes them: {', '.join(used)}.",
        )
    return {str(old): str(Path(new).resolve()) for old, new in pairs}


def new_data_config(
    ctx: PartnerContext, inputs: Sequence[str], config_path: str | Path | None = None
) -> tuple[PartnerConfig, Path]:
    """The config that reads the new files, and the folder its relative paths start from.

    With ``config_path``, that config (paths relative to its folder); else the partner's own
    config with its structure and activity files replaced by ``inputs`` (assay files and
    defaults are kept: the new measurements are of the same assays).
    """
    if config_path is not None:
        return load_partner_config(config_path), Path(config_path).resolve().parent
    if not inputs:
        raise ConfigError("no new measurements given.", fix="pass --input FILE.")
    swap = _replacements(ctx.config, inputs)
    cfg = ctx.config.model_copy(
        update={
            "structures": [_swap(s, swap.get(s.path, s.path)) for s in ctx.config.structures],
            "activities": [_swap(a, swap.get(a.path, a.path)) for a in ctx.config.activities],
            "melloddy": _swap_melloddy(ctx.config, swap),
        }
    )
    return cfg, ctx.partner_dir


def _swap_melloddy(config: PartnerConfig, swap: dict[str, str]) -> object:
    """The MELLODDY preset with its T1 and T2 files replaced (T0: the same assays)."""
    m = config.melloddy
    if m is None:
        return None
    t1 = [swap.get(p, p) for p in ([m.t1] if isinstance(m.t1, str) else m.t1)]
    return m.model_copy(update={"t1": t1, "t2": swap.get(m.t2, m.t2)})


def _training_digests(partner_dir: Path) -> set[bytes]:
    path = PartnerLayout(partner_dir).prepared / "cls_T11_x.npz"
    if not path.is_file():
        raise DataNotFoundError(
            "the partner's prepared data is missing.",
            file=path,
            fix="run `pharmafl prepare PARTNER_DIR` first.",
        )
    x = sp.load_npz(path).tocsr()
    return set(row_digests(x, np.zeros(x.shape[0], dtype=np.int64)))


@dataclass
class _Described:
    batch: DescribedBatch
    t5: pd.DataFrame
    x: sp.csr_matrix
    in_training: np.ndarray  # per descriptor vector


def _describe(
    ctx: PartnerContext, ingested: IngestResult, workers: int, with_graphs: bool
) -> _Described:
    t2 = ingested.t2.reset_index(drop=True)
    batch = describe_structures(
        t2["smiles"].tolist(), ctx.params, ctx.key, workers=workers,
        with_graphs=with_graphs, with_folds=False,
    )  # fmt: skip
    ids = t2["input_compound_id"].to_numpy()[batch.row_ids]
    zeros = np.zeros(len(ids), dtype=np.int64)
    t5, x, _ = dedupe_descriptors(ids, batch.x, zeros)
    seen = _training_digests(ctx.partner_dir)
    in_training = np.array([d in seen for d in row_digests(x, np.zeros(x.shape[0], np.int64))])
    return _Described(batch, t5, x, in_training.astype(bool))


def _records(
    ctx: PartnerContext, ingested: IngestResult, d: _Described, keep: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Aggregated records of the kept descriptor vectors, with the partner's assay ids, and
    the aggregation's rejections (measurements of rejected structures are the standardize
    step's rejections already)."""
    t5 = d.t5[keep[d.t5["descriptor_vector_id"].to_numpy()]]
    t1 = ingested.t1[ingested.t1["input_compound_id"].isin(t5["input_compound_id"])]
    tasks = ctx.params.tasks.model_copy(update={"std_min": -1.0})  # no variance filter
    agg = aggregate_activities(ingested.t0, t1, t5.assign(fold_id=0), tasks, 1)
    own = assay_id_map(ingested)
    ids = agg.t4r["input_assay_id"].map(lambda i: own[int(i)]).astype(object)
    t4r = agg.t4r.assign(assay_id=ids)
    return t4r, agg.rejections


def _task_table(tasks: list[TaskInfo]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "column": np.arange(len(tasks), dtype=np.int64),
            "assay_id": [t.assay_id for t in tasks],
            "threshold": [t.threshold if t.threshold is not None else 0.0 for t in tasks],
            "mode": label_modes(
                np.array([t.is_binary for t in tasks], dtype=bool),
                np.array([t.assay_type in AUX_TYPES for t in tasks], dtype=bool),
                np.array([t.direction for t in tasks], dtype=object),
            ),
        }
    )


def _labels(t4r: pd.DataFrame, cat: TaskCatalogue) -> tuple[NewLabels, np.ndarray, int]:
    cls_tasks, reg_tasks = cat.of_kind("classification"), cat.of_kind("regression")
    cls = t4r.merge(_task_table(cls_tasks), on="assay_id")
    lab = threshold_labels(
        cls["standard_value"].to_numpy(np.float64),
        cls["standard_qualifier"].to_numpy(object),
        cls["threshold"].to_numpy(np.float64),
        cls["mode"].to_numpy(),
    )
    ambiguous = int(np.isnan(lab).sum())
    cls = cls.assign(label=lab)[~np.isnan(lab)]
    reg = t4r.merge(_task_table(reg_tasks)[["column", "assay_id"]], on="assay_id")
    dvs = np.unique(np.r_[cls["descriptor_vector_id"], reg["descriptor_vector_id"]]).astype(int)
    row = pd.Series(np.arange(len(dvs)), index=dvs)
    shape = (len(dvs),)

    def csr(frame: pd.DataFrame, values: np.ndarray, n_tasks: int) -> sp.csr_matrix:
        r = row.loc[frame["descriptor_vector_id"].to_numpy()].to_numpy()
        m = sp.csr_matrix((values, (r, frame["column"].to_numpy())), shape=(*shape, n_tasks))
        m.sort_indices()
        return m

    censor = reg["standard_qualifier"].map(_CENSOR).to_numpy(np.float64)
    y_reg = csr(reg, reg["standard_value"].to_numpy(np.float64), len(reg_tasks))
    cens = csr(reg, censor, len(reg_tasks))  # zeros ('=') stay stored: same pattern as y_reg
    labels = NewLabels(
        y_cls=csr(cls, cls["label"].to_numpy(np.float64), len(cls_tasks)),
        y_reg=y_reg,
        censor=cens,
        cls_tasks=[_ref(t) for t in cls_tasks],
        reg_tasks=[_ref(t) for t in reg_tasks],
    )
    return labels, dvs, ambiguous


def _ref(t: TaskInfo) -> TaskRef:
    return TaskRef(
        task=t.label, assay_id=t.assay_id, kind=t.kind, threshold=t.threshold,
        direction=t.direction, is_auxiliary=t.is_auxiliary,
    )  # fmt: skip


def _graph_rows(d: _Described, dvs: np.ndarray) -> object:
    first = d.t5.reset_index(drop=True).groupby("descriptor_vector_id", sort=True).head(1)
    pos = pd.Series(first.index.to_numpy(), index=first["descriptor_vector_id"].to_numpy())
    return d.batch.graphs.select(pos.loc[dvs].to_numpy())


def read_new_measurements(
    ctx: PartnerContext,
    config: PartnerConfig,
    base_dir: Path,
    catalogue: TaskCatalogue,
    *,
    keep_training_overlap: bool = False,
    with_graphs: bool = False,
    workers: int = 1,
) -> NewMeasurements:
    """Read, describe and label new measurements (module docstring).

    Raises
    ------
    IngestError, ConfigError
        The files do not fit the config (as in ``prepare``).
    PreparationError
        No structure could be standardized.
    """
    ingested = ingest_partner(base_dir, config, workers=workers)
    d = _describe(ctx, ingested, workers, with_graphs)
    keep = keep_training_overlap | ~d.in_training
    t4r, agg_rej = _records(ctx, ingested, d, keep)
    labels, dvs, ambiguous = _labels(t4r, catalogue)
    modelled = {t.assay_id for t in catalogue.tasks}
    without = t4r[~t4r["assay_id"].isin(modelled)]["assay_id"].value_counts()
    t2 = ingested.t2.reset_index(drop=True)
    names = vector_compounds(d.t5, compound_id_map(ingested))
    counts = {
        "compounds_read": len(ingested.compound_ids),
        "compounds_standardized": len(d.batch.row_ids),
        "compounds_rejected": len(d.batch.rejections),
        "descriptor_vectors": int(d.x.shape[0]),
        "descriptor_vectors_in_training": int(d.in_training.sum()),
        "measurements_read": int(ingested.counts.get("measurements_read", len(ingested.t1))),
        "measurements_accepted": len(ingested.t1),
        "records_on_tasks": int(labels.y_cls.nnz + labels.y_reg.nnz),
        "labels_ambiguous": ambiguous,
        "rows_labelled": len(dvs),
    }
    return NewMeasurements(
        labels=labels,
        x=d.x[dvs],
        graphs=_graph_rows(d, dvs) if with_graphs else None,
        row_compounds=[names[int(v)] for v in dvs],
        counts=counts,
        assays_without_task={str(k): int(v) for k, v in without.items()},
        rejections=rejection_rows(ingested, d.batch, t2, d.t5, agg_rej),
    )


__all__ = ["NewMeasurements", "new_data_config", "read_new_measurements"]
