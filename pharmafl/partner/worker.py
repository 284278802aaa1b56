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

Beside the worker runs the warm engine's host (:mod:`pharmafl.partner.engine_host`), whose
children are the flow runs; it is stopped the same way, after its flow runs.
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
#: How long the warm engine's host may take to listen before the worker starts without it
#: (it listens first, then imports the flow code while early flow runs wait for it).
HOST_START_S = 10.0
#: How long recording the stopped flow runs as crashed may take.
REPORT_S = 1.5
#: The environment variable Prefect gives each flow-run process its run's id in.
_RUN_ID_VAR = "PREFECT__FLOW_RUN_ID"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:  # pragma: no cover - runs in a child
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _start(
    cmd: list[str], cwd: Path, env: dict[str, str], stdin: int | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=stdin, start_new_session=True, preexec_fn=die_with_parent
    )


def run_worker(
    cmd: list[str],
    cwd: Path,
    env: dict[str, str],
    host_cmd: list[str] | None = None,
    host_socket: Path | None = None,
) -> int:
    """Run the worker ``cmd`` until it exits or this process gets SIGTERM / SIGINT; return
    its exit status (0 after a requested stop). With ``host_cmd``, the warm engine's host
    starts first, and the worker once the host listens on ``host_socket`` (or failed to),
    so that no flow run starts cold."""
    stop = threading.Event()
    with _stop_on_signals(stop):
        host = _start(host_cmd, cwd, env, subprocess.DEVNULL) if host_cmd else None
        _await_host(host, host_socket, stop)
        if stop.is_set():
            _stop_host(host)
            return 0
        proc = _start(cmd, cwd, env)
        try:
            while proc.poll() is None and not stop.wait(0.2):
                _check_host(host)
            if proc.poll() is None:
                t0 = time.monotonic()
                stop_worker(proc, host)
                log.info("worker stopped in %.1f s", time.monotonic() - t0)
                return 0
        finally:
            _stop_host(host)
    return proc.returncode


def _await_host(
    host: subprocess.Popen[bytes] | None, socket: Path | None, stop: threading.Event
) -> None:
    if host is None or socket is None:
        return
    deadline = time.monotonic() + HOST_START_S
    while not socket.exists() and host.poll() is None and time.monotonic() < deadline:
        if stop.wait(0.2):
            return
    _check_host(host)


def _check_host(host: subprocess.Popen[bytes] | None) -> None:
    if host is not None and host.returncode is None and host.poll() is not None:
        log.warning(
            "the warm engine's host exited (status %s): flow runs now start a fresh engine "
            "each (slower, otherwise the same)",
            host.returncode,
        )


def _stop_host(host: subprocess.Popen[bytes] | None) -> None:
    """Stop the host; its remaining children die with it (``PR_SET_PDEATHSIG``)."""
    if host is None or host.poll() is not None:
        return
    host.terminate()
    try:
        host.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        host.kill()
        host.wait(timeout=1.0)


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


def stop_worker(
    proc: subprocess.Popen[bytes], host: subprocess.Popen[bytes] | None = None
) -> list[str]:
    """Stop the worker ``proc``, every process it started and the flow runs of the warm
    engine's ``host`` (not the host itself); record those flow runs as crashed. Returns
    their ids."""
    tree = _tree(proc.pid)
    alive = host is not None and host.poll() is None  # a reaped host's pid may be reused
    forked = _tree(host.pid)[1:] if host is not None and alive else []  # via their clients
    runs = sorted({r for p in tree if (r := _flow_run_id(p))})
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    for p in tree[1:]:  # a client passes the SIGTERM on to its flow run: one, as before
        with contextlib.suppress(psutil.Error):
            p.terminate()
    reporter = threading.Thread(target=_report_crashed, args=(runs,), daemon=True)
    reporter.start()
    _, alive = psutil.wait_procs(tree + forked, timeout=STOP_GRACE_S)
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


__all__ = [
    "HOST_START_S",
    "REPORT_S",
    "STOP_GRACE_S",
    "die_with_parent",
    "run_worker",
    "stop_worker",
]
