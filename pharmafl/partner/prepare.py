"""``prepare``: a partner's exports → scrambled, fold-consistent SparseChem matrices.

The steps follow MELLODDY-TUNER's ``prepare_4_training`` (consistency check, standardize,
describe, fold, aggregate, threshold, filter, matrices) with the per-molecule work done in
one pass per molecule, in parallel chunks (:func:`pharmafl.chem.describe_structures`), or on
any executor the caller provides (the Prefect flow passes its task runner).
Everything is written into a temporary folder that replaces ``prepared/`` only when complete.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import rdkit

from pharmafl import __version__
from pharmafl.chem import (
    DescribedBatch,
    consistency_hash,
    describe_structures,
    prestart_workers,
)
from pharmafl.common.errors import ConsistencyError, PreparationError
from pharmafl.common.io import atomic_directory, atomic_write_json, atomic_write_text, sha256_file
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
from pharmafl.common.secret import ConsortiumKey, load_consortium_key
from pharmafl.data import activities_to_tasks, dedupe_descriptors, write_matrices
from pharmafl.ingest import IngestResult, PartnerConfig, find_partner_config, ingest_partner
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
    """Worker processes for the per-molecule work; 0 = all cores."""
    chunk_size: int = 2000
    describer: Describer | None = None
    """Replace the built-in process pool (the Prefect flow passes its task runner here)."""
    progress: Callable[[int], None] | None = None
    """Called with the number of molecules finished since the last call."""
    with_graphs: bool = True


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


def _describe(ctx: PartnerContext, smiles: Sequence[str], opts: PrepareOptions) -> DescribedBatch:
    if opts.describer is not None:
        return opts.describer(smiles, ctx.params, ctx.key)
    return describe_structures(
        smiles,
        ctx.params,
        ctx.key,
        workers=_workers(opts.workers),
        chunk_size=opts.chunk_size,
        progress=opts.progress,
        with_graphs=opts.with_graphs,
    )


def _rejections(
    ingested: IngestResult,
    batch: DescribedBatch,
    t2: pd.DataFrame,
    id_map: dict[int, str],
    task_rej: pd.DataFrame,
) -> list[RejectionRow]:
    rows: list[RejectionRow] = []
    for r in ingested.rejections.itertuples(index=False):
        rows.append(
            RejectionRow(
                step="ingest",
                file=str(r.file),
                row=int(r.row) if pd.notna(r.row) else None,
                input_compound_id=None
                if pd.isna(r.input_compound_id)
                else str(r.input_compound_id),
                reason=str(r.reason),
                message=str(r.message),
            )
        )
    ids = t2["input_compound_id"].to_numpy()
    for r in batch.rejections.itertuples(index=False):
        cid = int(ids[int(r.row)])
        rows.append(
            RejectionRow(
                step="standardize",
                input_compound_id=id_map.get(cid, str(cid)),
                reason=str(r.reason),
                message=str(r.message),
            )
        )
    for r in task_rej.itertuples(index=False):
        d = r._asdict()
        rows.append(
            RejectionRow(
                step=str(d.get("step", "tasks")),
                input_assay_id=None
                if pd.isna(d.get("input_assay_id"))
                else str(d["input_assay_id"]),
                reason=str(d.get("reason", "")),
                message=str(d.get("message", "")),
            )
        )
    return rows


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
    steps: list[StepReport] = []

    def step(name: str, t0: float, **counts: int | float) -> None:
        steps.append(
            StepReport(name=name, seconds=round(time.perf_counter() - t0, 3), counts=counts)
        )
        log.info("prepare: %s done in %.1f s", name, steps[-1].seconds)

    if opts.describer is None and _workers(opts.workers) > 1:
        prestart_workers()  # the worker server imports RDKit while we check and read inputs
    t = time.perf_counter()
    ctx = load_partner_context(partner_dir)
    step("consistency_check", t, reference_hash_checked=int(ctx.reference_checked))

    t = time.perf_counter()
    ingested = ingest_partner(ctx.partner_dir, ctx.config)
    t2 = ingested.t2.reset_index(drop=True)
    step(
        "ingest",
        t,
        compounds=len(t2),
        measurements=len(ingested.t1),
        assays=len(ingested.t0),
        rejected=len(ingested.rejections),
    )

    t = time.perf_counter()
    batch = _describe(ctx, t2["smiles"].tolist(), opts)
    step(
        "standardize_describe_fold", t, succeeded=len(batch.row_ids), rejected=len(batch.rejections)
    )
    if len(batch.row_ids) == 0:
        raise PreparationError(
            "no structure passed standardization.",
            file=ctx.partner_dir,
            fix="check the structure export's SMILES column mapping in the partner config.",
        )

    t = time.perf_counter()
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
    m = built.matrices
    step(
        "tasks_and_matrices",
        t,
        descriptor_vectors=int(x_unique.shape[0]),
        rows=int(m.x.shape[0]),
        classification_tasks=int(m.y_cls.shape[1]),
        regression_tasks=int(m.y_reg.shape[1]),
    )

    # Graph per matrix row: the first compound of each descriptor vector.
    first_pos = t5.reset_index(drop=True).groupby("descriptor_vector_id", sort=True).head(1)
    dv_to_batch_pos = pd.Series(
        first_pos.index.to_numpy(), index=first_pos["descriptor_vector_id"].to_numpy()
    )
    row_of_dv = pd.Series(
        np.arange(len(m.row_descriptor_vector_id)), index=m.row_descriptor_vector_id
    )

    id_map = dict(
        zip(
            ingested.compound_ids["input_compound_id"],
            ingested.compound_ids["original_id"],
            strict=True,
        )
    )
    compounds = pd.DataFrame(
        {
            "input_compound_id": [id_map.get(int(c), str(c)) for c in compound_ids],
            "canonical_smiles": batch.canonical_smiles,
            "row": t5["descriptor_vector_id"].map(row_of_dv).fillna(-1).astype(np.int64).to_numpy(),
            "fold_id": batch.fold_ids.astype(np.int64),
        }
    )

    t = time.perf_counter()
    prepared = ctx.partner_dir / "prepared"
    with atomic_directory(prepared) as tmp:
        hashes = write_matrices(tmp, m)
        if opts.with_graphs:
            positions = dv_to_batch_pos.loc[m.row_descriptor_vector_id].to_numpy()
            batch.graphs.select(positions).save(tmp / "graphs.npz")
        compounds.to_csv(tmp / "compounds.csv", index=False)
        files = {
            p.name: OutputFile(sha256=sha256_file(p), bytes=p.stat().st_size)
            for p in sorted(tmp.iterdir())
            if p.is_file()
        }
        del hashes
        counts = PrepareCounts(
            compounds_input=len(t2),
            compounds_standardized=len(batch.row_ids),
            compounds_rejected=len(batch.rejections),
            measurements_input=int(ingested.counts["measurements_read"]),
            measurements_rejected=int(ingested.counts["measurements_read"] - len(ingested.t1)),
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
        step("write", t, files=len(files))
        manifest = PrepareManifest(
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
        rejections = _rejections(ingested, batch, t2, id_map, built.rejections)
        rej_counts: dict[str, int] = {}
        for r in rejections:
            k = f"{r.step}:{r.reason}"
            rej_counts[k] = rej_counts.get(k, 0) + 1
        report = RunReport(
            manifest=manifest,
            steps=steps,
            rejection_counts=dict(sorted(rej_counts.items())),
            rejections=rejections,
        )
        atomic_write_json(tmp / "manifest.json", manifest.model_dump(mode="json"))
        atomic_write_json(tmp / "run_report.json", report.model_dump(mode="json"))
        atomic_write_text(tmp / "summary.txt", render_summary(report))
    return PrepareResult(prepared_dir=prepared, manifest=manifest, steps=steps)


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
        "",
        "rejections (details in run_report.json):",
    ]
    if not report.rejection_counts:
        lines.append("  none")
    for k, v in report.rejection_counts.items():
        lines.append(f"  {k:<40} {v}")
    return "\n".join(lines) + "\n"


__all__ = [
    "Describer",
    "PartnerContext",
    "PrepareOptions",
    "PrepareResult",
    "load_partner_context",
    "prepare_partner",
    "render_summary",
]
