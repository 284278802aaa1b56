"""The prepare flow under a real (temporary) Prefect API, with both engines."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

MATRICES = ("cls_T11_x.npz", "cls_T10_y.npz", "reg_T10_y.npz", "cls_T11_fold_vector.npy")


def _copy(src: Path, dst: Path) -> Path:
    # Without the source's per-molecule cache, so that each engine describes every structure.
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("prepared", "cache"))
    os.chmod(dst / "key.json", 0o600)
    return dst


@pytest.mark.parametrize("engine", ["processes", "dask"])
def test_flow_gives_the_library_result(
    prefect_harness: None, prepared_consortium: Path, tmp_path: Path, engine: str
) -> None:
    from flows.prepare import run_prepare

    src = sorted((prepared_consortium / "partners").iterdir())[0]
    partner = _copy(src, tmp_path / "p")
    cache = engine == "dask"  # --no-cache on one engine: nothing read or written
    manifest = run_prepare(partner, workers=2, chunk_size=100, engine=engine, cache=cache)  # type: ignore[arg-type]
    assert manifest["partner_name"] == src.name
    assert (partner / "cache" / "prepare" / "describe.npz").is_file() == cache
    for name in MATRICES:
        assert (partner / "prepared" / name).read_bytes() == (src / "prepared" / name).read_bytes()


def test_cli_reports_bad_key_without_traceback(small_consortium: Path, tmp_path: Path) -> None:
    partner = _copy(sorted((small_consortium / "partners").iterdir())[0], tmp_path / "p")
    os.chmod(partner / "key.json", 0o644)
    exe = Path(sys.executable).with_name("pharmafl")
    res = subprocess.run(
        [str(exe), "prepare", str(partner), "--quiet"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 2
    assert "chmod 600" in res.stderr and "key.json" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    # found before Prefect starts (run_prepare checks the folder, key and parameters first):
    # the error is all the command prints, no flow-run log line before it
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and not res.stdout
    assert not (partner / "prepared").exists()
