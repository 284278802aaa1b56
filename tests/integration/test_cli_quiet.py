"""Real commands, as a user runs them: one line per error, no HTTP request logs unless ``-v``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PHARMAFL = str(Path(sys.executable).with_name("pharmafl"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    return subprocess.run(
        [PHARMAFL, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


@pytest.fixture(scope="module")
def broken_partner(small_consortium: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A partner folder whose export lacks the SMILES column its config maps (found inside
    the prepare flow, when it reads the export; the folder, key and parameters are fine, and
    ``run_prepare`` checks those before Prefect starts)."""
    src = sorted((small_consortium / "partners").iterdir())[0]
    partner = shutil.copytree(
        src, tmp_path_factory.mktemp("broken") / "p", ignore=shutil.ignore_patterns("prepared")
    )
    os.chmod(partner / "key.json", 0o600)
    export = partner / "raw" / "chembl_export.csv"
    head, rest = export.read_text().split("\n", 1)
    assert "canonical_smiles" in head
    export.write_text(head.replace("canonical_smiles", "smiles_renamed") + "\n" + rest)
    return partner


def _lines_with(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


def test_an_error_inside_a_prefect_flow_is_printed_once(broken_partner: Path) -> None:
    res = _run("prepare", str(broken_partner))
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert len(_lines_with(out, "missing column(s)")) == 1, out
    assert _lines_with(out, "missing column(s)")[0].startswith("error: ")
    assert len(_lines_with(out, "error: ")) == 1, out
    assert "HTTP Request" not in out and "Traceback" not in out, out
    assert "Finished in state" not in out and "Starting temporary server" not in out, out
    assert not (broken_partner / "prepared").exists()


def test_verbose_shows_the_requests_and_the_traceback(broken_partner: Path) -> None:
    res = _run("-v", "prepare", str(broken_partner))
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "HTTP Request" in out and "Traceback" in out, out
    assert len(_lines_with(res.stderr, "error: ")) == 1, out


def test_an_error_outside_prefect_is_printed_once(tmp_path: Path) -> None:
    res = _run("baseline", str(tmp_path))  # no prepared/ there
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert len(_lines_with(out, "error: ")) == 1 and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1, out
