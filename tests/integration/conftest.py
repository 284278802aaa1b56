"""Fixtures for tests that start real services: a Prefect server and worker processes.

Every process is started in its own session (process group) with its output in a log
file; teardown stops it and everything it started (Prefect starts each flow run in a new
session, so descendants are collected with psutil, not only the group), even when the test
failed, and fails when anything is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

#: Telemetry off and no result persistence for every process the tests start.
QUIET_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


@dataclass
class Started:
    """One process a test started."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return f"--- {self.name} (pid {self.popen.pid}, exit {self.popen.poll()}) ---\n" + _tail(
            self.log
        )


@dataclass
class Processes:
    """Starts processes and stops them (and their descendants) at the end."""

    log_dir: Path
    started: list[Started] = field(default_factory=list)

    def start(
        self, name: str, cmd: list[str], *, env: dict[str, str], cwd: Path | None = None
    ) -> Started:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                cmd,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
        started = Started(name, popen, log)
        self.started.append(started)
        return started

    def tails(self) -> str:
        return "\n".join(s.tail() for s in self.started)

    def stop_all(self, grace_s: float = 15.0) -> list[psutil.Process]:
        """Stop every started process and its descendants; return any still alive."""
        tree: list[psutil.Process] = []
        for s in self.started:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(s.popen.pid)
                tree += [root, *root.children(recursive=True)]
        for s in reversed(self.started):  # workers before the server
            if s.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(s.popen.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=grace_s)
        for s in self.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(s.popen.pid, signal.SIGKILL)
        for p in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        _, alive = psutil.wait_procs(tree, timeout=5)
        for s in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                s.popen.wait(timeout=5)
        return [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


#: Every :class:`Processes` not yet stopped (a session's server may be restarted by a test
#: while a narrower set of processes is open).
_OPEN: list[Processes] = []


def _owned_by(others: list[Processes]) -> set[int]:
    """The pids started by ``others`` and their descendants."""
    pids: set[int] = set()
    for procs in others:
        for s in procs.started:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(s.popen.pid)
                pids |= {root.pid, *(c.pid for c in root.children(recursive=True))}
    return pids


@contextlib.contextmanager
def tracked_processes(log_dir: Path) -> Iterator[Processes]:
    """Processes stopped (with every descendant) on exit, pass or fail; fails if any remain."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = Processes(log_dir)
    _OPEN.append(procs)
    try:
        yield procs
    finally:
        _OPEN.remove(procs)
        left = procs.stop_all()
        elsewhere = _owned_by(_OPEN)
        children = []
        for p in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                ours = p.pid not in before and p.pid not in elsewhere
                if ours and p.status() != psutil.STATUS_ZOMBIE:
                    children.append(p)
        assert not left, f"processes left running: {left}"
        assert not children, f"child processes left running: {children}"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Processes started by one test; all of them are stopped at its end, pass or fail."""
    with tracked_processes(tmp_path / "logs") as procs:
        yield procs


@dataclass
class PrefectServer:
    """A real ``prefect server`` (SQLite in its own PREFECT_HOME) on 127.0.0.1."""

    url: str
    home: Path
    process: Started
    processes: Processes | None = None

    def restart(self, down_s: float = 0.0) -> float:
        """Stop the server, wait ``down_s``, start it again on the same port and database;
        return how long the API was away (wait until it is healthy again)."""
        assert self.processes is not None
        t0 = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.popen.pid, signal.SIGTERM)
        try:
            self.process.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.popen.pid, signal.SIGKILL)
            self.process.popen.wait(timeout=5)
        time.sleep(down_s)
        port = int(self.url.rsplit(":", 1)[1].split("/", 1)[0])
        self.process = _server_process(self.processes, self.home, port)
        self.wait_ready()
        return time.monotonic() - t0

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a client process of this server."""
        env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(self.home)}
        env["PREFECT_API_URL"] = self.url
        env.update(extra)
        return env

    def drain_client(self) -> None:
        """Send what this process queued for the server (call before stopping it)."""
        drain_prefect_client()

    def wait_ready(self, timeout_s: float = 180.0) -> str:
        """Wait for ``/api/health``; return the API URL."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                pytest.fail(f"prefect server exited:\n{self.process.tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"prefect server not healthy after {timeout_s:.0f} s:\n{self.process.tail()}")

    def serve_partner(self, processes: Processes, pdir: Path, machines: Path) -> Started:
        """Start ``pharmafl partner serve`` for one partner in its own working folder
        (``machines/machine-<name>``, its own PREFECT_HOME and TMPDIR) with its own pool
        ``pool-<name>``; do not wait for it."""
        url = self.wait_ready()
        cwd = machines / f"machine-{pdir.name}"  # each partner's own machine, as it were
        (cwd / "tmp").mkdir(parents=True, exist_ok=True)
        env = self.env(
            PREFECT_HOME=str(cwd / ".prefect"),
            TMPDIR=str(cwd / "tmp"),
        )
        cmd = [sys.executable, "-c", "from pharmafl.cli.main import main; main()"]
        cmd += ["partner", "serve", str(pdir), "--pool", f"pool-{pdir.name}"]
        cmd += ["--api-url", url]
        n = sum(s.name.startswith(f"partner-{pdir.name}") for s in processes.started)
        name = f"partner-{pdir.name}" + (f"-{n}" if n else "")
        return processes.start(name, cmd, env=env, cwd=cwd)

    def serve_partners(
        self, processes: Processes, partner_dirs: list[Path], machines: Path
    ) -> dict[str, Any]:
        """Run ``pharmafl partner serve`` for each partner (:meth:`serve_partner`); wait
        until every deployment is registered and every pool's worker has sent a heartbeat
        (on a loaded machine a worker can take longer to start than the operator's grace
        for a pool without any worker), and return the deployments by partner name."""
        for pdir in partner_dirs:
            self.serve_partner(processes, pdir, machines)
        names = [p.name for p in partner_dirs]
        deadline = time.monotonic() + 180
        while len(deps := self.read_partner_deployments(names)) < len(names) or (
            not self.workers_beating([f"pool-{n}" for n in names])
        ):
            dead = [s for s in processes.started if s.popen.poll() is not None]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"partner workers not ready:\n{processes.tails()}")
            time.sleep(1)
        return deps

    def workers_beating(self, pools: list[str]) -> bool:
        """Whether every pool has a worker that has sent a heartbeat."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with (
            temporary_settings(updates={PREFECT_API_URL: self.url}),
            get_client(sync_client=True) as c,
        ):
            for pool in pools:
                try:
                    workers = c.read_workers_for_work_pool(pool)
                except Exception:
                    return False
                if not any(w.last_heartbeat_time is not None for w in workers):
                    return False
        return True

    def deployment_runs(self, deployments: dict[str, Any]) -> list[Any]:
        """Every flow run of the given deployments (as from :meth:`serve_partners`)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
        from prefect.settings import PREFECT_API_URL, temporary_settings

        ids = [d.id for d in deployments.values()]
        with (
            temporary_settings(updates={PREFECT_API_URL: self.url}),
            get_client(sync_client=True) as c,
        ):
            return list(
                c.read_flow_runs(
                    deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=ids))
                )
            )

    @staticmethod
    def ran(runs: list[Any]) -> list[Any]:
        """The runs that ran, checking the others: a run the server could not hand to its
        worker (a 503 on submission, seen on a loaded machine) crashed before it started
        (``run_count`` 0) and the operator's launcher submitted it again under its name."""
        from flows.launchers import RELAUNCHES

        ran = [r for r in runs if r.run_count > 0]
        last = {r.name: r.created for r in ran}
        again = [r for r in runs if r.run_count == 0]
        for r in again:
            print(f"submitted again: {r.name} ({r.state})")
            assert r.state is not None and r.state.is_crashed(), (r.name, r.state)
            assert r.name in last and last[r.name] > r.created, f"{r.name} not again"
            assert sum(a.name == r.name for a in again) <= RELAUNCHES, r.name
        return ran

    def read_partner_deployments(self, names: list[str]) -> dict[str, Any]:
        """The ``pharmafl-partner-round/<name>`` deployments registered so far."""
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound
        from prefect.settings import PREFECT_API_URL, temporary_settings

        found = {}
        with (
            temporary_settings(updates={PREFECT_API_URL: self.url}),
            get_client(sync_client=True) as c,
        ):
            for name in names:
                with contextlib.suppress(ObjectNotFound):
                    found[name] = c.read_deployment_by_name(f"pharmafl-partner-round/{name}")
        return found


