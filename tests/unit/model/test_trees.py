"""Strong local references: per-task random forests and gradient boosting (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from typer.testing import CliRunner

from pharmafl.evaluation.documents import MetricsReport
from pharmafl.model import load_prepared, write_synthetic_prepared
from pharmafl.model.scoring import evaluate_predictions
from pharmafl.model.trees import TreeConfig, fit_trees, predict_trees, run_tree_baseline


@pytest.fixture(scope="module")
def partner(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trees") / "alpha"
    write_synthetic_prepared(
        root / "prepared",
        n_rows=600,
        n_features=512,
        n_cls_tasks=4,
        n_reg_tasks=2,
        bits_per_row=24,
        label_density=0.5,
        seed=3,
    )
    return root


@pytest.mark.parametrize("kind", ["rf", "gbm"])
def test_tree_baseline_scores_like_the_network_and_writes_its_folder(
    partner: Path, kind: str
) -> None:
    cfg = TreeConfig(kind=kind, n_estimators=50, max_iter=30)
    report = run_tree_baseline(partner, cfg)
    folder = partner / "models" / f"local_{kind}"
    assert {p.name for p in folder.iterdir()} == {"metrics.json", "trees.json", "model.joblib"}
    saved = MetricsReport.model_validate_json((folder / "metrics.json").read_text())
    assert saved == report and saved.model_name == f"local_{kind}"
    assert json.loads((folder / "trees.json").read_text())["kind"] == kind
    data = load_prepared(partner / "prepared")
    # The same rows and the same evaluation as the network: re-scoring the saved models on
    # the test fold gives the report's numbers.
    rows = data.rows_in_folds([0])
    again = evaluate_predictions(
        data, rows, predict_trees(joblib.load(folder / "model.joblib"), data.x[rows])
    )
    assert again == report.test
    # The synthetic tasks carry signal: better than chance on the test fold.
    assert report.test is not None and report.test.metric("roc_auc") > 0.6


def test_trees_never_train_on_validation_or_test_rows(partner: Path) -> None:
    """Flipping every validation and test label changes no prediction."""
    data = load_prepared(partner / "prepared")
    before = predict_trees(fit_trees(data, TreeConfig(n_estimators=20)), data.x)
    held = np.isin(data.folds, [0, 1])
    for y in (data.y_cls, data.y_reg):
        coo = y.tocoo()
        flip = held[coo.row]
        y.data[flip[np.argsort(np.lexsort((coo.col, coo.row)))]] *= -1.0
    after = predict_trees(fit_trees(data, TreeConfig(n_estimators=20)), data.x)
    assert before.cls_prob is not None and after.cls_prob is not None
    np.testing.assert_array_equal(before.cls_prob, after.cls_prob)
    np.testing.assert_array_equal(before.reg_value, after.reg_value)


def test_a_task_with_one_class_in_training_predicts_its_frequency(partner: Path) -> None:
    data = load_prepared(partner / "prepared")
    train = data.rows_not_in_folds([1, 0])
    y = data.y_cls.tolil()
    for r in train:
        if y[r, 1] != 0:
            y[r, 1] = 1.0  # only actives left in training
    data.y_cls = y.tocsr()
    models = fit_trees(data, TreeConfig(n_estimators=5))
    probs = predict_trees(models, data.x[:10]).cls_prob
    assert probs is not None and np.all(probs[:, 1] == 1.0)


def test_cli_baseline_model_rf(partner: Path) -> None:
    from pharmafl.cli.main import app

    out = partner / "models" / "cli_rf"
    res = CliRunner().invoke(app, ["baseline", str(partner), "--model", "rf", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "test: roc_auc" in res.output and (out / "metrics.json").is_file()
    bad = CliRunner().invoke(app, ["baseline", str(partner), "--model", "svm"])
    assert "net, rf or gbm" in str(bad.exception)


def test_the_report_compares_federated_with_the_best_local_reference(partner: Path) -> None:
    from pharmafl.layout import PartnerLayout
    from pharmafl.report.partners import best_local

    reports = {
        kind: run_tree_baseline(partner, TreeConfig(kind=kind, n_estimators=30, max_iter=20))
        for kind in ("rf", "gbm")
    }
    valid = {f"local_{k}": r.validation.metric("auc_pr") for k, r in reports.items()}  # type: ignore[union-attr]
    federated = reports["gbm"]  # any metrics document of the same tasks stands in here
    chosen = best_local(PartnerLayout(partner), federated, None)
    assert chosen is not None
    assert chosen.model == max(valid, key=lambda n: valid[n])
    assert set(chosen.candidates) >= set(valid)
    assert chosen.benefit is not None and chosen.selected_by == "validation mean auc_pr"
