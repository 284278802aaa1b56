"""``prepare``: a partner's exports → scrambled, fold-consistent SparseChem matrices.

The steps follow MELLODDY-TUNER's ``prepare_4_training`` (consistency check, standardize,
describe, fold, aggregate, threshold, filter, matrices) with the per-molecule work done in
one pass per molecule, in parallel chunks (:func:`pharmafl.chem.describe_structures`), or on
any executor the caller provides (the Prefect flow passes its task runner).
Everything is written into a temporary folder that replaces ``prepared/`` only when complete.

Incremental: each structure's per-molecule result is kept in the partner's private cache
(:mod:`pharmafl.chem.cache`, ``PARTNER_DIR/cache/prepare/``), scoped by the parameters, the
key, the versions and the code, so a rerun after adding compounds describes only the new ones
and writes the same bytes as a full run. The run report's describe step counts them
(``cached``); ``PrepareOptions(cache=False)`` (``pharmafl prepare --no-cache``) neither reads
nor writes it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import rdkit

from pharmafl import __version__
from pharmafl.chem import (
    DescribeCache,
    DescribedBatch,
    cache_scope,
    consistency_hash,
    describe_structures,
    describe_with_cache,
    prestart_workers,
)
from pharmafl.chem.pool import MIN_PARALLEL
from pharmafl.common.errors import ConsistencyError, PreparationError
from pharmafl.common.io import atomic_directory, atomic_write_json, atomic_write_text, sha256_file
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
from pharmafl.common.secret import ConsortiumKey, load_consortium_key
from pharmafl.data import activities_to_tasks, dedupe_descriptors, write_matrices
from pharmafl.data.matrices import PreparedMatrices
from pharmafl.data.tasks import TaskBuildResult
from pharmafl.ingest import IngestResult, PartnerConfig, find_partner_config, ingest_partner
from pharmafl.layout import MANIFEST_FILE, PartnerLayout
from pharmafl.partner.ids import rejection_rows, with_partner_ids
from pharmafl.partner.limits import check_trainable
from pharmafl.partner.manifest import (
    OutputFile,
    PrepareCounts,
    PrepareManifest,
    RejectionRow,
    RunReport,
    StepReport,
)

log = logging.getLogger(__name__)

#: A function that describes structures: (smiles, params, key) -> DescribedBatch.
Describer = Callable[[Sequence[str], ConsortiumParameters, ConsortiumKey], DescribedBatch]


@dataclass
class PrepareOptions:
    """How to run one preparation (machine-local choices, not consortium parameters)."""

    workers: int = 0
    """Worker processes for the per-molecule work; 0 = all cores. Fewer than
    :data:`~pharmafl.chem.pool.MIN_PARALLEL` structures to describe (a small partner, a
    refresh) run in this process: starting processes would cost more than they save."""
    chunk_size: int = 2000
    describer: Describer | None = None
    """Replace the built-in process pool (the Prefect flow passes its task runner here)."""
    progress: Callable[[int], None] | None = None
    """Called with the number of molecules finished since the last call."""
    total: Callable[[int], None] | None = None
    """Called once with the number of molecules to describe (a progress bar's total)."""
    with_graphs: bool = True
    cache: bool = True
    """Reuse the per-molecule results of earlier runs (``PARTNER_DIR/cache/prepare/``) and
    keep this run's; False neither reads nor writes the cache."""


@dataclass
class PrepareResult:
    """What :func:`prepare_partner` returns (the same facts as the run report)."""

    prepared_dir: Path
    manifest: PrepareManifest
    steps: list[StepReport] = field(default_factory=list)


@dataclass
class PartnerContext:
    """A partner's config, parameters and key, loaded and checked."""

    partner_dir: Path
    config: PartnerConfig
    params: ConsortiumParameters
    key: ConsortiumKey
    consistency_hash: str
    reference_checked: bool


def load_partner_context(partner_dir: str | Path) -> PartnerContext:
    """Load a partner's config, consortium parameters and key; run the consistency check.

    Raises
    ------
    ConsistencyError
        When the consortium published a reference hash and this partner's differs
        (different key, parameters, pharmafl or RDKit version).
    """
    pdir = Path(partner_dir)
    if not pdir.is_dir():
        raise PreparationError(
            "partner folder does not exist.",
            file=pdir,
            fix="pass the folder that holds partner.toml (or partner.yaml) and raw/.",
        )
    config = find_partner_config(pdir)
    params = load_consortium_parameters(config.parameters_path(pdir))
    key = load_consortium_key(config.key_path(pdir))
    digest = consistency_hash(params, key)
    checked = False
    if params.reference_hash is not None:
        if digest != params.reference_hash:
            raise ConsistencyError(
                "this partner's consistency hash does not match the consortium's published "
                f"value (got {digest[:12]}…, published {params.reference_hash[:12]}…). The key, "
                "the consortium parameters, or the pharmafl/RDKit versions differ from the "
                "consortium's.",
                file=pdir / config.consortium_file,
                fix="use the consortium's key file and parameters unchanged, and the pinned "
                f"versions (pharmafl {__version__}, RDKit {rdkit.__version__} here).",
            )
        checked = True
    return PartnerContext(pdir, config, params, key, digest, checked)


def _workers(n: int) -> int:
    return n if n > 0 else max(1, os.cpu_count() or 1)


def _describe_fresh(
    ctx: PartnerContext, opts: PrepareOptions, smiles: Sequence[str]
) -> DescribedBatch:
    if opts.describer is not None:
        return opts.describer(smiles, ctx.params, ctx.key)
    return describe_structures(
        smiles,
        ctx.params,
        ctx.key,
        workers=_workers(opts.workers) if len(smiles) >= MIN_PARALLEL else 1,
        chunk_size=opts.chunk_size,
        progress=opts.progress,
        with_graphs=opts.with_graphs,
    )


def _describe(
    ctx: PartnerContext, smiles: Sequence[str], opts: PrepareOptions
) -> tuple[DescribedBatch, int]:
    """Describe every structure; also return how many input rows came from the cache."""
    if opts.total is not None:
        opts.total(len(smiles))
    fresh = functools.partial(_describe_fresh, ctx, opts)
    if not opts.cache:
        return fresh(smiles), 0
    scope = cache_scope(ctx.params, ctx.key, with_graphs=opts.with_graphs, with_folds=True)
    cache = DescribeCache(PartnerLayout(ctx.partner_dir).describe_cache, scope)
    batch, report = describe_with_cache(smiles, fresh, cache, progress=opts.progress)
    log.info(
        "prepare: %d of %d structures from the cache (%s), %d described",
        report.cached,
        len(smiles),
        report.state,
        report.described,
    )
    return batch, report.cached


class _Steps:
    """The per-step timings and counts of one preparation (the run report's ``steps``)."""

    def __init__(self) -> None:
        self.reports: list[StepReport] = []
        self.t0 = time.perf_counter()

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def done(self, name: str, **counts: int | float) -> None:
        seconds = round(time.perf_counter() - self.t0, 3)
        self.reports.append(StepReport(name=name, seconds=seconds, counts=counts))
        log.info("prepare: %s done in %.1f s", name, seconds)
        self.t0 = time.perf_counter()


def _ingest(ctx: PartnerContext, steps: _Steps) -> IngestResult:
    ingested = ingest_partner(ctx.partner_dir, ctx.config)
    steps.done(
        "ingest",
        compounds=len(ingested.t2),
        measurements=len(ingested.t1),
        assays=len(ingested.t0),
        rejected=len(ingested.rejections),
    )
    return ingested


def _describe_all(
    ctx: PartnerContext, t2: pd.DataFrame, opts: PrepareOptions, steps: _Steps
) -> DescribedBatch:
    batch, cached = _describe(ctx, t2["smiles"].tolist(), opts)
    steps.done(
        "standardize_describe_fold",
        succeeded=len(batch.row_ids),
        rejected=len(batch.rejections),
        cached=cached,
    )
    if len(batch.row_ids) == 0:
        raise PreparationError(
            "no structure passed standardization.",
            file=ctx.partner_dir,
            fix="check the structure export's SMILES column mapping in the partner config.",
        )
    return batch


@dataclass
class _Tasks:
    """The deduplicated descriptors (T5) and the tasks and matrices built from them."""

    compound_ids: np.ndarray
    t5: pd.DataFrame
    built: TaskBuildResult


def _tasks(
    ctx: PartnerContext,
    ingested: IngestResult,
    t2: pd.DataFrame,
    batch: DescribedBatch,
    steps: _Steps,
) -> _Tasks:
    compound_ids = t2["input_compound_id"].to_numpy()[batch.row_ids]
    t5, x_unique, folds_unique = dedupe_descriptors(compound_ids, batch.x, batch.fold_ids)
    built = activities_to_tasks(
        ingested.t0,
        ingested.t1,
        t5,
        x_unique,
        folds_unique,
        ctx.params.tasks,
        ctx.params.folding.nfolds,
    )
    built = with_partner_ids(built, ingested)
    m = built.matrices
    steps.done(
        "tasks_and_matrices",
        descriptor_vectors=int(x_unique.shape[0]),
        rows=int(m.x.shape[0]),
        classification_tasks=int(m.y_cls.shape[1]),
        regression_tasks=int(m.y_reg.shape[1]),
    )
    return _Tasks(compound_ids, t5, built)


def _compound_table(
    ingested: IngestResult, batch: DescribedBatch, tasks: _Tasks, id_map: dict[int, str]
) -> pd.DataFrame:
    """``compounds.csv``: each standardized compound by the partner's own id, its matrix row
    and fold."""
    m = tasks.built.matrices
    row_of_dv = pd.Series(
        np.arange(len(m.row_descriptor_vector_id)), index=m.row_descriptor_vector_id
    )
    rows = tasks.t5["descriptor_vector_id"].map(row_of_dv).fillna(-1).astype(np.int64)
    return pd.DataFrame(
        {
            "input_compound_id": [id_map.get(int(c), str(c)) for c in tasks.compound_ids],
            "canonical_smiles": batch.canonical_smiles,
            "row": rows.to_numpy(),
            "fold_id": batch.fold_ids.astype(np.int64),
        }
    )


def _graph_positions(tasks: _Tasks) -> np.ndarray:
    """Batch position of each matrix row's graph: the first compound of its descriptor vector."""
    first_pos = tasks.t5.reset_index(drop=True).groupby("descriptor_vector_id", sort=True).head(1)
    dv_to_batch_pos = pd.Series(
        first_pos.index.to_numpy(), index=first_pos["descriptor_vector_id"].to_numpy()
    )
    return dv_to_batch_pos.loc[tasks.built.matrices.row_descriptor_vector_id].to_numpy()


def _counts(
    ctx: PartnerContext, ingested: IngestResult, batch: DescribedBatch, m: PreparedMatrices
) -> PrepareCounts:
    read = int(ingested.counts["measurements_read"])
    return PrepareCounts(
        compounds_input=len(ingested.t2),
        compounds_standardized=len(batch.row_ids),
        compounds_rejected=len(batch.rejections),
        measurements_input=read,
        measurements_rejected=int(read - len(ingested.t1)),
        assays=len(ingested.t0),
        descriptor_vectors=int(m.x.shape[0]),
        classification_tasks=int(m.y_cls.shape[1]),
        regression_tasks=int(m.y_reg.shape[1]),
        classification_labels=int(m.y_cls.nnz),
        regression_values=int(m.y_reg.nnz),
        rows_per_fold=np.bincount(m.folds, minlength=ctx.params.folding.nfolds)
        .astype(int)
        .tolist(),
    )


def _manifest(
    ctx: PartnerContext, counts: PrepareCounts, files: dict[str, OutputFile], t_start: float
) -> PrepareManifest:
    return PrepareManifest(
        pharmafl_version=__version__,
        rdkit_version=rdkit.__version__,
        consortium_name=ctx.params.consortium_name,
        partner_name=ctx.config.name,
        created_at=datetime.now(UTC),
        parameter_hash=ctx.params.parameter_hash(),
        consistency_hash=ctx.consistency_hash,
        reference_hash_checked=ctx.reference_checked,
        fold_size=ctx.params.fingerprint.fold_size,
        nfolds=ctx.params.folding.nfolds,
        counts=counts,
        files=files,
        wall_seconds=round(time.perf_counter() - t_start, 3),
    )


def rejection_counts(rejections: Sequence[RejectionRow]) -> dict[str, int]:
    """``step:reason`` → rejected rows, sorted by key (the run report's counts)."""
    return dict(sorted(Counter(f"{r.step}:{r.reason}" for r in rejections).items()))


def _run_report(
    manifest: PrepareManifest, steps: _Steps, rejections: list[RejectionRow]
) -> RunReport:
    return RunReport(
        manifest=manifest,
        steps=steps.reports,
        rejection_counts=rejection_counts(rejections),
        rejections=rejections,
    )


def prepare_partner(
    partner_dir: str | Path, options: PrepareOptions | None = None
) -> PrepareResult:
    """Run the whole preparation for one partner and write ``PARTNER_DIR/prepared/``.

    Parameters
    ----------
    partner_dir
        The partner's folder (``partner.toml``/``.yaml``, ``consortium.json``, ``key.json``,
        raw exports).
    options
        Machine-local choices (workers, chunk size, an external describer).

    Returns
    -------
    PrepareResult
        The manifest and per-step report. Nothing is written if any step fails.
    """
    opts = options or PrepareOptions()
    t_start = time.perf_counter()
    steps = _Steps()
    if opts.describer is None and _workers(opts.workers) > 1:
        prestart_workers()  # the worker server imports RDKit while we check and read inputs
    ctx = load_partner_context(partner_dir)
    steps.done("consistency_check", reference_hash_checked=int(ctx.reference_checked))
    ingested = _ingest(ctx, steps)
    t2 = ingested.t2.reset_index(drop=True)
    batch = _describe_all(ctx, t2, opts, steps)
    tasks = _tasks(ctx, ingested, t2, batch, steps)
    id_map = dict(
        zip(
            ingested.compound_ids["input_compound_id"],
            ingested.compound_ids["original_id"],
            strict=True,
        )
    )
    rejections = rejection_rows(ingested, batch, t2, tasks.t5, tasks.built.rejections)
    check_trainable(
        tasks.built.catalogue,
        ctx.params.tasks,
        measurements=int(ingested.counts["measurements_read"]),
        assays=len(ingested.t0),
        rejection_counts=rejection_counts(rejections),
    )
    return _write_prepared(ctx, opts, ingested, batch, tasks, id_map, rejections, steps, t_start)


def _write_prepared(
    ctx: PartnerContext,
    opts: PrepareOptions,
    ingested: IngestResult,
    batch: DescribedBatch,
    tasks: _Tasks,
    id_map: dict[int, str],
    rejections: list[RejectionRow],
    steps: _Steps,
    t_start: float,
) -> PrepareResult:
    """Write every output into a temporary folder that replaces ``prepared/`` when complete."""
    m = tasks.built.matrices
    prepared = PartnerLayout(ctx.partner_dir).prepared
    with atomic_directory(prepared) as tmp:
        write_matrices(tmp, m)
        if opts.with_graphs:
            batch.graphs.select(_graph_positions(tasks)).save(tmp / "graphs.npz")
        _compound_table(ingested, batch, tasks, id_map).to_csv(tmp / "compounds.csv", index=False)
        files = {
            p.name: OutputFile(sha256=sha256_file(p), bytes=p.stat().st_size)
            for p in sorted(tmp.iterdir())
            if p.is_file()
        }
        counts = _counts(ctx, ingested, batch, m)
        steps.done("write", files=len(files))
        manifest = _manifest(ctx, counts, files, t_start)
        report = _run_report(manifest, steps, rejections)
        atomic_write_json(tmp / MANIFEST_FILE, manifest.model_dump(mode="json"))
        atomic_write_json(tmp / "run_report.json", report.model_dump(mode="json"))
        atomic_write_text(tmp / "summary.txt", render_summary(report))
    return PrepareResult(prepared_dir=prepared, manifest=manifest, steps=steps.reports)


def render_summary(report: RunReport) -> str:
    """A readable summary of a run report (counts per step, rejections per reason)."""
    m = report.manifest
    lines = [
        f"pharmafl {m.pharmafl_version} prepare — partner {m.partner_name} "
        f"({m.consortium_name}), {m.created_at:%Y-%m-%d %H:%M} UTC, {m.wall_seconds:.1f} s",
        f"consistency hash {m.consistency_hash} "
        f"({'matches the consortium' if m.reference_hash_checked else 'no reference published'})",
        "",
        "steps:",
    ]
    for s in report.steps:
        counts = ", ".join(f"{k}={v}" for k, v in s.counts.items())
        lines.append(f"  {s.name:<28} {s.seconds:8.2f} s  {counts}")
    c = m.counts
    lines += [
        "",
        f"compounds: {c.compounds_input} read, {c.compounds_standardized} standardized, "
        f"{c.compounds_rejected} rejected; {c.descriptor_vectors} rows in X",
        f"tasks: {c.classification_tasks} classification ({c.classification_labels} labels), "
        f"{c.regression_tasks} regression ({c.regression_values} values)",
        f"rows per fold: {c.rows_per_fold}",
        *_cache_line(report),
        "",
        "rejections (details in run_report.json):",
    ]
    if not report.rejection_counts:
        lines.append("  none")
    for k, v in report.rejection_counts.items():
        lines.append(f"  {k:<40} {v}")
    return "\n".join(lines) + "\n"


def _cache_line(report: RunReport) -> list[str]:
    cached = sum(int(s.counts.get("cached", 0)) for s in report.steps)
    if not cached:
        return []
    return [
        f"cache: {cached} of {report.manifest.counts.compounds_input} structures' "
        "standardization, descriptors and folds reused from an earlier run"
    ]


__all__ = [
    "Describer",
    "PartnerContext",
    "PrepareOptions",
    "PrepareResult",
    "load_partner_context",
    "prepare_partner",
    "render_summary",
]
