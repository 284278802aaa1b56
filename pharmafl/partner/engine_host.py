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

import array
import contextlib
import ctypes
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
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pharmafl.partner.warm_engine import HEADER, MAX_REQUEST

log = logging.getLogger(__name__)

#: Modules every flow run needs, imported once by the host (``torch._dynamo``: loaded by the
#: first torch optimizer step, 4 s on a slow machine).
PRELOAD = ("prefect.engine", "prefect.flow_engine", "torch", "torch.optim", "torch._dynamo")
#: The most a client may take to send its request (the host serves one at a time).
REQUEST_S = 2.0
_TICK_S = 0.1
_PR_SET_PDEATHSIG = 1


def _libc_prctl() -> Any:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not glibc: children then outlive a killed host
        return lambda *_: 0


@dataclass
class _Host:
    listener: socket.socket
    engine: str
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    children: dict[int, socket.socket] = field(default_factory=dict)
    pid: int = field(default_factory=os.getpid)
    #: libc's prctl, looked up here: a child must not dlopen after the fork.
    prctl: Any = field(default_factory=_libc_prctl)


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
    """Serve one connection: check its user, read its request, fork. A failure refuses the
    request (its client then starts a fresh engine), never the host."""
    try:
        conn, _ = host.listener.accept()
    except OSError as exc:  # e.g. out of file descriptors: the client waits in the backlog
        log.warning("engine host: could not accept a client: %s", exc)
        time.sleep(_TICK_S)  # the listener stays readable: do not spin
        return
    fds: list[int] = []
    try:
        request, fds = _read_request(conn)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    except Exception as exc:  # whatever a request does, the host goes on
        log.warning("engine host: refused a request: %s: %s", type(exc).__name__, exc)
        _close(conn, fds)
        return
    if pid == 0:  # pragma: no cover - the child; covered by the end-to-end tests
        _child(host, conn, request, fds)
    _close(None, fds)
    host.children[pid] = conn
    host.selector.register(conn, selectors.EVENT_READ, pid)
    with contextlib.suppress(OSError):
        conn.sendall(f"pid {pid}\n".encode())


def _close(conn: socket.socket | None, fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    if conn is not None:
        conn.close()


def _read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request and the client's three streams, within :data:`REQUEST_S` in all, from
    this user only; the streams are closed on any refusal."""
    pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid != os.getuid():
        raise ValueError(f"process {pid} belongs to user {uid}")
    deadline = time.monotonic() + REQUEST_S
    conn.settimeout(REQUEST_S)
    head, fds = _recv_streams(conn)
    try:
        if len(head) != HEADER.size or len(fds) != 3:
            raise ValueError("a request without its header or its three streams")
        (size,) = HEADER.unpack(head)
        if size > MAX_REQUEST:
            raise ValueError(f"a request of {size} bytes")
        body = bytearray()
        while len(body) < size:
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = conn.recv(size - len(body))
            if not chunk:
                raise ValueError("a request cut short")
            body += chunk
        conn.settimeout(None)
        return json.loads(body), fds
    except Exception:  # bad JSON, even a RecursionError: the streams never stay open here
        _close(None, fds)
        raise


def _recv_streams(conn: socket.socket) -> tuple[bytes, list[int]]:
    """The header and the passed descriptors, close-on-exec from the start
    (``socket.recv_fds`` drops its flags before Python 3.14)."""
    size = socket.CMSG_LEN(3 * array.array("i").itemsize)
    head, ancdata, _, _ = conn.recvmsg(HEADER.size, size, socket.MSG_CMSG_CLOEXEC)
    fds = array.array("i")
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return head, list(fds)


def _client_gone(host: _Host, pid: int) -> None:
    """A client's connection became readable: it closed (its process died); kill its
    child's whole session (the flow run and anything it started), once."""
    with contextlib.suppress(KeyError, ValueError):
        host.selector.unregister(host.children[pid])
    for kill in (os.killpg, os.kill):  # its session once it has one, else the child alone
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(pid, signal.SIGKILL)


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
        with contextlib.suppress(KeyError, ValueError):
            host.selector.unregister(conn)
        with contextlib.suppress(OSError):
            conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
        conn.close()


def _child(host: _Host, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    """Become the flow run: never returns into the host's loop."""
    code = 1
    try:
        host.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # resolved before the fork
        if os.getppid() != host.pid:  # the host died before that: do not run orphaned
            os._exit(1)
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh Python has
        for s in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_DFL)
        for other in (host.listener, conn, *host.children.values()):
            other.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        code = _run_engine(host.engine, request)
    except KeyboardInterrupt:  # a fresh Python prints it, then dies by SIGINT
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:  # the child reports and exits, whatever happened
        traceback.print_exc()
    finally:
        _exit(code)


def _exit(code: int) -> None:
    """What the interpreter does at exit (threads joined, Prefect's queues drained, atexit
    handlers), then exit without returning into the host's loop."""
    import atexit

    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    if code < 0:  # death by that signal, as the interpreter does after a KeyboardInterrupt
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 1)


def _run_engine(engine: str, request: dict[str, Any]) -> int:
    """Run ``engine`` (``prefect.engine``) as ``__main__`` with the client's folder,
    environment and arguments; return its exit status."""
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
    return code


__all__ = ["PRELOAD", "REQUEST_S", "preload", "serve_forever"]
