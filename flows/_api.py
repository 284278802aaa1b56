"""Prefect's temporary local API server, kept out of the terminal's Ctrl-C.

Without ``PREFECT_API_URL``, Prefect starts a temporary API server (a uvicorn subprocess) for
the flows of one command. A terminal sends Ctrl-C to every process of the command, so that
server died at once while the flow engine, unwinding the interrupt, still had the crashed run
to record and its logs to flush: it retried against the dead server for over a minute. The
server started here never receives that SIGINT (it starts with SIGINT blocked); pharmafl
handles the interrupt, Prefect records the run, and the server is stopped at exit as always.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

from prefect.settings import PREFECT_API_URL


def _shielded_server() -> Any:
    """Prefect's temporary server class, started with SIGINT blocked (children inherit the
    mask). Imported here: Prefect's server modules take 1.5 s to import, and a process that
    talks to a configured API (a partner worker's flow run) never needs them."""
    from prefect.server.api.server import SubprocessASGIServer

    class _ShieldedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                return super()._run_uvicorn_command()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)

    return _ShieldedServer


def shield_local_api() -> None:
    """Make the temporary server Prefect starts for this process (when no API is configured)
    one that ignores the terminal's Ctrl-C. Call before the first flow run; idempotent.

    Prefect keeps one temporary server per port (``None``: any free port) and reuses the
    instance registered for it; registering ours is all it takes.
    """
    if PREFECT_API_URL.value():
        return
    server = _shielded_server()
    if None not in server._instances:
        server()


__all__ = ["shield_local_api"]
