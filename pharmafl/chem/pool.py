"""The process pool behind :func:`pharmafl.chem.describe_structures`: chunking and workers.

Workers fork from a clean forkserver process that imports RDKit and pharmafl once
(:func:`prestart_workers` starts it early); each worker runs an initializer once (the
consortium key and parameters arrive there, never per task) and then one task per chunk.
In-flight tasks are bounded, so memory is too. Chunking is guided: the chunks shrink towards
the end and no process idles while another finishes a big one. Nothing here knows about
molecules: :mod:`pharmafl.chem.batch` passes its task and initializer.

Ctrl-C: a terminal sends SIGINT to every process of the command. Workers never act on it
(they start with SIGINT blocked and ignore it); the parent's :class:`KeyboardInterrupt` stops
them at once (pending chunks cancelled, running ones terminated) instead of waiting for them.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

R = TypeVar("R")

#: Imported once by the forkserver, so every worker starts with RDKit and pharmafl loaded.
_PRELOAD = ["pharmafl.chem.batch"]

#: Guided scheduling: a chunk holds at most 1/(workers * this) of the molecules still to go,
#: so the chunks shrink towards the end and no process idles while another finishes a big one.
_CHUNKS_PER_WORKER = 4
#: Smallest chunk handed to a process (a few hundred milliseconds of work).
_MIN_CHUNK = 25
#: How often the parent wakes up while waiting for chunks, to act on a Ctrl-C.
_WAKE_SECONDS = 0.2
#: With ``workers=0`` (every core), fewer molecules than this run in this process: starting
#: processes would cost more than they save.
MIN_PARALLEL = 200


def chunk_bounds(n: int, chunk_size: int, workers: int) -> list[tuple[int, int]]:
    """``(start, end)`` of each chunk of ``n`` molecules, in input order.

    One worker: chunks of ``chunk_size``. Several: guided scheduling, each chunk at most
    ``chunk_size`` and at most ``remaining / (workers * 4)`` molecules (at least 25), so the
    last chunks are small and all processes finish together. Results never depend on it.
    """
    if n <= 0:
        return [(0, 0)]
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < n:
        size = chunk_size
        if workers > 1:
            share = -(-(n - start) // (workers * _CHUNKS_PER_WORKER))  # ceil
            size = min(chunk_size, max(_MIN_CHUNK, share))
        end = min(n, start + size)
        bounds.append((start, end))
        start = end
    return bounds


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean server process, not from a (possibly
    # multi-threaded, e.g. Prefect) parent; RDKit and pharmafl are imported there once.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT in this thread; processes started meanwhile inherit the blocked mask."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def prestart_workers() -> None:
    """Start the server that pool workers fork from, without waiting for it.

    The server imports RDKit and pharmafl (about a second) in its own process; calling this
    before other work (reading the partner's files) takes that out of the critical path of
    the first :func:`~pharmafl.chem.describe_structures` with several processes. Safe to call
    repeatedly. The server, and so every worker forked from it, starts with SIGINT blocked.
    """
    if _pool_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver, resource_tracker

        resource_tracker.ensure_running()  # started later, it would unblock SIGINT behind it
        with _sigint_blocked():
            forkserver.ensure_running()


def _init_worker(initializer: Callable[..., None], *initargs: Any) -> None:
    # Where workers do not fork from the (SIGINT-blocked) forkserver: ignore it from here on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initializer(*initargs)


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Cancel pending chunks and terminate the workers without waiting for running ones."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(timeout=5)


def map_chunks(
    task: Callable[[Any], R],
    chunks: Sequence[Any],
    workers: int,
    *,
    initializer: Callable[..., None],
    initargs: tuple[Any, ...],
    on_done: Callable[[R], None] | None = None,
) -> list[R]:
    """``task(chunk)`` for every chunk on ``workers`` processes; results in chunk order.

    At most ``2 * workers`` chunks are in flight; ``on_done`` is called in this process as
    each result arrives (in completion order).
    """
    prestart_workers()
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_pool_context(),
        initializer=_init_worker,
        initargs=(initializer, *initargs),
    )
    try:
        results = _run_window(pool, task, chunks, 2 * workers, on_done)
    except BaseException:  # Ctrl-C or a failed chunk: nothing more to wait for
        _stop_now(pool)
        raise
    pool.shutdown()
    return results


def _run_window(
    pool: ProcessPoolExecutor,
    task: Callable[[Any], R],
    chunks: Sequence[Any],
    window: int,
    on_done: Callable[[R], None] | None,
) -> list[R]:
    """Keep at most ``window`` chunks in flight (bounded memory); results in chunk order."""
    results: list[R | None] = [None] * len(chunks)
    pending: dict[Future[R], int] = {}
    next_k = 0
    while next_k < len(chunks) or pending:
        while next_k < len(chunks) and len(pending) < window:
            pending[pool.submit(task, chunks[next_k])] = next_k
            next_k += 1
        # Timed: an untimed wait here let a Ctrl-C wait for the next chunk (seconds) to finish.
        done, _ = wait(pending, timeout=_WAKE_SECONDS, return_when=FIRST_COMPLETED)
        for fut in done:
            res = results[pending.pop(fut)] = fut.result()
            if on_done is not None:
                on_done(res)
    return [r for r in results if r is not None]


__all__ = ["MIN_PARALLEL", "chunk_bounds", "map_chunks", "prestart_workers"]
