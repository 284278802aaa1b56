"""Launchers: how the operator's flows start partner work (:class:`pharmafl.server.Launcher`).

- :class:`EmbeddedLauncher`: every partner on this machine, each partner round a Prefect task
  run of the operator's flow, in its own thread, reading only its own folder (the embedded
  default).
- :class:`DeploymentLauncher`: ``run_deployment`` on each partner's deployment
  (``pharmafl-partner-round/<partner>``) on its own work pool; the round runs on the
  partner's machine.

Both are context managers (``with make_launcher(...) as launcher:``); ``close()`` releases the
embedded launcher's threads. They live with the flows (they start flow and task runs); the library
never imports them.
"""

from __future__ import annotations

import contextvars
import ctypes
import logging
import math
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from flows._prefect_api import PrefectApi, WorkerLiveness
from flows._states import result_or_raise
from pharmafl.common.errors import PharmaFLError, PolicyViolationError
from pharmafl.contract import partner_deployment, run_id_of
from pharmafl.layout import ConsortiumLayout
from pharmafl.server import LauncherBase, exception_failure, failure
from pharmafl.server.launcher import (
    CANCELLED,
    DEADLINE,
    NOT_DEPLOYED,
    REFUSED_BY_POLICY,
    RUN_CRASHED,
    RUN_FAILED,
)

LauncherKind = Literal["embedded", "distributed"]
#: How often embedded partners and the operator look for the next protocol message: the store
#: is a local folder, so listing it at 20 Hz costs nothing, and a round has six stage
#: hand-overs (the Prefect default of 0.2 s cost about a second a round).
EMBEDDED_POLL_S = 0.05
#: How many times a round submits a partner's run again after it crashed before starting.
RELAUNCHES = 2

log = logging.getLogger(__name__)


