"""The warm engine: a flow run forked from the host behaves like a fresh engine process.

The host is started as ``pharmafl partner serve`` starts it, with Prefect's engine swapped for
a small module that reports what it was given and then exits, raises or sleeps as its
environment says; the client is run as the worker runs it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pharmafl.partner.warm_engine import SOCKET_VAR

FAKE_ENGINE = """
import json, os, signal, sys, time


def main():
    if os.environ.get("FAKE_TRAP"):  # a flow run that handles SIGTERM itself
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "x": os.environ.get("FAKE_X"),
                      "pid": os.getpid(), "leak": hasattr(json, "leak")}), flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    json.leak = True  # must not reach the next run
    mode = os.environ.get("FAKE_MODE", "exit")
    if mode == "sleep":
        time.sleep(120)
    if mode == "raise":
        raise RuntimeError("boom")
    sys.exit(int(os.environ.get("FAKE_CODE", "0")))


if __name__ == "__main__":  # preloaded by the host as prefect.engine is: runs only as main
    main()
"""


def _start_host(tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    (tmp / "fake").mkdir()
    (tmp / "fake" / "__init__.py").write_text("")
    (tmp / "fake" / "engine.py").write_text(textwrap.dedent(FAKE_ENGINE))
    sock = tmp / "engine.sock"
    env = {**os.environ, "PYTHONPATH": str(tmp)}
    cmd = [sys.executable, "-m", "pharmafl.partner.warm_engine", "host", str(sock)]
    cmd += ["--engine", "fake.engine", "fake.engine"]  # preloaded too
    host = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while not sock.exists():
        assert host.poll() is None, "the host exited"
        assert time.monotonic() < deadline, "the host did not listen"
        time.sleep(0.2)
    return host, sock


def _stop(host: subprocess.Popen[bytes]) -> None:
    host.kill()
    host.wait(timeout=10)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    proc, sock = _start_host(tmp_path_factory.mktemp("host"))
    yield sock
    _stop(proc)


def _client(sock: Path, *args: str, cwd: Path, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, SOCKET_VAR: str(sock), **env}
    cmd = [sys.executable, "-m", "pharmafl.partner.warm_engine", *args]
    return subprocess.Popen(
        cmd, cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _first_line(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    report: dict[str, object] = json.loads(proc.stdout.readline())
    return report


def _closed(s: socket.socket) -> bool:
    try:
        return s.recv(100) == b""
    except ConnectionResetError:  # closed with our bytes unread
        return True


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_run_gets_the_clients_arguments_folder_environment_streams_and_status(
    host: Path, tmp_path: Path
) -> None:
    proc = _client(host, "a", "b", cwd=tmp_path, FAKE_X="hello", FAKE_CODE="3")
    out, err = proc.communicate(timeout=60)
    report = json.loads(out.splitlines()[0])
    assert report["argv"] == ["a", "b"] and report["x"] == "hello"
    assert report["cwd"] == str(tmp_path) and report["pid"] != proc.pid
    assert "to stderr" in err and proc.returncode == 3
    assert "Warning" not in err  # the preloaded engine runs as __main__ alone


def test_every_run_starts_from_the_hosts_state(host: Path, tmp_path: Path) -> None:
    for _ in range(2):
        proc = _client(host, cwd=tmp_path)
        out, _ = proc.communicate(timeout=60)
        assert json.loads(out.splitlines()[0])["leak"] is False and proc.returncode == 0


def test_an_exception_is_a_traceback_and_status_1(host: Path, tmp_path: Path) -> None:
    proc = _client(host, cwd=tmp_path, FAKE_MODE="raise")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "RuntimeError: boom" in err


def test_sigterm_to_the_client_reaches_the_run(host: Path, tmp_path: Path) -> None:
    proc = _client(host, cwd=tmp_path, FAKE_MODE="sleep", FAKE_TRAP="1")
    child = int(str(_first_line(proc)["pid"]))
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode == 7 and _gone(child)  # the run's own handler ran


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_killed_by_a_signal_is_reported_as_such(
    host: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    proc = _client(host, cwd=tmp_path, FAKE_MODE="sleep")
    child = int(str(_first_line(proc)["pid"]))
    os.kill(child, sig)  # SIGKILL: the out-of-memory killer, say
    proc.communicate(timeout=30)
    assert proc.returncode == -sig  # the worker sees what a fresh engine gives


def test_sigint_is_a_keyboard_interrupt_in_the_run(host: Path, tmp_path: Path) -> None:
    proc = _client(host, cwd=tmp_path, FAKE_MODE="sleep")
    _first_line(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in err  # as in Python


def test_bad_requests_are_refused_without_a_trace(host: Path, tmp_path: Path) -> None:
    """Wrong streams, a lying size, bad JSON, a silent client: each refused, its streams
    closed in the host (a leaked pipe would keep the worker waiting for its end), and the
    next run served."""
    hosts = [p for p in psutil.process_iter(["cmdline"]) if str(host) in (p.info["cmdline"] or [])]
    (server,) = [p for p in hosts if p.ppid() not in {h.pid for h in hosts}]
    _client(host, cwd=tmp_path).communicate(timeout=120)  # the host is past its imports
    before = server.num_fds()
    deep = b"[" * 100_000  # a RecursionError in the JSON parser, not a ValueError
    cases = (([0], b"{}", 2), ([0, 1, 2], b"{}", 1 << 30), ([0, 1, 2], b"{", 1))
    for fds, body, size in (*cases, ([0, 1, 2], deep, len(deep))):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(host))
            socket.send_fds(s, [struct.pack("!I", size)], fds)
            s.sendall(body)
            assert _closed(s)  # no pid
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(host))
        assert _closed(s)  # a client that sends nothing is dropped after REQUEST_S
    proc = _client(host, cwd=tmp_path)
    proc.communicate(timeout=60)
    assert proc.returncode == 0 and server.num_fds() == before


def test_a_killed_client_takes_its_run_with_it(host: Path, tmp_path: Path) -> None:
    proc = _client(host, cwd=tmp_path, FAKE_MODE="sleep")
    child = int(str(_first_line(proc)["pid"]))
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(child)


def test_runs_die_with_their_host(tmp_path: Path) -> None:
    own, sock = _start_host(tmp_path)
    proc = _client(sock, cwd=tmp_path, FAKE_MODE="sleep")
    child = int(str(_first_line(proc)["pid"]))
    _stop(own)
    proc.communicate(timeout=30)
    assert _gone(child) and proc.returncode == 1


def test_without_a_host_the_client_is_prefects_engine(tmp_path: Path) -> None:
    proc = _client(tmp_path / "no.sock", "not-a-run-id", cwd=tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Invalid flow run id" in err


def test_another_user_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pharmafl.partner import engine_host

    monkeypatch.setattr(engine_host.os, "getuid", lambda: os.geteuid() + 1)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        socket.send_fds(a, [struct.pack("!I", 2)], [0, 1, 2])
        a.sendall(b"{}")
        with pytest.raises(ValueError, match="belongs to user"):
            engine_host._read_request(b)


def test_a_client_that_comes_while_the_host_imports_waits_for_it(tmp_path: Path) -> None:
    own, sock = _start_host(tmp_path)  # returns once the host listens, before its imports
    try:
        proc = _client(sock, cwd=tmp_path, FAKE_CODE="0")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and json.loads(out.splitlines()[0])["leak"] is False
    finally:
        _stop(own)


def test_a_host_that_closes_before_forking_leaves_the_client_to_prefect(tmp_path: Path) -> None:
    """A host whose imports failed closes its waiting clients: nothing ran, so each starts
    Prefect's engine itself."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = tmp_path / "closing.sock"
    listener.bind(str(path))
    listener.listen(1)

    with listener:
        proc = _client(path, "not-a-run-id", cwd=tmp_path)
        conn, _ = listener.accept()
        conn.close()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Invalid flow run id" in err


def test_the_socket_folder_is_owner_only_and_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from pharmafl.partner.serve import socket_dir

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    made = socket_dir()
    try:
        assert len(str(made / "engine.sock")) < 100 and made.stat().st_mode & 0o077 == 0
        assert str(made).startswith("/tmp/") and not any(deep.iterdir())
    finally:
        made.rmdir()
