"""A warm engine: the partner's flow runs forked from a process that imported them once.

Prefect's process worker starts every flow run as a fresh ``python -m prefect.engine``,
which imports Prefect, torch (and ``torch._dynamo``, which every torch optimizer loads on
first use) and pharmafl again: 8–10 s of CPU a run on a 2-core machine, paid by every
partner round and final evaluation while the peers wait for it. So ``pharmafl partner
serve`` starts, beside its worker, a **host**: one process that imports all of that once,
then forks a child per flow run. The worker still starts each flow run with the
deployment's command, which is now this module's **client**
(``python -m pharmafl.partner.warm_engine``, standard library only, ≈ 0.1 s): it hands the
host its arguments, environment, working folder and standard streams, relays SIGTERM,
SIGINT and SIGHUP to the child, and exits with the child's status. The child runs Prefect's
own engine (``prefect.engine`` as ``__main__``) with the client's environment, so for the
worker, the operator and the Prefect server nothing changes.

Isolation: the host never runs flow code, so every child starts from the same state, as a
fresh process would; nothing of one run reaches the next. The host listens on a Unix socket
in an owner-only folder and serves only its own user (``SO_PEERCRED``). A child dies with
the host (``PR_SET_PDEATHSIG``) and is killed when its client goes away (the worker killed
it), so no flow run outlives what the worker can see.

Without a host (``PHARMAFL_ENGINE_SOCKET`` unset, another OS, a host that could not start or
died) the client becomes ``python -m prefect.engine`` itself (``exec``), as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import sys
from typing import Any

#: The environment variable that gives the client the host's socket.
SOCKET_VAR = "PHARMAFL_ENGINE_SOCKET"
#: Signals the client passes on to its child.
RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: The request's wire format, shared with the host: a 4-byte length, then that much JSON.
HEADER = struct.Struct("!I")
#: The largest request the host accepts.
MAX_REQUEST = 1 << 20


def engine_argv() -> list[str]:
    """Prefect's own engine command, what a client without a host becomes."""
    return [sys.executable, "-m", "prefect.engine"]


# --- client (standard library only: it runs for every flow run) ---------------------------


def run_client(args: list[str]) -> int:
    """Run one flow run through the host; without one, or if the host closes before it
    forked (it failed while starting), ``exec`` Prefect's engine: nothing has run yet."""
    sock = _connect(os.environ.get(SOCKET_VAR))
    child: list[int] = []  # known once the host forked
    # Before the hand-over, so that no signal slips between fork and relay; a signal this
    # process ignores (SIGHUP under nohup) stays ignored, as in a fresh engine.
    old = {sig: signal.getsignal(sig) for sig in RELAYED}
    for sig in (s for s in RELAYED if old[s] is not signal.SIG_IGN):
        signal.signal(sig, lambda s, _f: _relay(child, s))
    first = _hand_over(sock, args) if sock is not None else []
    if first[:1] != ["pid"]:
        _restore(old)
        os.execv(sys.executable, [*engine_argv(), *args])
    assert sock is not None
    child.append(int(first[1]))
    last = sock.makefile("r", encoding="ascii").readline().split()
    _restore(old)  # the child is gone (reaped): its pid may be another process's soon
    return int(last[1]) if last[:1] == ["exit"] else 1


def _restore(old: dict[signal.Signals, Any]) -> None:
    for sig, handler in old.items():
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)


def _hand_over(sock: socket.socket, args: list[str]) -> list[str]:
    """Send the request and our streams; return the host's first reply (``pid N``)."""
    request = json.dumps({"argv": args, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    try:
        socket.send_fds(sock, [HEADER.pack(len(request))], [0, 1, 2])
        sock.sendall(request)
        line = b""
        while not line.endswith(b"\n") and (byte := sock.recv(1)):
            line += byte
    except OSError:
        return []
    return line.decode("ascii", "replace").split()


def _connect(path: str | None) -> socket.socket | None:
    if not path or not sys.platform.startswith("linux"):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def _relay(child: list[int], sig: int) -> None:
    """Pass ``sig`` to the child; before there is one, do what the signal would have done
    to a fresh engine (the host kills a child whose client is gone)."""
    if not child:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(child[0], sig)


def exit_like(code: int) -> None:
    """Exit with ``code`` as the child did: a negative code is death by that signal."""
    if code < 0:
        with contextlib.suppress(OSError):  # SIGKILL's disposition cannot be set
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """``python -m pharmafl.partner.warm_engine [ARGS]`` (client) or ``host SOCKET
    [--engine MODULE] PRELOAD...`` (host; the engine is ``prefect.engine`` by default)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["host"]:
        from pharmafl.partner.engine_host import serve_forever

        engine = args[3] if args[2:3] == ["--engine"] else "prefect.engine"
        serve_forever(args[1], args[4:] if args[2:3] == ["--engine"] else args[2:], engine)
        return
    exit_like(run_client(args))


__all__ = [
    "HEADER",
    "MAX_REQUEST",
    "RELAYED",
    "SOCKET_VAR",
    "engine_argv",
    "exit_like",
    "main",
    "run_client",
]

if __name__ == "__main__":  # pragma: no cover - the worker's flow-run command
    main()
