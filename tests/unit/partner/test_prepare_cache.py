"""Incremental preparation (issue 16, item 5): a refresh writes exactly what a full run writes.

A partner is prepared, its export changes (5 % new compounds; rows removed; structures
changed), and ``prepare`` runs again with the per-molecule cache warm. Every file of
``prepared/`` must equal, byte for byte, a from-scratch run (``cache=False``) on the final
export in a fresh copy of the partner. Only run-specific fields may differ:

- ``manifest.json``: ``created_at``, ``wall_seconds``;
- ``run_report.json``: the same two in its manifest, each step's ``seconds``, and the describe
  step's ``cached`` count;
- ``summary.txt``: the header line (date and seconds), each step's seconds and ``cached``
  count, and the ``cache:`` line.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import write_new_consortium_key
from pharmafl.layout import PartnerLayout
from pharmafl.partner import PrepareOptions, PrepareResult, prepare_partner

pytestmark = pytest.mark.slow

EXPORT = "raw/chembl_export.csv"  # the simulated partner alpha's single export
RUN_SPECIFIC_MANIFEST = ("created_at", "wall_seconds")
RUN_DOCUMENTS = ("manifest.json", "run_report.json", "summary.txt")


def _comparable(name: str, text: str) -> Any:
    if name == "summary.txt":
        return [
            re.sub(r"(, )?cached=\d+|\s+[0-9.]+ s\b", "", line)
            for line in text.splitlines()[1:]
            if not line.startswith("cache: ")
        ]
    doc = json.loads(text)
    manifest = doc.get("manifest", doc)
    for field in RUN_SPECIFIC_MANIFEST:
        manifest.pop(field)
    for step in doc.get("steps", []):
        step.pop("seconds")
        if step["name"] == "standardize_describe_fold":
            step["counts"].pop("cached")
    return doc


def assert_same_outputs(a: Path, b: Path) -> None:
    """``prepared/`` folders ``a`` and ``b`` hold the same files with the same bytes, but for
    the run-specific fields listed in the module docstring."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        da, db = (a / name).read_bytes(), (b / name).read_bytes()
        if name in RUN_DOCUMENTS:
            assert _comparable(name, da.decode()) == _comparable(name, db.decode()), name
        else:
            assert da == db, f"{name} differs from a full run"


def _partner(src: Path, dst: Path, export: pd.DataFrame, *, with_cache: bool = False) -> Path:
    ignore = ["prepared"] if with_cache else ["prepared", "cache"]
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*ignore))
    (dst / "key.json").chmod(0o600)
    export.to_csv(dst / EXPORT, index=False)
    return dst


def _prepare(partner: Path, *, cache: bool = True) -> PrepareResult:
    return prepare_partner(partner, PrepareOptions(workers=1, cache=cache))


def _cached(result: PrepareResult) -> int:
    (step,) = [s for s in result.steps if s.name == "standardize_describe_fold"]
    return int(step.counts["cached"])


@pytest.fixture(scope="module")
def alpha(small_consortium: Path) -> Path:
    return small_consortium / "partners" / "alpha"


