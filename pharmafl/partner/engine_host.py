"""The warm engine's host: imports a partner's flow code once, forks one child per flow run.

See :mod:`pharmafl.partner.warm_engine` for why and for the client. The host is one thread
(checked before it serves: forking a process with other threads can deadlock the child), a
``selectors`` loop over its listening socket and one connection per running child:

- a new connection from the same user brings a request (arguments, environment, working
  folder) and the client's standard streams; the host forks, replies ``pid N`` and keeps the
  connection;
- a child that exits gets ``exit CODE`` sent to its client (negative: killed by that signal);
- a connection that closes first (its client was killed) gets its child killed.

The child leaves the host's session, takes the client's streams, folder and environment,
and runs ``prefect.engine`` as ``__main__``, exactly what ``python -m prefect.engine`` runs.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import runpy
import selectors
import signal
import socket
import struct
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pharmafl.partner.worker import die_with_parent

log = logging.getLogger(__name__)

#: Modules every flow run needs, imported once by the host (``torch._dynamo``: loaded by the
#: first torch optimizer step, 4 s on a slow machine).
PRELOAD = ("prefect.engine", "prefect.flow_engine", "torch", "torch.optim", "torch._dynamo")
_HEADER = struct.Struct("!I")
_MAX_REQUEST = 1 << 20
_TICK_S = 0.1


@dataclass
class _Host:
    listener: socket.socket
    engine: str
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    children: dict[int, socket.socket] = field(default_factory=dict)


def preload(modules: list[str]) -> None:
    """Import what the flow runs will need; refuse to serve with a second Python thread
    (a lock it held at the fork would stay held in the child). The native threads that
    torch and pyarrow's jemalloc start on import are fork-aware (``pthread_atfork``), as
    every ``multiprocessing`` fork after ``import torch`` relies on."""
    for name in (*PRELOAD, *modules):
        importlib.import_module(name)
    if threading.active_count() != 1:
        names = [t.name for t in threading.enumerate()]
        raise RuntimeError(f"the engine host runs Python threads after its imports: {names}")


def serve_forever(path: str, modules: list[str], engine: str = "prefect.engine") -> None:
    """Listen on ``path`` (owner-only), preload ``modules``, then fork a child per request,
    which runs the module ``engine`` as ``__main__``, until killed. Clients that come
    during the preload wait in the backlog; if the preload fails they are closed unserved
    and start a fresh engine themselves."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(64)
    preload(modules)
    host = _Host(listener, engine)
    host.selector.register(listener, selectors.EVENT_READ)
    sys.stdout.flush()
    while True:
        for key, _ in host.selector.select(_TICK_S):
            if key.fileobj is listener:
                _accept(host)
            else:
                _client_gone(host, key.data)
        _reap(host)


def _accept(host: _Host) -> None:
    conn, _ = host.listener.accept()
    try:
        request, fds = _read_request(conn)
    except (OSError, ValueError) as exc:
        log.warning("engine host: refused a request: %s", exc)
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; covered by the end-to-end tests
        _child(host, conn, request, fds)
    for fd in fds:
        os.close(fd)
    host.children[pid] = conn
    host.selector.register(conn, selectors.EVENT_READ, pid)
    with contextlib.suppress(OSError):
        conn.sendall(f"pid {pid}\n".encode())


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    conn.settimeout(10.0)
    head, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
    if uid != os.getuid():
        for fd in fds:
            os.close(fd)
        raise ValueError(f"process {pid} belongs to user {uid}")
    if len(head) != _HEADER.size or len(fds) != 3:
        raise ValueError("a request without its header or its three streams")
    (size,) = _HEADER.unpack(head)
    if size > _MAX_REQUEST:
        raise ValueError(f"a request of {size} bytes")
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("a request cut short")
        body += chunk
    conn.settimeout(None)
    return json.loads(body), fds


def _client_gone(host: _Host, pid: int) -> None:
    """A client's connection became readable: it closed (its process died); kill its child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _reap(host: _Host) -> None:
    while host.children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = host.children.pop(pid, None)
        if conn is None:
            continue
        host.selector.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        conn.close()


def _child(host: _Host, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Become the flow run: never returns into the host's loop."""
    code = 1
    try:
        die_with_parent()
        os.setsid()
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        for other in (host.listener, conn, *host.children.values()):
            other.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        code = _run_engine(host.engine, request)
    except BaseException:  # the child reports and exits, whatever happened
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _run_engine(engine: str, request: dict[str, Any]) -> int:
    """Run ``engine`` (``prefect.engine``) as ``__main__`` with the client's folder,
    environment and arguments; return its exit status."""
    import atexit

    from prefect.context import refresh_global_settings_context

    os.chdir(Path(request["cwd"]))
    os.environ.clear()
    os.environ.update(request["env"])
    refresh_global_settings_context()
    sys.argv = [sys.argv[0], *request["argv"]]
    sys.modules.pop(engine, None)  # run as __main__ only, as ``python -m`` would (no warning)
    code: int = 0
    try:
        runpy.run_module(engine, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    atexit._run_exitfuncs()  # what the interpreter would run at exit (Prefect's log flush)
    return code


__all__ = ["PRELOAD", "preload", "serve_forever"]
