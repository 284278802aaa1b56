"""The shipped public-data extract (data/extract/) and the data folder's fallback order.

A fresh clone has no ``../shared/data``: the demo and the tests then read the extract, so it
must be exactly what ``scripts/build_data_extract.py`` builds, and it must reproduce the
consortia the suite simulates.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pharmafl.common import settings
from pharmafl.common.errors import DataNotFoundError
from pharmafl.common.settings import EXTRACT_DATA_DIR, SHARED_DATA_DIR, data_dir

REPO = Path(__file__).resolve().parents[3]


def _script() -> ModuleType:
    path = REPO / "scripts" / "build_data_extract.py"
    spec = importlib.util.spec_from_file_location("build_data_extract", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_committed_extract_is_what_the_script_builds(tmp_path: Path) -> None:
    """Rebuilt from ../shared/data where it exists, else from the extract itself (the extract
    is a fixed point: it holds every assay and compound its consortia pick); either way the
    files are byte-identical to the committed ones, and the script re-splits every consortium
    of its list and compares it with the split of its source."""
    source = SHARED_DATA_DIR if SHARED_DATA_DIR.is_dir() else EXTRACT_DATA_DIR
    out = tmp_path / "extract"
    _script().build(source, out)
    assert _digests(out) == _digests(EXTRACT_DATA_DIR)


def test_extract_is_compact_and_attributed() -> None:
    sizes = {p.name: p.stat().st_size for p in EXTRACT_DATA_DIR.rglob("*") if p.is_file()}
    assert sum(sizes.values()) < 4 * 2**20, sizes
    readme = (EXTRACT_DATA_DIR / "README.md").read_text()
    for needle in ("CC BY-SA 3.0", "Stanley et al.", "public", "MIT", "build_data_extract.py"):
        assert needle in readme


def test_data_folder_order(tmp_path: Path, monkeypatch, caplog) -> None:
    shared, extract = tmp_path / "shared" / "data", tmp_path / "repo" / "data" / "extract"
    (extract / "fsmol").mkdir(parents=True)
    monkeypatch.setattr(settings, "SHARED_DATA_DIR", shared)
    monkeypatch.setattr(settings, "EXTRACT_DATA_DIR", extract)
    monkeypatch.delenv("PHARMAFL_DATA_DIR", raising=False)
    settings._announce.cache_clear()
    with caplog.at_level(logging.INFO, logger=settings.__name__):
        assert data_dir("fsmol") == extract / "fsmol"
    assert "shipped extract" in caplog.text
    (shared / "fsmol").mkdir(parents=True)
    assert data_dir("fsmol") == shared / "fsmol"
    mine = tmp_path / "mine"
    (mine / "tox21").mkdir(parents=True)
    monkeypatch.setenv("PHARMAFL_DATA_DIR", str(mine))
    assert data_dir("tox21") == mine / "tox21"
    with pytest.raises(DataNotFoundError, match="fsmol"):
        data_dir("fsmol")  # the folder set is used, never silently another one
    monkeypatch.setenv("PHARMAFL_DATA_DIR", "  ")
    assert data_dir("fsmol") == shared / "fsmol"  # empty means unset


def test_no_data_anywhere_says_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(settings, "SHARED_DATA_DIR", tmp_path / "shared")
    monkeypatch.setattr(settings, "EXTRACT_DATA_DIR", tmp_path / "extract")
    monkeypatch.delenv("PHARMAFL_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError) as err:
        data_dir()
    assert str(tmp_path / "shared") in str(err.value)
    assert "build_data_extract.py" in (err.value.fix or "")


def test_a_data_folder_set_that_does_not_exist_is_refused(tmp_path: Path, monkeypatch) -> None:
    """PHARMAFL_DATA_DIR names a folder: never silently fall back to another one."""
    shared = tmp_path / "shared" / "data"
    (shared / "fsmol").mkdir(parents=True)
    monkeypatch.setattr(settings, "SHARED_DATA_DIR", shared)
    monkeypatch.setenv("PHARMAFL_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataNotFoundError, match="PHARMAFL_DATA_DIR") as err:
        data_dir()
    assert str(tmp_path / "typo") in str(err.value) and "unset it" in (err.value.fix or "")
