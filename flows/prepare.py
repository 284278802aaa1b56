"""The partner preparation flow (``pharmafl prepare``).

Runs embedded by default (Prefect's ephemeral API, no server). The per-molecule work runs in
chunks; with ``engine="dask"`` each chunk is a Prefect task on a Dask cluster
(prefect-dask's ``DaskTaskRunner``): a local cluster by default, or any running Dask
scheduler given by ``dask_address`` — how a partner with millions of compounds spreads the work
over its own cluster. Result persistence and caching are off: raw partner data never lands in
Prefect's result storage or on a server. Only counts reach Prefect's logs.
"""

# No `from __future__ import annotations`: Prefect builds each flow's parameter model from
# its annotations, which must be objects (the flow body is wrapped by fails_cleanly).
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._states import fails_cleanly, result_or_raise
from pharmafl.chem import (
    DescribedBatch,
    chunk_bounds,
    describe_chunk,
    merge_batches,
    prestart_workers,
)
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import ConsortiumKey, load_consortium_key
from pharmafl.partner.prepare import PrepareOptions, load_partner_context, prepare_partner


@task(name="describe-chunk", persist_result=False, cache_policy=NO_CACHE, retries=0)
def describe_chunk_task(
    smiles: list[str], params: ConsortiumParameters, key_file: str | None, with_graphs: bool
) -> DescribedBatch:
    """Standardize, describe and fold one chunk (the key is re-read on the worker)."""
    key = load_consortium_key(key_file)
    return describe_chunk(smiles, params, key, with_graphs=with_graphs)


class _TaskRunnerDescriber:
    """Submits one ``describe_chunk_task`` per chunk to the flow's task runner."""

    def __init__(
        self, key_file: str | None, chunk_size: int, with_graphs: bool, workers: int
    ) -> None:
        self.key_file = key_file
        self.chunk_size = chunk_size
        self.with_graphs = with_graphs
        self.workers = workers  # chunks shrink towards the end so that workers finish together

    def __call__(
        self, smiles: Sequence[str], params: ConsortiumParameters, key: ConsortiumKey
    ) -> DescribedBatch:
        del key  # never shipped to workers; they read the owner-only key file themselves
        logger = get_run_logger()
        bounds = chunk_bounds(len(smiles), self.chunk_size, self.workers)
        futures = [
            describe_chunk_task.submit(list(smiles[s:e]), params, self.key_file, self.with_graphs)
            for s, e in bounds
        ]
        batches = []
        for i, fut in enumerate(futures, 1):
            batches.append(fut.result())
            logger.info("describe: chunk %d/%d done", i, len(futures))
        return merge_batches(batches, [s for s, _ in bounds])


@contextlib.contextmanager
def _progress_bar(enabled: bool, total_hint: str) -> Iterator[Any]:
    from rich import get_console

    if not enabled or not get_console().is_interactive:  # a bar is for a terminal, not a log
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as bar:
        tid = bar.add_task(total_hint, total=None)
        try:
            yield bar, tid
        except BaseException:
            bar.live.transient = True  # a failed or interrupted run leaves no bar behind
            raise


@flow(name="pharmafl-prepare", persist_result=False, log_prints=False)
@fails_cleanly("prepare")
def prepare_flow(
    partner_dir: str,
    workers: int = 0,
    chunk_size: int = 2000,
    engine: Literal["processes", "dask"] = "processes",
    show_progress: bool = False,
    cache: bool = True,
) -> dict[str, Any]:
    """Prepare one partner's data; returns the manifest (counts and hashes only).

    ``cache``: reuse the per-molecule results of earlier runs (the partner's private
    ``cache/prepare/``); only the new structures are described, on either engine.
    """
    logger = get_run_logger()
    logger.info("prepare: partner folder %s", Path(partner_dir).name)
    describer = None
    if engine == "dask":
        from pharmafl.ingest import find_partner_config

        key_path = find_partner_config(Path(partner_dir)).key_path(Path(partner_dir))
        key_file = str(key_path) if key_path is not None else None
        describer = _TaskRunnerDescriber(
            key_file, chunk_size, with_graphs=True, workers=max(1, workers or os.cpu_count() or 1)
        )
    with _progress_bar(show_progress and engine == "processes", "molecules") as pb:
        progress = total = None
        if pb is not None:
            bar, tid = pb

            def progress(n: int) -> None:
                bar.advance(tid, n)

            def total(n: int) -> None:
                bar.update(tid, total=n)

        result = prepare_partner(
            partner_dir,
            PrepareOptions(
                workers=workers,
                chunk_size=chunk_size,
                describer=describer,
                progress=progress,
                total=total,
                cache=cache,
            ),
        )
    c = result.manifest.counts
    cached = sum(int(s.counts.get("cached", 0)) for s in result.steps)
    logger.info(
        "prepare: %d compounds (%d from the cache) → %d rows, %d classification + %d "
        "regression tasks in %.1f s",
        c.compounds_input,
        cached,
        c.descriptor_vectors,
        c.classification_tasks,
        c.regression_tasks,
        result.manifest.wall_seconds,
    )
    return result.manifest.model_dump(mode="json")


def run_prepare(
    partner_dir: str | Path,
    *,
    workers: int = 0,
    chunk_size: int = 2000,
    engine: Literal["processes", "dask"] = "processes",
    dask_address: str | None = None,
    show_progress: bool = False,
    cache: bool = True,
) -> dict[str, Any]:
    """Run :func:`prepare_flow` with the task runner the engine needs.

    The partner's folder, key and parameters are checked first (a few tenths of a second),
    so that their errors come at once, not after Prefect's start (a temporary API server
    takes several seconds); the flow checks them again, as every flow run must.
    """
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    load_partner_context(partner_dir)
    if engine == "processes" and workers != 1:
        # The worker server's imports (~1 s) overlap Prefect's start (a temporary API server
        # takes a few seconds on the first flow run of a process).
        prestart_workers()
    f = prepare_flow
    if engine == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            runner = DaskTaskRunner(address=dask_address)
        else:
            n = workers if workers > 0 else (os.cpu_count() or 1)
            runner = DaskTaskRunner(
                cluster_kwargs={
                    "n_workers": n,
                    "threads_per_worker": 1,
                    "processes": True,
                    "dashboard_address": None,
                    "host": "127.0.0.1",
                }
            )
        f = prepare_flow.with_options(task_runner=runner)  # type: ignore[arg-type]
    return result_or_raise(  # type: ignore[no-any-return]
        f,
        str(partner_dir),
        workers=workers,
        chunk_size=chunk_size,
        engine=engine,
        show_progress=show_progress,
        cache=cache,
    )


__all__ = ["describe_chunk_task", "prepare_flow", "run_prepare"]
