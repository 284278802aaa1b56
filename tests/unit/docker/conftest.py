"""Fixtures for the docker/ files: parsed compose file, parsed Dockerfiles, tool lookup.

No Docker engine runs here: the images are never built. These tests read the files the way
the tools do (YAML with merge keys, Dockerfile instructions with line continuations) and run
the linters when their binaries are installed.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
PARTNERS = ("alpha", "bravo", "charlie")


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case), its arguments, its first line."""

    keyword: str
    args: str
    line: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Split a Dockerfile into instructions (comments dropped, continuations joined)."""
    out: list[Instruction] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        text = " ".join(part for part in buf if part)
        keyword, _, args = text.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buf = []
    assert not buf, f"{path}: dangling line continuation at line {start}"
    return out


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements/constraints file, names normalised."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        pins[normalise(match.group(1))] = match.group(2)
    return pins


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_tool(name: str) -> str | None:
    """A tool on PATH or installed beside this interpreter (the project's .venv/bin)."""
    found = shutil.which(name)
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else None


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """docker/compose.yaml as YAML (anchors and merge keys resolved, variables not)."""
    doc = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="session")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result = compose["services"]
    assert isinstance(result, dict)
    return result


@pytest.fixture(scope="session")
def partner_dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKER / "partner.Dockerfile")


@pytest.fixture(scope="session")
def operator_dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKER / "operator.Dockerfile")


@pytest.fixture(scope="session")
def pins() -> dict[str, dict[str, str]]:
    """Exact pins of constraints.txt and of the two pin files in docker/."""
    return {
        "constraints": read_pins(REPO / "constraints.txt"),
        "docker": read_pins(DOCKER / "constraints-docker.txt"),
        "operator": read_pins(DOCKER / "requirements-operator.txt"),
    }


@pytest.fixture(scope="session")
def tool() -> Any:
    """``tool(name)``: path of an installed binary, or None."""
    return find_tool
