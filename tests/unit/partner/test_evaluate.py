"""``pharmafl evaluate`` end to end on the small simulated consortium.

A quarter of one partner's compounds is held out of its export before preparation (its "new
measurements", in its own export shape); the partner prepares the rest, trains a local model
and has a second model where the federated run leaves its own; the command scores both on the
held-out compounds by the partner's assay ids, with intervals over tasks and compounds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.common.errors import ConfigError, DataNotFoundError, PreparationError
from pharmafl.data import load_catalogue
from pharmafl.partner import PrepareOptions, load_partner_context, prepare_partner
from pharmafl.partner.evaluate import evaluate_new_measurements
from pharmafl.partner.newdata import new_data_config, read_new_measurements

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TINY = ["--epochs", "3", "--hidden", "64", "--dropout", "0.2", "--threads", "1"]


def _hold_out(raw: Path, new: Path, seed: int = 0) -> None:
    """Move a quarter of the compounds of charlie's parquet export into ``new``."""
    structures = pd.read_parquet(raw / "structures.parquet")
    activities = pd.read_parquet(raw / "activities.parquet")
    ids = np.sort(structures["compound_id"].unique())
    held = set(np.random.default_rng(seed).choice(ids, size=len(ids) // 4, replace=False))
    new.mkdir()
    for name, frame in (("structures", structures), ("activities", activities)):
        out = frame["compound_id"].isin(held)
        frame[out].to_parquet(new / f"{name}.parquet", index=False)
        frame[~out].to_parquet(raw / f"{name}.parquet", index=False)


@pytest.fixture(scope="module")
def charlie(small_consortium: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    pdir = root / "charlie"
    shutil.copytree(small_consortium / "partners" / "charlie", pdir)
    (pdir / "key.json").chmod(0o600)
    _hold_out(pdir / "raw", root / "new")
    prepare_partner(pdir, PrepareOptions(workers=1))
    runner = CliRunner()
    for extra in ([], ["--out", str(pdir / "models/federated/model"), "--seed", "5"]):
        res = runner.invoke(app, ["baseline", str(pdir), *TINY, *extra])
        assert res.exit_code == 0, res.output + repr(res.exception)
    return pdir


def _inputs(pdir: Path) -> list[str]:
    new = pdir.parent / "new"
    return [
        f"raw/structures.parquet={new / 'structures.parquet'}",
        f"raw/activities.parquet={new / 'activities.parquet'}",
    ]


def test_evaluate_scores_both_models_by_the_partners_ids(charlie: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    args = ["evaluate", str(charlie)] + [a for i in _inputs(charlie) for a in ("--input", i)]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--resamples", "200"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    doc = json.loads(out.read_text())
    cat = load_catalogue(charlie / "prepared")
    labels = {t.label: t for t in cat.tasks}
    scores = doc["scores"]
    assert [m["name"] for m in scores["models"]] == ["local", "federated"]
    assert scores["tasks"] and scores["n_rows"] > 20
    for t in scores["tasks"]:
        assert labels[t["task"]].assay_id == t["assay_id"] and t["assay_id"].startswith("CHEMBL")
        assert (t["status"] == "too_few_labels") == (t["scores"] == {})
        if t["status"] == "too_few_labels":
            assert t["note"].startswith("not scored: ")
    cmp = {c["task_type"]: c for c in scores["comparisons"]}["classification"]
    assert (cmp["baseline"], cmp["compared"]) == ("local", "federated")
    roc_tasks = {m["metric"]: m for m in cmp["over_tasks"]["metrics"]}["roc_auc"]
    roc_comp = {m["metric"]: m for m in cmp["over_compounds"]}["roc_auc"]
    assert roc_tasks["n_tasks"] >= 2 and roc_comp["n_tasks"] == roc_tasks["n_tasks"]
    for ci in (roc_tasks["mean_delta_ci95"], roc_comp["ci95"]):
        assert ci is not None and ci[0] <= roc_tasks["mean_delta"] <= ci[1]
    assert roc_comp["mean_delta"] == pytest.approx(roc_tasks["mean_delta"])
    assert doc["counts"]["descriptor_vectors_in_training"] >= 0
    scored = next(t for t in scores["tasks"] if t["status"] == "scored")
    assert scored["task"] in res.output and "federated − local" in res.output
    assert "over compounds [" in res.output
    assert "nan" not in res.output.lower() and "nan" not in out.read_text().lower()


def test_new_labels_are_the_preparations_labels(prepared_consortium: Path, tmp_path: Path) -> None:
    """Compounds a partner already has, read as 'new', get exactly their prepared labels:
    same ingest, standardization, aggregation and thresholds."""
    pdir = prepared_consortium / "partners" / "alpha"
    ctx = load_partner_context(pdir)
    export = pd.read_csv(pdir / "raw" / "chembl_export.csv", dtype=str, keep_default_na=False)
    some = export["molecule_id"].drop_duplicates().iloc[::3]
    subset = tmp_path / "again.csv"
    export[export["molecule_id"].isin(some)].to_csv(subset, index=False)
    cfg, base = new_data_config(ctx, [str(subset)])
    cat = load_catalogue(pdir / "prepared")
    new = read_new_measurements(ctx, cfg, base, cat, keep_training_overlap=True)
    assert new.counts["descriptor_vectors_in_training"] > 0
    compounds = pd.read_csv(pdir / "prepared" / "compounds.csv", dtype={"input_compound_id": str})
    row_of = dict(zip(compounds["input_compound_id"], compounds["row"], strict=True))
    y = sp.load_npz(pdir / "prepared" / "cls_T10_y.npz").tocsr()
    checked = 0
    for i, names in enumerate(new.row_compounds):
        prow = row_of[names.split("; ")[0]]
        mine = new.labels.y_cls[i]
        if prow < 0 or mine.nnz == 0:
            continue
        np.testing.assert_array_equal(mine.toarray(), y[prow].toarray())
        checked += mine.nnz
    assert checked > 20


def test_the_new_files_replace_the_configs_exports(charlie: Path, tmp_path: Path) -> None:
    ctx = load_partner_context(charlie)
    cfg, base = new_data_config(ctx, _inputs(charlie))
    assert base == charlie
    assert [Path(s.path).name for s in cfg.structures] == ["structures.parquet"]
    assert Path(cfg.activities[0].path).is_absolute() and cfg.assays == ctx.config.assays
    with pytest.raises(ConfigError, match="from 2 files"):
        new_data_config(ctx, [str(tmp_path / "new.parquet")])
    with pytest.raises(ConfigError, match="does not read"):
        new_data_config(ctx, [f"raw/other.csv={tmp_path / 'x.csv'}"])
    with pytest.raises(ConfigError, match="no new measurements"):
        evaluate_new_measurements(charlie, [])


def test_a_preparation_without_the_partners_ids_is_refused(charlie: Path, tmp_path: Path) -> None:
    old = tmp_path / "charlie"
    shutil.copytree(charlie, old)
    path = old / "prepared" / "task_catalogue.json"
    path.write_text(path.read_text().replace('"partner_ids": true', '"partner_ids": false'))
    with pytest.raises(PreparationError, match="prepare PARTNER_DIR` again"):
        evaluate_new_measurements(old, _inputs(charlie))


def test_a_preparation_without_its_descriptors_is_refused(charlie: Path, tmp_path: Path) -> None:
    """The catalogue is there but the training descriptors are not (a half-copied folder):
    the compounds the models trained on cannot be told apart, so nothing is scored."""
    part = tmp_path / "charlie"
    shutil.copytree(charlie, part)
    (part / "prepared" / "cls_T11_x.npz").unlink()
    with pytest.raises(DataNotFoundError, match="prepared data is missing") as err:
        evaluate_new_measurements(part, _inputs(charlie))
    assert (err.value.file or "").endswith("cls_T11_x.npz") and "pharmafl prepare" in (
        err.value.fix or ""
    )
