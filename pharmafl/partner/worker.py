"""The partner's Prefect process worker as a child of ``pharmafl partner serve``, stopped
within seconds.

Prefect's own ``prefect worker start`` answers SIGTERM or Ctrl-C by no longer taking work
and *waiting for its flow runs to finish* (a partner round waits for the operator up to its
stage timeout), and its flow runs live in their own sessions, out of reach of a signal to
the worker's group. So ``serve`` keeps the worker as a child process and, on SIGTERM or
SIGINT:

1. collects the worker's process tree and the flow runs it is running;
2. asks them to stop (SIGINT to the worker, SIGTERM to each flow run) and waits up to
   :data:`STOP_GRACE_S`, then kills what is left;
3. records those flow runs as crashed on the Prefect server (best effort, bounded), so the
   operator counts the partner as dropped at once instead of waiting for it;
4. removes the worker's temporary working folder.

The worker dies with ``serve`` even when ``serve`` is killed outright (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import psutil

log = logging.getLogger(__name__)

#: How long the worker and its flow runs get to stop before they are killed.
STOP_GRACE_S = 1.5
#: How long recording the stopped flow runs as crashed may take.
REPORT_S = 1.5
#: The environment variable Prefect gives each flow-run process its run's id in.
_RUN_ID_VAR = "PREFECT__FLOW_RUN_ID"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def run_worker(cmd: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run the worker ``cmd`` until it exits or this process gets SIGTERM / SIGINT; return
    the exit status (0 after a requested stop)."""
    stop = threading.Event()
    with _stop_on_signals(stop):
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, start_new_session=True, preexec_fn=_die_with_parent
        )
        while proc.poll() is None and not stop.wait(0.2):
            pass
        if proc.poll() is None:
            t0 = time.monotonic()
            stop_worker(proc)
            log.info("worker stopped in %.1f s", time.monotonic() - t0)
            return 0
    return proc.returncode


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        del signum, frame
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def stop_worker(proc: subprocess.Popen[bytes]) -> list[str]:
    """Stop the worker ``proc`` and every process it started; record their flow runs as
    crashed. Returns the ids of those flow runs."""
    tree = _tree(proc.pid)
    runs = sorted({r for p in tree if (r := _flow_run_id(p))})
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    for p in tree[1:]:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    reporter = threading.Thread(target=_report_crashed, args=(runs,), daemon=True)
    reporter.start()
    _, alive = psutil.wait_procs(tree, timeout=STOP_GRACE_S)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=1.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)
    reporter.join(timeout=REPORT_S)
    return runs


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _flow_run_id(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get(_RUN_ID_VAR)
    except psutil.Error:
        return None


def _report_crashed(runs: list[str]) -> None:
    """Mark ``runs`` crashed unless already finished (best effort: the server may be away)."""
    if not runs:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    try:
        with get_client(sync_client=True) as client:
            for run_id in runs:
                run = client.read_flow_run(run_id)  # type: ignore[arg-type]
                if run.state is None or not run.state.is_final():
                    client.set_flow_run_state(
                        run_id,  # type: ignore[arg-type]
                        Crashed(message="the partner's worker was stopped"),
                        force=True,
                    )
    except Exception as exc:  # the operator then sees the worker go offline instead
        log.debug("could not record the stopped runs: %s", type(exc).__name__)


__all__ = ["REPORT_S", "STOP_GRACE_S", "run_worker", "stop_worker"]
