"""Shared fixtures for simulation tests: small public-data-shaped files."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "ingest"

SMILES = [
    "CCO", "CCN", "CCC", "c1ccccc1", "c1ccncc1", "CC(=O)O", "CCOC(=O)C", "CN1CCCC1",
    "OCC(O)CO", "c1ccc2ccccc2c1", "CC(C)O", "NCCN", "CCS", "ClCCl", "C1CCCCC1", "COC",
]  # fmt: skip


@pytest.fixture
def fsmol_sample() -> Path:
    return FIXTURES / "fsmol_sample.csv"


@pytest.fixture
def tox_like(tmp_path: Path) -> Path:
    lines = ["smiles,NR-AR,SR-p53,SR-HSE"]
    for i, s in enumerate(SMILES):
        cells = [str(i % 2), "" if i % 3 == 0 else str((i // 2) % 2), str(int(i > 7))]
        lines.append(",".join([s, *cells]))
    path = tmp_path / "tox_like.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def adme_like(tmp_path: Path) -> Path:
    lines = ["Internal ID,Vendor ID,SMILES,CollectionName,LOG SOL (ug/mL),LOG HLM_CLint"]
    for i, s in enumerate(SMILES):
        sol = "" if i % 4 == 0 else f"{-1.5 + 0.21 * i:.3f}"
        lines.append(f"Mol{i},{1000 + i},{s},vendor,{sol},{0.5 + 0.07 * i:.3f}")
    path = tmp_path / "adme_like.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
