"""Ctrl-C on long commands, as a terminal sends it (SIGINT to the command's whole process
group): the command exits within seconds with one line and status 130, leaves nothing
half-written and no process behind."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import TEST_CONSORTIUM_KEY

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PHARMAFL = str(Path(sys.executable).with_name("pharmafl"))
#: How long a command may take to stop after Ctrl-C (it takes ~1-3 s; slow, shared CI).
STOP_WITHIN_S = 10.0


class _Command:
    """A command in its own session (the test is its terminal), its output read as it comes."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        self.proc = subprocess.Popen(
            [PHARMAFL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "\n".join(self.lines)
            assert time.monotonic() < deadline, "\n".join(self.lines)
            time.sleep(0.1)

    def ctrl_c(self) -> tuple[int, float, list[str], list[psutil.Process]]:
        """SIGINT to the process group; (status, seconds to exit, lines after, children)."""
        children = psutil.Process(self.proc.pid).children(recursive=True)
        seen = len(self.lines)
        start = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            status = self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        elapsed = time.monotonic() - start
        self._reader.join(timeout=10)
        return status, elapsed, self.lines[seen:], children


def _alive(processes: list[psutil.Process], grace_s: float = 5.0) -> list[str]:
    """Processes still running (not zombies) after ``grace_s``."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = []
        for p in processes:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(" ".join(p.cmdline())[:120])
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _leftovers(folder: Path) -> list[str]:
    """Temporary folders and files (``atomic_directory`` and ``atomic_path`` hide them)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".*"))


@pytest.fixture(scope="module")
def big_partner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated partner of 3,000 compounds (the describe step runs for a while)."""
    from pharmafl.simulate import SimulationSpec, simulate_consortium

    key = tmp_path_factory.mktemp("key") / "key.json"
    key.write_text(TEST_CONSORTIUM_KEY)
    key.chmod(0o600)
    out = tmp_path_factory.mktemp("big") / "sim"
    spec = SimulationSpec(dataset="fsmol", partners=2, max_compounds=3000, seed=7)
    simulate_consortium(out, spec, workers=1, key_file=key)
    return out / "partners" / "alpha"


@pytest.mark.parametrize("previous", [False, True])
def test_ctrl_c_during_prepare(big_partner: Path, previous: bool) -> None:
    prepared = big_partner / "prepared"
    if previous:  # a previous preparation: it must stay exactly as it was
        prepared.mkdir()
        (prepared / "manifest.json").write_text('{"previous": true}\n')
    command = _Command("prepare", str(big_partner), "--workers", "2", "--chunk-size", "100")
    command.wait_for("describing")
    time.sleep(1.5)  # the worker processes are busy
    status, elapsed, after, children = command.ctrl_c()
    assert status == 130, after
    assert elapsed < STOP_WITHIN_S, after
    assert after == [f"interrupted: nothing written to {prepared}"], after
    assert not any("HTTP Request" in line for line in command.lines), command.lines
    assert _leftovers(big_partner) == []
    if previous:
        assert [p.name for p in prepared.iterdir()] == ["manifest.json"]
        assert (prepared / "manifest.json").read_text() == '{"previous": true}\n'
    else:
        assert not prepared.exists()
    assert len(children) >= 3  # Prefect's API server, the fork server, workers
    assert _alive(children) == []


def test_ctrl_c_during_baseline(tmp_path: Path) -> None:
    from pharmafl.model import write_synthetic_prepared

    partner = tmp_path / "p"
    write_synthetic_prepared(partner / "prepared", n_rows=2000, seed=1)
    command = _Command(  # a small trunk: the checkpoint of the default one takes 1 GB
        "baseline", str(partner), "--epochs", "500", "--patience", "0", "--hidden", "256",
        "--threads", "1",
    )  # fmt: skip
    command.wait_for("epoch 2:")  # epoch 1's checkpoint is written
    status, elapsed, after, _ = command.ctrl_c()
    assert status == 130, after
    assert elapsed < STOP_WITHIN_S, after
    local = partner / "models" / "local"
    assert len(after) == 1 and after[0].startswith(f"interrupted: nothing written to {local}")
    assert "--resume" in after[0]  # an epoch finished: its checkpoint is kept, whole
    assert not local.exists()
    assert _leftovers(partner) == []


def test_ctrl_c_during_federated_training(prepared_consortium: Path, tmp_path: Path) -> None:
    """The partner rounds run in threads, which Ctrl-C does not reach by itself: they are
    interrupted too, instead of waiting for the operator until their stage timeout."""
    consortium = shutil.copytree(prepared_consortium, tmp_path / "c")
    setup = subprocess.run(
        [PHARMAFL, "federation", "setup", str(consortium), "--rounds", "50", "--hidden", "256"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert setup.returncode == 0, setup.stderr
    command = _Command("train", str(consortium))
    command.wait_for("epoch 1:")  # partners are training in their threads
    time.sleep(1.0)
    status, elapsed, after, children = command.ctrl_c()
    assert status == 130, after
    assert elapsed < STOP_WITHIN_S, after
    assert after[-1] == (
        f"interrupted: completed rounds are kept: `pharmafl train {consortium} --resume` goes on"
    )
    assert not any("Traceback" in line or "interrupted" in line for line in after[:-1]), after
    assert _leftovers(consortium) == []
    assert _alive(children) == []
