"""The graph trunk end to end on prepared FS-Mol partners: baseline, metrics, predict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.data import load_catalogue
from pharmafl.model import MetricsReport

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

GRAPH = ["--trunk", "graph", "--graph-hidden", "32", "--graph-layers", "2", "--threads", "1"]


def test_graph_baseline_and_predict_on_a_prepared_fsmol_partner(
    prepared_consortium: Path, tmp_path: Path
) -> None:
    pdir = tmp_path / "alpha"
    shutil.copytree(prepared_consortium / "partners" / "alpha", pdir)
    (pdir / "key.json").chmod(0o600)
    runner = CliRunner()
    res = runner.invoke(app, ["baseline", str(pdir), "--epochs", "2", "--batch-size", "64", *GRAPH])
    assert res.exit_code == 0, res.output + repr(res.exception)
    out = pdir / "models" / "local"
    report = MetricsReport.model_validate_json((out / "metrics.json").read_text())
    assert report.epochs_trained == 2
    hp = json.loads((out / "hyperparameters.json").read_text())
    assert hp["model"]["trunk"]["kind"] == "graph" and hp["model"]["trunk"]["norm"] == "batch"
    n_cls = hp["model"]["heads"]["local"]["n_cls_tasks"]
    assert n_cls > 0

    inp = tmp_path / "new.csv"
    pd.DataFrame(
        {"SMILES": ["CC(=O)Nc1ccc(O)cc1", "C1CC", "c1ccc2[nH]ccc2c1"], "id": ["a", "b", "c"]}
    ).to_csv(inp, index=False)
    pred = tmp_path / "pred.csv"
    res = runner.invoke(
        app, ["predict", str(pdir), "--input", str(inp), "--out", str(pred), "--embeddings"]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    table = pd.read_csv(pred, keep_default_na=False, na_values=[""])
    assert table["status"].tolist() == ["ok", "error", "ok"]
    labels = load_catalogue(pdir / "prepared").labels("classification")
    assert len(labels) == n_cls and table["id"].tolist() == ["a", "b", "c"]
    probs = table[labels].to_numpy()  # one column per task, named by the partner's assay id
    assert np.all((probs[[0, 2]] > 0) & (probs[[0, 2]] < 1)) and np.isnan(probs[1]).all()
    assert not np.allclose(probs[0], probs[2])  # different molecules, different graphs
    hidden = np.load(tmp_path / "pred-hidden.npy")
    assert hidden.shape == (3, 32) and np.isfinite(hidden[[0, 2]]).all()