class EmbeddedLauncher(LauncherBase):
    """Partner rounds as task runs in threads of this process (a thread per run)."""

    def __init__(self, partner_dirs: dict[str, Path], exchange_url: str, timeout_s: float):
        self.partner_dirs = partner_dirs
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self._pools: list[ThreadPoolExecutor] = []
        self._runs: dict[str, Future[Any]] = {}
        self._threads: dict[str, int] = {}  # partner -> ident of the thread running its round
        self._lock = threading.Lock()

    def _run(self, partner: str, round_id: str, final: bool) -> Any:
        from flows.partner_round import partner_round_task

        with self._lock:
            self._threads[partner] = threading.get_ident()
        try:
            return result_or_raise(
                partner_round_task,
                str(self.partner_dirs[partner]),
                self.exchange_url,
                round_id,
                final=final,
                timeout_s=self.timeout_s,
                poll_s=EMBEDDED_POLL_S,
            )
        finally:
            with self._lock:
                self._threads.pop(partner, None)

    def _interrupt_rounds(self) -> None:
        """Raise :class:`KeyboardInterrupt` in every running partner round too: Ctrl-C reaches
        only the main thread, and a round left alone waits for the operator until its stage
        timeout. Interrupted, each unwinds as the main thread does (temporary files removed,
        its task run recorded as crashed) within a poll interval."""
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
        # The caller's context (the operator's flow run): each round is a task run of it.
        context = contextvars.copy_context()
        with self._lock:
            self._runs[partner] = pool.submit(context.run, self._run, partner, round_id, final)
            self._pools.append(pool)
        pool.shutdown(wait=False)  # its thread ends with the run

    def failed(self) -> dict[str, str]:
        with self._lock:
            runs = dict(self._runs)
        out = {}
        for partner, fut in runs.items():
            exc = fut.exception() if fut.done() else None
            if exc is not None:
                out[partner] = exception_failure(exc)
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
                    exception_failure(exc)
                    if fut.done()
                    else failure(DEADLINE, f"still running after {timeout_s:.0f} s")
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
    is the deployment's own default, set by the partner (``pharmafl partner serve``).

    - **No reuse**: every flow run's idempotency key holds this launcher's own random id, so
      a retried request never starts a second run, and a run id used before on the same
      server (a re-run of a plan) never gets the earlier run's flow runs back. Runs are
      tagged ``pharmafl-run:<scope>:<run id>`` (:func:`run_tag`), which
      :meth:`cancel_stale` uses on ``--resume`` (and, with ``clear_stale``, before a run's
      first start here).
    - **Liveness**: a partner whose pool has no live worker (:class:`WorkerLiveness`) counts
      as failed (``worker offline``) at once, in this round and every later one while it
      stays away; its unstarted run is cancelled at once, so a worker that comes back never
      starts a stale round, and it rejoins at the next round.
    - **Faults**: a partner whose deployment does not exist, or whose run fails, crashes or
      is cancelled, counts as failed (a dropout); an unreachable Prefect API is ridden out
      (:class:`PrefectApi`). A run that crashed **before it started** (its worker could not
      submit it, e.g. the server answered 503) ran none of the partner's code, so it is
      submitted again, at most :data:`RELAUNCHES` times a round, before it counts. Runs
      still not finished at the deadline are cancelled, and so is every run started here
      when the operator stops (Ctrl-C, SIGTERM).
    """

    def __init__(
        self,
        exchange_url: str,
        timeout_s: float,
        poll_s: float = 1.0,
        scope: str = "",
        clear_stale: bool = False,
    ) -> None:
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.scope = scope
        #: Cancel a run's unfinished flow runs (a dead operator's) before its first start
        #: here: for runs that are always resumed (a contribution study's coalitions).
        self.clear_stale = clear_stale
        self._cleared: set[str] = set()
        self.api = PrefectApi()
        self.liveness = WorkerLiveness(self.api, check_s=max(poll_s, 1.0))
        self._key = uuid.uuid4().hex[:12]  # this launcher's own idempotency keys
        self._runs: dict[str, Any] = {}  # partner -> flow run id
        self._round_ids: dict[str, str] = {}  # partner -> the round its run is for
        self._relaunched: dict[str, int] = {}  # partner -> runs submitted again this round
        self._run_counts: dict[str, int] = {}  # partner -> times its run entered Running
        self._relaunching = True  # off once a round's aggregation is over (see finish)
        self._pools: dict[str, str] = {}  # partner -> its work pool
        self._start_errors: dict[str, str] = {}
        self._failed: dict[str, str] = {}  # sticky for the round
        self._states: dict[str, Any] = {}
        self._polled_at = -math.inf
        self._final = False

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        self._final = final
        run_id = run_id_of(round_id)
        if self.clear_stale and run_id not in self._cleared:
            self._cleared.add(run_id)
            self.cancel_stale(run_tag(self.scope, run_id))
        self._round_ids[partner] = round_id
        self._relaunched[partner] = 0
        self._submit(partner)

    def _submit(self, partner: str) -> None:
        """Create the partner's flow run for its round (again, after a failed submission:
        a key of its own, so the server does not hand back the crashed run)."""
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        name, round_id, final = partner_deployment(partner), self._round_ids[partner], self._final
        attempt = self._relaunched[partner]
        key = f"{round_id}/{partner}/{self._key}" + (f"/{attempt}" if attempt else "")
        run_id = run_id_of(round_id)

        def submit(_: Any) -> Any:
            return run_deployment(
                name,
                parameters={
                    "exchange_url": self.exchange_url,
                    "round_id": round_id,
                    "final": final,
                    "timeout_s": self.timeout_s,
                },
                flow_run_name=f"{round_id}-{partner}",
                idempotency_key=key,
                tags=[run_tag(self.scope, run_id)],
                timeout=0,  # do not wait: rounds of all partners run at the same time
                as_subflow=False,
            )

        try:
            run = self.api.call(submit)
        except ObjectNotFound:
            self._start_errors[partner] = failure(
                NOT_DEPLOYED,
                f"no deployment {name} on the Prefect server "
                "(the partner runs `pharmafl partner serve PARTNER_DIR --pool POOL`)",
            )
        except PharmaFLError:
            raise  # the API stayed away: the run stops, resumable
        except Exception as exc:  # a refused request is this partner's dropout
            self._start_errors[partner] = failure(NOT_DEPLOYED, f"{name}: {type(exc).__name__}")
        else:
            self._runs[partner] = run.id
            if run.work_pool_name:
                self._pools[partner] = run.work_pool_name
            self._polled_at = -math.inf
            return
        log.warning("partner %s not started: %s", partner, self._start_errors[partner])

    def _poll(self, force: bool = False) -> dict[str, Any]:
        """Current states of the started runs (one API call, at most every ``poll_s``)."""
        if not self._runs:
            return {}
        if not force and time.monotonic() - self._polled_at < self.poll_s:
            return self._states
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        ids = list(self._runs.values())
        runs = self.api.try_call(
            lambda c: c.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
        )
        self._polled_at = time.monotonic()
        if runs is None:  # the API is away: the last states stand
            return self._states
        by_id = {r.id: r for r in runs}
        self._states = {p: _state(by_id.get(fid)) for p, fid in self._runs.items()}
        self._run_counts = {p: _run_count(by_id.get(fid)) for p, fid in self._runs.items()}
        return self._states

    def failed(self) -> dict[str, str]:
        states = self._poll()
        pools = {p: pool for p, pool in self._pools.items() if p in self._runs}
        offline = self.liveness.offline(pools)
        for p, st in list(states.items()):
            if p not in self._failed and st is not None and _ended_badly(st):
                if p not in offline and self._relaunch(p, st):
                    continue
                self._failed[p] = _reason(st)
        for p, why in offline.items():
            st = self._states.get(p)
            if p not in self._failed and not (st is not None and st.is_completed()):
                self._failed[p] = why
                if st is not None and _unstarted(st):  # never started late by a worker back
                    self._cancel(p, st, "the partner's worker is offline")
        return {**self._start_errors, **self._failed}

    def _relaunch(self, partner: str, state: Any) -> bool:
        """Submit the run of ``partner`` again if it crashed before it started (none of the
        partner's code ran: its worker could not submit it) and this round has relaunches
        left; a partner's run that did start is never repeated here."""
        never_started = state.is_crashed() and self._run_counts.get(partner) == 0
        if not (never_started and self._relaunching) or self._relaunched[partner] >= RELAUNCHES:
            return False
        self._relaunched[partner] += 1
        log.warning(
            "the run of partner %s crashed before it started (%s): submitting it again (%d of %d)",
            partner,
            state.message or state.name,
            self._relaunched[partner],
            RELAUNCHES,
        )
        del self._runs[partner]
        self._states.pop(partner, None)  # the new run is waited for until its state is read
        self._submit(partner)
        return partner in self._runs

    def _cancel(self, partner: str, state: Any, why: str) -> None:
        run_id, new = self._runs[partner], _cancellation(state, why)
        done: Any = self.api.try_call(lambda c: c.set_flow_run_state(run_id, new, force=True))
        if done is None:  # best effort: the run is already counted as failed
            log.warning("could not cancel the run of %s: the Prefect API is away", partner)

    def finish(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        # A round's secure aggregation is over: a run submitted again now could not take
        # part. A final evaluation still can.
        self._relaunching = self._final
        while True:
            self._poll(force=True)
            gone = self.failed()  # may submit a run again: its state is read next time
            states = {p: self._states.get(p) for p in self._runs}
            # After a round's secure aggregation, a run that has not even started cannot
            # contribute any more (its partner was dropped): no reason to wait for it. Nor
            # for a partner whose worker is offline.
            if all(
                p in gone or (st is not None and (st.is_final() or self._may_skip(st)))
                for p, st in states.items()
            ):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(self.poll_s)
        out = {**self._start_errors, **gone}
        for p, st in states.items():
            if p not in out and (st is None or not st.is_completed()):
                out[p] = _reason(st, deadline=True)
            resubmitted = st is None and self._relaunched.get(p, 0) > 0  # its state unread
            if resubmitted or (st is not None and not st.is_final()):
                self._cancel(p, st, "round over" if p in gone else "round deadline passed")
        self._clear()
        return out

    def _may_skip(self, state: Any) -> bool:
        return not self._final and _unstarted(state)

    def _clear(self) -> None:
        self._runs.clear()
        self._round_ids.clear()
        self._relaunched.clear()
        self._run_counts = {}
        self._relaunching = True
        self._start_errors.clear()
        self._failed.clear()
        self._states = {}
        self._final = False

    def close(self) -> None:
        """Cancel the runs still going (the operator stops: Ctrl-C, SIGTERM, an error)."""
        if not self._runs:
            return
        states = self._poll(force=True)
        for p in list(self._runs):
            st = states.get(p)
            if st is None or not st.is_final():
                self._cancel(p, st, "the operator stopped")
        self._clear()

    def claim(self, run_id: str, *, resume: bool) -> int:
        """Tag the operator's current flow run with the run's tag; on ``resume``, cancel
        the stale flow runs of the same run (a dead operator's, its partners'). Returns how
        many were cancelled."""
        tag = run_tag(self.scope, run_id)
        me = _current_flow_run()
        if me is not None:
            self.api.call(lambda c: c.update_flow_run(me.id, tags=sorted({*me.tags, tag})))
        return self.cancel_stale(tag, keep=me.id if me is not None else None) if resume else 0

    def cancel_stale(self, tag: str, keep: Any = None) -> int:
        """Cancel every unfinished flow run tagged ``tag`` except ``keep``."""
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
            FlowRunFilterTags,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.states import Cancelled

        live = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
        live.append(StateType.CANCELLING)
        flt = FlowRunFilter(
            tags=FlowRunFilterTags(all_=[tag]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live)),
        )
        stale = [r for r in self.api.call(lambda c: c.read_flow_runs(flow_run_filter=flt))]
        stale = [r for r in stale if r.id != keep]
        why = "stale: the run was resumed"
        for r in stale:
            # The dead operator's own run has no process left to stop: Cancelled at once.
            new = _cancellation(r.state, why) if r.deployment_id else Cancelled(message=why)
            self._set_state(r.id, new)
        if stale:  # partners' workers stop the processes within a second or two
            log.info("cancelled %d stale flow run(s) of %s", len(stale), tag)
        return len(stale)

    def _set_state(self, run_id: Any, state: Any) -> None:
        self.api.call(lambda c: c.set_flow_run_state(run_id, state, force=True))


def run_tag(scope: str, run_id: str) -> str:
    """The tag of a training run's flow runs (the operator's and its partners')."""
    return f"pharmafl-run:{scope}:{run_id}" if scope else f"pharmafl-run:{run_id}"


def _current_flow_run() -> Any:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return None if ctx is None else ctx.flow_run


def _cancellation(state: Any, why: str) -> Any:
    """The state that cancels a partner run in ``state``: Cancelled when no process was
    started for it yet, else Cancelling (its worker stops the process, then cancels it)."""
    from prefect.states import Cancelled, Cancelling

    launched = state is not None and (state.is_pending() or state.is_running() or state.is_paused())
    return Cancelling(message=why) if launched else Cancelled(message=why)


def _state(run: Any) -> Any:
    return None if run is None else run.state


def _run_count(run: Any) -> int:
    """How often the run entered Running (the server counts it; 0: it never started, and a
    run's start time is no sign: the server sets one when a run ends without it)."""
    return -1 if run is None else int(run.run_count)


def _unstarted(state: Any) -> bool:
    return bool(state.is_scheduled() or state.is_pending())


def _ended_badly(state: Any) -> bool:
    return bool(state.is_failed() or state.is_crashed() or state.is_cancelled())


def _reason(state: Any, deadline: bool = False) -> str:
    """A launcher's reason for a partner run in ``state`` (see pharmafl.server.launcher)."""
    if state is None:
        return failure(RUN_CRASHED, "flow run not found on the Prefect server")
    detail = f"flow run {state.name}: {state.message or ''}".strip().rstrip(":")
    if state.is_crashed():
        return failure(RUN_CRASHED, detail)
    if state.is_failed():
        policy = (state.message or "").startswith(PolicyViolationError.__name__)
        return failure(REFUSED_BY_POLICY if policy else RUN_FAILED, detail)
    if state.is_cancelled():
        return failure(CANCELLED, detail)
    return failure(DEADLINE, detail if deadline else f"{detail} (not finished)")


def make_launcher(
    kind: LauncherKind,
    consortium_dir: str | Path,
    exchange_url: str,
    timeout_s: float,
    scope: str = "",
    clear_stale: bool = False,
) -> EmbeddedLauncher | DeploymentLauncher:
    """The launcher of ``kind`` for a consortium folder (embedded: its ``partners/``);
    ``scope`` (the consortium's parameter hash, shortened) keeps run tags of consortia that
    share a Prefect server apart; ``clear_stale``: see :class:`DeploymentLauncher`."""
    if kind == "distributed":
        return DeploymentLauncher(exchange_url, timeout_s, scope=scope, clear_stale=clear_stale)
    partners = ConsortiumLayout(Path(consortium_dir)).partner_dirs()
    return EmbeddedLauncher(partners, exchange_url, timeout_s)


__all__ = ["DeploymentLauncher", "EmbeddedLauncher", "LauncherKind", "make_launcher", "run_tag"]
