"""docker/entrypoint.sh, run for real with /bin/sh on temporary folders.

It copies secrets to owner-only files and lays out the writable work folder over the
read-only input; pharmafl's own key loader and atomic writer then work on the result.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from pharmafl.common.io import atomic_directory
from pharmafl.common.secret import load_consortium_key

ENTRYPOINT = Path(__file__).resolve().parents[3] / "docker" / "entrypoint.sh"


def _run(
    tmp: Path, *command: str, input_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PHARMAFL_SECRETS_DIR": str(tmp / "secrets"),
        "PHARMAFL_KEYS_DIR": str(tmp / "run" / "keys"),
        "PHARMAFL_WORK_DIR": str(tmp / "work"),
        "PHARMAFL_INPUT_DIR": str(input_dir if input_dir is not None else tmp / "input"),
    }
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=30,
    )


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """Secrets as Compose mounts them, and a partner folder as simulate writes it."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "key.json").write_text(json.dumps({"key": "s3cr3t-consortium-key"}))
    (secrets / "key.json").chmod(0o644)  # the host file's mode leaks through a bind mount
    (secrets / "alpha.key.json").write_text('{"kind": "signing"}')
    (secrets / "alpha.key.json").chmod(0o600)
    data = tmp_path / "input"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "compounds.csv").write_text("id,smiles\n1,CCO\n")
    (data / "partner.toml").write_text('name = "alpha"\n')
    (data / "consortium.json").write_text("{}\n")
    (data / "key.json").write_text(json.dumps({"key": "stale-key-in-the-data-folder"}))
    (data / "prepared").mkdir()  # prepared on the host: not used inside the container
    (data / "models").mkdir()
    return tmp_path


def test_secrets_become_owner_only_copies(layout: Path) -> None:
    done = _run(layout, "true")
    assert done.returncode == 0, done.stderr
    keys = layout / "run" / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    for name in ("key.json", "alpha.key.json"):
        copy = keys / name
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert copy.read_bytes() == (layout / "secrets" / name).read_bytes()
    assert "secret key.json has mode 644" in done.stderr
    assert "alpha.key.json" not in done.stderr
    assert "s3cr3t" not in done.stderr + done.stdout, "never print a key"
    assert sorted(p.name for p in keys.iterdir()) == ["alpha.key.json", "key.json"]


def test_work_folder_links_the_input_but_not_outputs(layout: Path) -> None:
    assert _run(layout, "true").returncode == 0
    work = layout / "work"
    names = sorted(p.name for p in work.iterdir())
    assert names == ["consortium.json", "key.json", "partner.toml", "raw"]
    for name in ("consortium.json", "partner.toml", "raw"):
        assert (work / name).is_symlink()
        assert os.readlink(work / name) == str(layout / "input" / name)
    # The consortium key secret replaces the data folder's key.json.
    assert os.readlink(work / "key.json") == str(layout / "run" / "keys" / "key.json")
    assert load_consortium_key(work / "key.json").reveal() == b"s3cr3t-consortium-key"
    # pharmafl writes prepared/ atomically in the work folder; the input stays untouched.
    with atomic_directory(work / "prepared") as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert (work / "prepared" / "manifest.json").is_file()
    assert not (layout / "input" / "prepared" / "manifest.json").exists()
    assert (work / "raw" / "compounds.csv").read_text().startswith("id,smiles")


def test_restart_refreshes_links_and_keeps_outputs(layout: Path) -> None:
    assert _run(layout, "true").returncode == 0
    (layout / "work" / "models").mkdir()
    (layout / "input" / "consortium.json").unlink()
    (layout / "input" / "roster.json").write_text("{}")
    assert _run(layout, "true").returncode == 0
    names = sorted(p.name for p in (layout / "work").iterdir())
    assert names == ["key.json", "models", "partner.toml", "raw", "roster.json"]


def test_a_real_file_hiding_an_input_entry_stops_the_container(layout: Path) -> None:
    (layout / "work").mkdir()
    (layout / "work" / "partner.toml").write_text("shadow")
    done = _run(layout, "true")
    assert done.returncode == 2
    assert "work/partner.toml exists in the work volume" in done.stderr


def test_runs_the_command_with_its_exit_status(tmp_path: Path) -> None:
    done = _run(tmp_path, "sh", "-c", 'echo "ran $0"; exit 7', "worker")
    assert done.returncode == 7
    assert done.stdout.strip() == "ran worker"
    assert not (tmp_path / "work").exists(), "no input folder: nothing to lay out"


def test_unreadable_secret_is_refused(tmp_path: Path) -> None:
    """A secret the container user cannot read stops the start with the fix to apply."""
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads everything: run the script as nobody instead
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: cannot drop to a user to test this")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    base = Path(tempfile.mkdtemp(prefix="pharmafl-entrypoint-"))
    try:
        base.chmod(0o755)  # traversable by nobody; tmp_path's parents are root-only
        (base / "secrets").mkdir(mode=0o755)
        key = base / "secrets" / "alpha.key.json"
        key.write_text('{"kind": "signing"}')
        key.chmod(0o000 if not prefix else 0o600)  # owned by root: unreadable to nobody
        (base / "keys").mkdir(mode=0o700)
        if prefix:
            os.chown(base / "keys", 65534, 65534)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PHARMAFL_SECRETS_DIR": str(base / "secrets"),
            "PHARMAFL_KEYS_DIR": str(base / "keys"),
        }
        done = subprocess.run(
            [*prefix, "sh", str(ENTRYPOINT), "true"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=30,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 2, done.stderr
    assert "secret alpha.key.json is not readable by uid" in done.stderr
    assert "chown it" in done.stderr
