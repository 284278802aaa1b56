"""``pharmafl demo`` end to end at a tiny size: every stage runs, the outputs are complete."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pharmafl.demo import DemoConfig, run_demo
from pharmafl.schema_registry import SCHEMA_DIR

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_tiny_demo_writes_summary_report_and_verified_ledger(
    consortium_key_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a fresh clone: no ../shared/data, no PHARMAFL_DATA_DIR: the shipped extract.
    from pharmafl.common import settings

    monkeypatch.setattr(settings, "SHARED_DATA_DIR", tmp_path / "no-shared" / "data")
    monkeypatch.delenv("PHARMAFL_DATA_DIR", raising=False)
    assert settings.data_dir() == settings.EXTRACT_DATA_DIR
    cfg = DemoConfig(
        partners=3,
        max_compounds=400,
        auxiliary_compounds=300,  # a public partner: the assays no partner kept
        hidden=32,
        local_epochs=2,
        patience=2,
        rounds=2,
        fed_patience=2,
        head_finetune_epochs=1,
        eval_fold_min=1,
        seed=1,
        study_rounds=1,
        final_trunk="best",
        key_file=str(consortium_key_file),  # the same folds and tasks on every run
    )
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", cfg, say=lines.append)
    summary = json.loads(result.summary_path.read_text())
    schema = json.loads((SCHEMA_DIR / "consortium_summary.schema.json").read_text())
    jsonschema.validate(summary, schema)
    assert summary["secure_aggregation"] is True
    assert summary["rounds"] == 2
    assert [p["name"] for p in summary["partners"]] == ["alpha", "bravo", "charlie", "public"]
    assert [p["auxiliary"] for p in summary["partners"]] == [False, False, False, True]
    assert "public*" in result.table and "auxiliary public partner" in result.table
    # each member's local references include its network trained with the public data
    for p in summary["partners"][:3]:
        assert "local_public" in p["best_local"]["candidates"]
        assert (
            tmp_path / "demo/partners" / p["name"] / "models/local_public/metrics.json"
        ).is_file()
    assert not (tmp_path / "demo/partners/public/models/local_public").exists()
    for p in summary["partners"]:
        for model in ("local", "federated", "pooled"):
            assert 0.0 <= p[model]["roc_auc"] <= 1.0
            assert 0.0 <= p[model]["auc_pr"] <= 1.0
        assert p["contribution"]["rounds"]["submitted"] == 2
    # No contribution study: three partners make no two valuation groups of three, and
    # valuing single partners would expose their updates (tests/security).
    assert summary["contribution"] is None
    assert any("contribution study skipped" in line for line in lines)
    ledger = [
        json.loads(line)
        for line in (tmp_path / "demo" / "operator" / "ledger.jsonl").read_text().splitlines()
    ]
    assert not any(e["event"].startswith(("coalition", "contribution")) for e in ledger)
    # final_trunk="best": the main run's partners evaluated the trunk of its best validation
    # round.
    main = [e["payload"] for e in ledger if e["payload"].get("run_id", "train") == "train"]
    trunks = {p["round"]: p["trunk_hash"] for p in main if "trunk_hash" in p}
    scores: dict[int, list[float]] = {}
    for p in main:
        if "metrics" in p and p.get("split") == "valid" and "auc_pr" in p["metrics"]:
            scores.setdefault(p["round"], []).append(p["metrics"]["auc_pr"])
    means = {r: sum(v) / len(v) for r, v in scores.items()}
    assert means, "the tiny demo's partners share validation scores"
    best = max(sorted(means), key=lambda r: means[r] - 1e-6 * r)
    (finished,) = [
        e["payload"]
        for e in ledger
        if e["event"] == "training_finished" and e["payload"]["run_id"] == "train"
    ]
    assert finished["final_trunk_round"] == best
    assert finished["final_trunk_hash"] == trunks[best]
    assert summary["ledger"]["verified"] is True
    html = result.report_path.read_text()
    assert html.count("<img") >= 3 and "alpha" in html
    assert (tmp_path / "demo" / "exchange").is_dir()
    assert "alpha" in result.table and "gap capture" in result.table
    # Each partner's row shows the task-bootstrap interval of its AUC-PR gain.
    for p in result.summary.partners[:3]:
        pr = p.benefit.metric("auc_pr")
        lo, hi = pr.mean_delta_ci95
        row = next(line for line in result.table.splitlines() if line.startswith(p.name))
        assert f"{lo:+.4f}…{hi:+.4f}" in row and lo <= pr.mean_delta <= hi


def test_one_prepared_folder_trains_twice(consortium_key_file: Path, tmp_path: Path) -> None:
    """prepare_demo once, then two recipes on copies of it (the consortium benchmark's sweep):
    the same prepared matrices, each copy its own models; pooled=False trains no pooled model."""
    import shutil

    from pharmafl.common.errors import ConfigError
    from pharmafl.demo import prepare_demo, train_demo

    cfg = DemoConfig(
        partners=3, max_compounds=300, hidden=16, local_epochs=1, patience=1, rounds=1,
        fed_patience=1, head_finetune_epochs=0, eval_fold_min=1, seed=2,
        key_file=str(consortium_key_file),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="not simulated and prepared by the demo"):
        train_demo(tmp_path / "nothing", cfg, say=lambda _: None)
    prepare_demo(tmp_path / "prepared", cfg, say=lambda _: None)
    assert not (tmp_path / "prepared/partners/alpha/models").exists()
    runs = {}
    for name, recipe in (("a", cfg), ("b", cfg.model_copy(update={"pooled": False}))):
        shutil.copytree(tmp_path / "prepared", tmp_path / name)
        runs[name] = train_demo(tmp_path / name, recipe, say=lambda _: None)
    x = "partners/alpha/prepared/cls_T11_x.npz"
    assert (tmp_path / "a" / x).read_bytes() == (tmp_path / "b" / x).read_bytes()
    assert (tmp_path / "a/operator/pooled").is_dir()
    assert not (tmp_path / "b/operator/pooled").exists()
    assert all(p.pooled is not None for p in runs["a"].summary.partners)
    assert all(p.pooled is None for p in runs["b"].summary.partners)
    assert "prepare" in runs["b"].summary.notes[0]  # the preparation's timing is kept