@pytest.fixture(scope="module")
def export(alpha: Path) -> pd.DataFrame:
    """The final export, read as text so that writing it back changes no byte."""
    return pd.read_csv(alpha / EXPORT, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def full_run(alpha: Path, export: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A from-scratch run (no cache) on the final export."""
    partner = _partner(alpha, tmp_path_factory.mktemp("full") / "p", export)
    _prepare(partner, cache=False)
    assert not PartnerLayout(partner).prepare_cache.exists()  # --no-cache writes none
    return partner


@pytest.fixture(scope="module")
def warm(alpha: Path, export: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A partner prepared once (cache on) from the final export."""
    partner = _partner(alpha, tmp_path_factory.mktemp("warm") / "p", export)
    assert _cached(_prepare(partner)) == 0
    return partner


def test_adding_five_percent_reuses_the_rest_and_writes_the_same_bytes(
    alpha: Path, export: pd.DataFrame, full_run: Path, tmp_path: Path
) -> None:
    ids = export["molecule_id"].unique()
    new = np.random.default_rng(0).choice(ids, size=max(5, len(ids) // 20), replace=False)
    partner = _partner(alpha, tmp_path / "p", export[~export["molecule_id"].isin(new)])
    first = _prepare(partner)
    assert _cached(first) == 0 and PartnerLayout(partner).describe_cache.is_file()
    export.to_csv(partner / EXPORT, index=False)  # the same export plus the new compounds
    refresh = _prepare(partner)
    compounds = refresh.manifest.counts.compounds_input
    assert compounds > first.manifest.counts.compounds_input
    assert compounds - len(new) <= _cached(refresh) < compounds  # only new ones described
    assert_same_outputs(partner / "prepared", full_run / "prepared")
    summary = (partner / "prepared" / "summary.txt").read_text()
    assert f"cache: {_cached(refresh)} of {compounds} structures" in summary
    # A truncated cache file is ignored (everything described again), never trusted.
    cache_file = PartnerLayout(partner).describe_cache
    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    assert _cached(_prepare(partner)) == 0
    assert_same_outputs(partner / "prepared", full_run / "prepared")
    assert _cached(_prepare(partner)) == compounds  # and rewritten whole


def test_removed_and_changed_rows_write_what_a_full_run_writes(
    alpha: Path, warm: Path, export: pd.DataFrame, tmp_path: Path
) -> None:
    ids = export["molecule_id"].unique()
    rng = np.random.default_rng(1)
    removed, salted, broken = np.split(rng.choice(ids, size=20, replace=False), [10, 17])
    changed = export[~export["molecule_id"].isin(removed)].copy()
    smiles = changed["canonical_smiles"]
    # A new text that standardizes to the same molecule, and one that is rejected.
    changed.loc[changed["molecule_id"].isin(salted), "canonical_smiles"] = smiles + ".Cl"
    changed.loc[changed["molecule_id"].isin(broken), "canonical_smiles"] = "C1CC(not smiles"
    partner = tmp_path / "inc"
    shutil.copytree(warm, partner)
    changed.to_csv(partner / EXPORT, index=False)
    refresh = _prepare(partner)
    compounds = refresh.manifest.counts.compounds_input
    assert compounds - len(salted) - len(broken) <= _cached(refresh) < compounds
    assert refresh.manifest.counts.compounds_rejected >= len(broken)
    scratch = _partner(alpha, tmp_path / "scratch", changed)
    _prepare(scratch, cache=False)
    assert_same_outputs(partner / "prepared", scratch / "prepared")
    # The rejections come back from the cache with the same reasons and messages.
    again = _prepare(partner)
    assert _cached(again) == compounds
    assert_same_outputs(partner / "prepared", scratch / "prepared")


def _drop_reference_hash(partner: Path, **changes: Any) -> None:
    """Changed parameters or key would fail the consistency check against the consortium's
    published hash; a consortium that changes them publishes a new one (here: none)."""
    path = PartnerLayout(partner).consortium
    params = ConsortiumParameters.model_validate_json(path.read_text())
    path.write_text(params.model_copy(update={"reference_hash": None, **changes}).model_dump_json())


def test_another_key_or_parameters_reuse_nothing(warm: Path, tmp_path: Path) -> None:
    compounds = json.loads(PartnerLayout(warm).manifest.read_text())["counts"]["compounds_input"]
    same = tmp_path / "same"
    shutil.copytree(warm, same)
    _drop_reference_hash(same)  # the reference hash is not a parameter of any molecule
    assert _cached(_prepare(same)) == compounds
    new_key = tmp_path / "key"
    shutil.copytree(warm, new_key)
    _drop_reference_hash(new_key)
    (new_key / "key.json").unlink()
    write_new_consortium_key(new_key / "key.json")
    assert _cached(_prepare(new_key)) == 0
    renamed = tmp_path / "params"
    shutil.copytree(warm, renamed)
    _drop_reference_hash(renamed, consortium_name="another consortium")
    assert _cached(_prepare(renamed)) == 0


def test_no_cache_reads_and_writes_none(warm: Path, tmp_path: Path) -> None:
    partner = tmp_path / "p"
    shutil.copytree(warm, partner)
    cache_file = PartnerLayout(partner).describe_cache
    before = cache_file.stat().st_mtime_ns, cache_file.read_bytes()
    assert _cached(_prepare(partner, cache=False)) == 0
    assert (cache_file.stat().st_mtime_ns, cache_file.read_bytes()) == before
    assert "cache:" not in (partner / "prepared" / "summary.txt").read_text()