def start_prefect_server(processes: Processes, home: Path) -> PrefectServer:
    """Start a Prefect server with its own PREFECT_HOME (SQLite); do not wait for it."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    started = _server_process(processes, home, port)
    return PrefectServer(f"http://127.0.0.1:{port}/api", home, started, processes)


def _server_process(processes: Processes, home: Path, port: int) -> Started:
    env = {**os.environ, **QUIET_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--no-ui", "--no-scheduler", "--no-late-runs", "--analytics-off"]
    return processes.start("prefect-server", cmd, env=env, cwd=home)


def drain_prefect_client(timeout_s: float = 15.0) -> None:
    """Send the logs and events this process queued for a Prefect API, while it is still up.

    Otherwise they are sent at interpreter exit, to a server that is gone, with retries that
    hold the exit up for about a minute.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout_s)
    EventsWorker.drain_all(timeout=timeout_s)


@pytest.fixture
def prefect_server(processes: Processes, tmp_path: Path) -> Iterator[PrefectServer]:
    """A server for one test, started but not waited for (call ``wait_ready``)."""
    server = start_prefect_server(processes, tmp_path / "prefect-server-home")
    try:
        yield server
    finally:
        drain_prefect_client()


@pytest.fixture(scope="session")
def session_prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A ready server shared by every test that does not restart or stop it (starting one
    takes ~10 s on 2 cores)."""
    base = tmp_path_factory.mktemp("prefect")
    with tracked_processes(base / "logs") as procs:
        server = start_prefect_server(procs, base / "home")
        server.wait_ready()
        try:
            yield server
        finally:
            drain_prefect_client()


@pytest.fixture
def module_prefect_server(session_prefect_server: PrefectServer) -> PrefectServer:
    """The shared server (the name the registration tests use)."""
    return session_prefect_server


@dataclass
class Fleet:
    """Three simulated partners each serving rounds with ``pharmafl partner serve`` on a
    real Prefect server, and their consortium folder (identities, roster, a 2-round plan).

    Tests on the fleet run their own runs (:meth:`new_run`) and leave every partner
    serving (:meth:`ensure_serving`), so the next test reuses the processes.
    """

    server: PrefectServer
    processes: Processes
    cdir: Path
    machines: Path
    deployments: dict[str, Any]
    serving: dict[str, Started]

    @property
    def partner_dirs(self) -> dict[str, Path]:
        return {p.name: p for p in sorted((self.cdir / "partners").iterdir()) if p.is_dir()}

    def kill(self, name: str) -> None:
        """SIGKILL one partner's serve, its worker and its flow runs (the machine died)."""
        root = psutil.Process(self.serving.pop(name).popen.pid)
        tree = [root, *root.children(recursive=True)]
        for p in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        psutil.wait_procs(tree, timeout=10)

    def serve(self, name: str) -> Started:
        """(Re)start one partner's serve; do not wait for its worker."""
        started = self.server.serve_partner(self.processes, self.partner_dirs[name], self.machines)
        self.serving[name] = started
        return started

    def ensure_serving(self) -> None:
        for name in self.partner_dirs:
            if name not in self.serving or self.serving[name].popen.poll() is not None:
                self.serve(name)

    def new_run(self, run_id: str, rounds: int, **plan: Any) -> None:
        """Make ``run_id`` the operator's run: its plan (its own seed) and initial trunk."""
        import json

        from pharmafl.contract import FederationPlan, trunk_to_bytes
        from pharmafl.model import initial_trunk

        path = self.cdir / "operator" / "plan.json"
        doc = json.loads(path.read_text())
        seed = doc["seed"] + sum(map(ord, run_id))
        new = FederationPlan.model_validate(
            doc | {"run_id": run_id, "seed": seed, "rounds": rounds} | plan
        )
        run_dir = self.cdir / "operator" / "runs" / run_id
        run_dir.mkdir(parents=True)
        trunk = initial_trunk(new.trunk, new.seed)
        (run_dir / "initial_trunk.npz").write_bytes(trunk_to_bytes(trunk))
        for old in ("state", "final_trunk.npz"):
            target = self.cdir / "operator" / old
            if target.is_dir():
                import shutil

                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        path.write_text(new.model_dump_json(indent=2))


@pytest.fixture(scope="session")
def fleet(
    session_prefect_server: PrefectServer,
    prepared_consortium: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """Three partners serving on the shared server (see :class:`Fleet`)."""
    import shutil

    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.simulate.federation import setup_federation

    base = tmp_path_factory.mktemp("fleet")
    cdir = base / "consortium"
    shutil.copytree(prepared_consortium, cdir)
    setup_federation(
        cdir,
        FederationPlan(
            rounds=2,
            trunk={"kind": "sparse", "hidden_sizes": [64], "dropouts": [0.1]},
            local=LocalTrainingSpec(epochs=1, batch_size=128),
            stage_timeout_s=120,
        ),
    )
    dirs = sorted(p for p in (cdir / "partners").iterdir() if p.is_dir())
    with tracked_processes(base / "logs") as procs:
        deps = session_prefect_server.serve_partners(procs, dirs, base)
        serving = {s.name.removeprefix("partner-"): s for s in procs.started}
        try:
            yield Fleet(session_prefect_server, procs, cdir, base, deps, serving)
        finally:
            drain_prefect_client()
