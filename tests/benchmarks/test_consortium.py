"""benchmarks/consortium.py: the new-chemistry hold-out and the statistics of its tables."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("consortium")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_new_chemistry_takes_whole_scaffolds_by_key(bench: ModuleType) -> None:
    scaffolds = pd.Series([f"S{i % 400}" for i in range(4000)] + [""] * 200)
    new = bench.held_out(scaffolds, "key-a", 0.1)
    held, kept = set(scaffolds[new]), set(scaffolds[~new])
    assert held and not held & kept  # scaffold-disjoint
    assert "" in kept and "" not in held  # acyclic compounds stay with the partners
    assert 0.05 < len(held) / 400 < 0.15
    assert set(scaffolds[bench.held_out(scaffolds, "key-b", 0.1)]) != held
    np.testing.assert_array_equal(new, bench.held_out(scaffolds, "key-a", 0.1))


def _run(key: int, gains: dict[str, float], rmse: dict[str, float]) -> dict:
    test = {
        "classification": {"auc_pr": gains, "roc_auc": {}},
        "regression": {"r2": {}, "rmse": rmse},
    }
    return {"key": key, "overrides": {}, "partners": {"alpha": {"test": test, "new": None}}}


def test_gains_are_averaged_per_task_over_keys_then_over_tasks(bench: ModuleType) -> None:
    runs = [
        _run(0, {"t1": 0.1, "t2": 0.0, "t3": -0.1}, {"r1": -0.2}),
        _run(1, {"t1": 0.3, "t2": 0.2}, {"r1": 0.1, "r2": -0.1}),
    ]
    s = bench.summarise(runs, "test", "alpha", "classification", "auc_pr")
    task_means = [0.2, 0.1, -0.1]  # t3 scored under one key only
    assert s["mean"] == pytest.approx(np.mean(task_means))
    half = 4.302652729911275 * np.std(task_means, ddof=1) / math.sqrt(3)  # t(0.975, 2)
    assert s["ci_tasks_keys"] == pytest.approx((s["mean"] - half, s["mean"] + half))
    k0, k1 = 0.0, 0.25  # per-key means
    khalf = 12.706204736174698 * np.std([k0, k1], ddof=1) / math.sqrt(2)
    assert s["ci_keys"] == pytest.approx((0.125 - khalf, 0.125 + khalf))
    assert (s["tasks"], s["keys"], s["share_improved"]) == (3, 2, pytest.approx(2 / 3))
    r = bench.summarise(runs, "test", "alpha", "regression", "rmse")
    assert r["share_improved"] == pytest.approx(1.0)  # lower RMSE is the improvement
    assert bench.summarise(runs, "test", "alpha", "classification", "roc_auc") is None
    assert bench.summarise(runs, "new", "alpha", "classification", "auc_pr") is None
    text = bench.table(runs)
    assert "alpha" in text and "+0.0667" in text and "67%" in text


def test_the_public_partner_trains_on_none_of_the_new_chemistry(
    bench: ModuleType, tmp_path: Path
) -> None:
    other = pd.DataFrame(
        {
            "assay_chembl_id": [f"A{i % 7}" for i in range(2000)],
            "smiles": [f"C{i}" for i in range(2000)],
            "relation": "=",
            "value_nM": 10.0,
            "scaffold": [f"S{i % 300}" if i % 10 else "" for i in range(2000)],
        }
    )
    other.to_csv(tmp_path / "fsmol-other-scaffolds.csv.gz", index=False, compression="gzip")
    key_file = tmp_path / "key.json"
    key_file.write_text('{"key": "key-a"}')
    folder = tmp_path / "key0"
    folder.mkdir()
    path = bench.public_file(tmp_path, str(key_file), 0.1, folder)
    public = pd.read_csv(path)
    held = bench.held_out(other["scaffold"].fillna(""), "key-a", 0.1)
    assert 0 < held.sum() < len(other)
    assert list(public.columns) == list(other.columns.drop("scaffold"))
    assert set(public["smiles"]) == set(other.loc[~held, "smiles"])  # held-out scaffolds gone
