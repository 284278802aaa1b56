"""Launchers: how the operator's flows start partner work (:class:`pharmafl.server.Launcher`).

- :class:`EmbeddedLauncher`: every partner on this machine, each partner round a Prefect flow
  run in its own thread reading only its own folder (the embedded default).
- :class:`DeploymentLauncher`: ``run_deployment`` on each partner's deployment
  (``pharmafl-partner-round/<partner>``) on its own work pool; the round runs on the
  partner's machine.

Both are context managers (``with make_launcher(...) as launcher:``); ``close()`` releases the
embedded launcher's threads. They live with the flows (they start flow runs); the library
never imports them.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from flows._states import result_or_raise
from pharmafl.contract import partner_deployment
from pharmafl.layout import ConsortiumLayout
from pharmafl.server import LauncherBase

LauncherKind = Literal["embedded", "distributed"]

log = logging.getLogger(__name__)


class EmbeddedLauncher(LauncherBase):
    """Partner rounds as flow runs in threads of this process (a thread per run)."""

    def __init__(self, partner_dirs: dict[str, Path], exchange_url: str, timeout_s: float):
        self.partner_dirs = partner_dirs
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self._pools: list[ThreadPoolExecutor] = []
        self._runs: dict[str, Future[Any]] = {}
        self._threads: dict[str, int] = {}  # partner -> ident of the thread running its round
        self._lock = threading.Lock()

    def _run(self, partner: str, round_id: str, final: bool) -> Any:
        from flows.partner_round import partner_round_flow

        with self._lock:
            self._threads[partner] = threading.get_ident()
        try:
            return result_or_raise(
                partner_round_flow,
                str(self.partner_dirs[partner]),
                self.exchange_url,
                round_id,
                final=final,
                timeout_s=self.timeout_s,
            )
        finally:
            with self._lock:
                self._threads.pop(partner, None)

    def _interrupt_rounds(self) -> None:
        """Raise :class:`KeyboardInterrupt` in every running partner round too: Ctrl-C reaches
        only the main thread, and a round left alone waits for the operator until its stage
        timeout. Interrupted, each unwinds as the main thread does (temporary files removed,
        its flow run recorded as crashed) within a poll interval."""
        with self._lock:
            idents = list(self._threads.values())
        for ident in idents:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)
            )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupt_rounds()
        super().__exit__(exc_type, exc, tb)

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        # Never a shared, bounded pool: a straggler still running after finish() gave up on
        # it would hold a thread that the next round's partners need at the same time.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pharmafl-{partner}")
        with self._lock:
            self._runs[partner] = pool.submit(self._run, partner, round_id, final)
            self._pools.append(pool)
        pool.shutdown(wait=False)  # its thread ends with the run

    def failed(self) -> dict[str, str]:
        with self._lock:
            runs = dict(self._runs)
        out = {}
        for partner, fut in runs.items():
            if fut.done() and fut.exception() is not None:
                out[partner] = f"{type(fut.exception()).__name__}: {fut.exception()}"[:300]
        return out

    def finish(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            runs = dict(self._runs)
            self._runs.clear()
        out = {}
        for partner, fut in runs.items():
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # the partner's failure is a dropout, not ours
                out[partner] = (
                    f"{type(exc).__name__}: {exc}"[:300]
                    if fut.done()
                    else f"still running after {timeout_s:.0f} s"
                )
        return out

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.shutdown(wait=True)


class DeploymentLauncher(LauncherBase):
    """Partner rounds through ``run_deployment`` on each partner's own work pool.

    Sends only the exchange URL, the round id, ``final`` and the timeout; the partner folder
    is the deployment's own default, set by the partner (``pharmafl partner serve``). A
    partner whose deployment cannot be started counts as failed (a dropout), like one whose
    flow run fails or crashes. Runs still not finished at the deadline, and round runs not
    even started when the round is over, are cancelled, so a worker that comes back late
    never starts a stale round.
    """

    def __init__(self, exchange_url: str, timeout_s: float, poll_s: float = 1.0) -> None:
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._runs: dict[str, Any] = {}  # partner -> flow run id
        self._start_errors: dict[str, str] = {}
        self._states: dict[str, Any] = {}
        self._polled_at = -math.inf
        self._final = False

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        name = partner_deployment(partner)
        self._final = final
        try:
            run = run_deployment(
                name,
                parameters={
                    "exchange_url": self.exchange_url,
                    "round_id": round_id,
                    "final": final,
                    "timeout_s": self.timeout_s,
                },
                flow_run_name=f"{round_id}-{partner}",
                idempotency_key=f"{round_id}/{partner}",  # a retried request starts no 2nd run
                timeout=0,  # do not wait: rounds of all partners run at the same time
                as_subflow=False,
            )
        except ObjectNotFound:
            self._start_errors[partner] = (
                f"no deployment {name} on the Prefect server "
                "(the partner runs `pharmafl partner serve PARTNER_DIR --pool POOL`)"
            )
        except Exception as exc:  # an unreachable partner deployment is a dropout
            self._start_errors[partner] = f"could not start {name}: {type(exc).__name__}"
        else:
            self._runs[partner] = run.id  # type: ignore[union-attr]
            self._polled_at = -math.inf
            return
        log.warning("partner %s not started: %s", partner, self._start_errors[partner])

    def _poll(self, force: bool = False) -> dict[str, Any]:
        """Current states of the started runs (one API call, at most every ``poll_s``)."""
        if not self._runs:
            return {}
        if not force and time.monotonic() - self._polled_at < self.poll_s:
            return self._states
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        ids = list(self._runs.values())
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
        by_id = {r.id: r.state for r in runs}
        self._states = {p: by_id.get(fid) for p, fid in self._runs.items()}
        self._polled_at = time.monotonic()
        return self._states

    @staticmethod
    def _reason(state: Any) -> str:
        if state is None:
            return "flow run not found on the Prefect server"
        return f"flow run {state.name}: {state.message or ''}".strip()[:300]

    def failed(self) -> dict[str, str]:
        out = dict(self._start_errors)
        for p, st in self._poll().items():
            if st is not None and (st.is_failed() or st.is_crashed() or st.is_cancelled()):
                out[p] = self._reason(st)
        return out

    def _cancel(self, partner: str, state: Any) -> None:
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled, Cancelling

        running = state is not None and state.is_running()
        new = Cancelling if running else Cancelled
        try:
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(
                    self._runs[partner], new(message="round deadline passed"), force=True
                )
        except Exception as exc:  # best effort: the run is already counted as failed
            log.warning("could not cancel the run of %s: %s", partner, type(exc).__name__)

    def finish(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self._poll(force=True)
            # After a round's secure aggregation, a run that has not even started cannot
            # contribute any more (its partner was dropped): no reason to wait for it.
            if all(
                st is not None and (st.is_final() or (not self._final and _unstarted(st)))
                for st in states.values()
            ):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(self.poll_s)
        out = dict(self._start_errors)
        for p, st in states.items():
            if st is None or not st.is_completed():
                out[p] = self._reason(st)
            if st is not None and not st.is_final():
                self._cancel(p, st)
        self._runs.clear()
        self._start_errors.clear()
        self._states = {}
        self._final = False
        return out


def _unstarted(state: Any) -> bool:
    return bool(state.is_scheduled() or state.is_pending())


def make_launcher(
    kind: LauncherKind, consortium_dir: str | Path, exchange_url: str, timeout_s: float
) -> EmbeddedLauncher | DeploymentLauncher:
    """The launcher of ``kind`` for a consortium folder (embedded: its ``partners/``)."""
    if kind == "distributed":
        return DeploymentLauncher(exchange_url, timeout_s)
    partners = ConsortiumLayout(Path(consortium_dir)).partner_dirs()
    return EmbeddedLauncher(partners, exchange_url, timeout_s)


__all__ = ["DeploymentLauncher", "EmbeddedLauncher", "LauncherKind", "make_launcher"]
