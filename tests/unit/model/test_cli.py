"""``pharmafl baseline``, ``pooled`` and ``predict`` end to end on synthetic partners."""

from __future__ import annotations

import json
import shutil
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import typer
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.cli.model import Configs, with_model_options
from pharmafl.common.params import ConsortiumParameters, FingerprintParams
from pharmafl.common.secret import write_new_consortium_key
from pharmafl.model import MetricsReport, PooledReport, write_synthetic_prepared

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TINY = ["--hidden", "16", "--dropout", "0.1", "--batch-ratio", "0.2", "--threads", "1"]
CLS_KEYS = {"roc_auc", "auc_pr", "auc_pr_cal", "avg_prec", "f1_max", "kappa", "logloss", "brier"}
REG_KEYS = {"rmse", "rmse_uncensored", "r2", "pearson_r"}


@pytest.fixture(scope="module")
def trained_partner(tmp_path_factory, small_prepared):
    """A partner folder with consortium parameters, key and a baseline model (via the CLI)."""
    pdir = tmp_path_factory.mktemp("cli") / "partner_a"
    shutil.copytree(small_prepared / "prepared", pdir / "prepared")
    params = ConsortiumParameters(fingerprint=FingerprintParams(fold_size=512))
    (pdir / "consortium.json").write_text(params.model_dump_json())
    write_new_consortium_key(pdir / "key.json")
    result = CliRunner().invoke(app, ["baseline", str(pdir), "--epochs", "2", *TINY])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return pdir


def test_baseline_writes_model_hyperparameters_and_metrics(trained_partner) -> None:
    out = trained_partner / "models" / "local"
    assert {p.name for p in out.iterdir()} == {"model.pt", "hyperparameters.json", "metrics.json"}
    doc = json.loads((out / "metrics.json").read_text())
    report = MetricsReport.model_validate(doc)
    assert report.model_name == "local" and report.epochs_trained == 2
    for split in ("validation", "test"):
        section = doc[split]
        assert set(section["classification"]["aggregate"]) >= CLS_KEYS
        assert set(section["regression"]["aggregate"]) >= REG_KEYS
        assert len(section["classification"]["per_task"]) == 8
        assert len(section["regression"]["per_task"]) == 3
        assert 0.0 <= section["classification"]["aggregate"]["roc_auc"] <= 1.0
    assert doc["test"]["folds"] == [0] and doc["validation"]["folds"] == [1]
    assert not (trained_partner / "models" / "checkpoints" / "local.pt").exists()
    hp = json.loads((out / "hyperparameters.json").read_text())
    assert hp["model"]["trunk"]["hidden_sizes"] == [16]
    assert hp["model"]["heads"]["local"] == {"n_cls_tasks": 8, "n_reg_tasks": 3, "dropout": None}


def test_baseline_resume_refuses_other_settings(trained_partner, tmp_path) -> None:
    from pharmafl.model import LocalTrainer, load_prepared
    from pharmafl.model.baseline import CHECKPOINT_FILE

    pdir = tmp_path / "p"
    shutil.copytree(trained_partner / "prepared", pdir / "prepared")
    runner = CliRunner()
    ok = runner.invoke(
        app, ["baseline", str(pdir), "--epochs", "1", "--out", str(tmp_path / "m"), *TINY]
    )
    assert ok.exit_code == 0, ok.output
    # Leave a checkpoint behind as an interrupted run would, then resume with other settings.
    data = load_prepared(pdir / "prepared")
    from pharmafl.model import MultiTaskModel, SparseTrunkConfig, TrainConfig, local_model_config

    model = MultiTaskModel.from_config(
        local_model_config(SparseTrunkConfig(input_size=512, hidden_sizes=(16,)), 8, 3)
    )
    LocalTrainer(model, data, TrainConfig(epochs=1)).save_checkpoint(pdir / CHECKPOINT_FILE)
    bad = runner.invoke(app, ["baseline", str(pdir), "--resume", "--epochs", "1", *TINY])
    assert bad.exit_code != 0
    assert "different model or training settings" in str(bad.exception)


def test_predict_reports_bad_structures_per_row(trained_partner, tmp_path) -> None:
    pytest.importorskip("pharmafl.chem", reason="pharmafl.chem not available")
    inp = tmp_path / "new.csv"
    pd.DataFrame(
        {
            "compound_id": ["good1", "bad_syntax", "empty", "good2", "bad_ring"],
            "SMILES": ["CCOc1ccccc1", "not_a_smiles((", "", "CC(=O)Nc1ccc(O)cc1", "C1CC"],
        }
    ).to_csv(inp, index=False)
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(trained_partner),
            "--input",
            str(inp),
            "--out",
            str(out),
            "--mc-samples",
            "4",
            "--embeddings",
        ],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "model: local" in result.output  # the only model trained: said, not guessed
    table = pd.read_csv(out, keep_default_na=False, na_values=[""])
    # The input's id column comes back under its own name, first after the row number.
    assert list(table.columns[:3]) == ["row", "compound_id", "input_smiles"]
    assert table["compound_id"].tolist() == ["good1", "bad_syntax", "empty", "good2", "bad_ring"]
    assert table["status"].tolist() == ["ok", "error", "error", "ok", "error"]
    bad = table["status"] == "error"
    assert table.loc[bad, "message"].str.len().gt(0).all()
    assert table.loc[~bad, "message"].isna().all()
    probs = table[[f"cls_{j}" for j in range(8)]].to_numpy()
    assert np.all((probs[~bad] >= 0) & (probs[~bad] <= 1))
    assert np.isnan(probs[bad]).all()
    assert np.all(table.loc[~bad, [f"cls_{j} std" for j in range(8)]].to_numpy() >= 0)
    assert np.isfinite(table.loc[~bad, [f"reg_{j}" for j in range(3)]].to_numpy()).all()
    cls = sp.load_npz(tmp_path / "pred-class.npz")
    assert cls.shape == (5, 8)
    assert np.diff(cls.indptr).tolist() == [8, 0, 0, 8, 0]
    np.testing.assert_allclose(cls[[0, 3]].toarray(), probs[[0, 3]], rtol=1e-6)
    assert sp.load_npz(tmp_path / "pred-regr.npz").shape == (5, 3)
    hidden = np.load(tmp_path / "pred-hidden.npy")
    assert hidden.shape == (5, 16) and np.isnan(hidden[1]).all() and np.isfinite(hidden[0]).all()


def test_predict_needs_a_smiles_column(trained_partner, tmp_path) -> None:
    inp = tmp_path / "x.csv"
    pd.DataFrame({"mol": ["CCO"]}).to_csv(inp, index=False)
    res = CliRunner().invoke(
        app,
        ["predict", str(trained_partner), "--input", str(inp), "--out", str(tmp_path / "o.csv")],
    )
    assert res.exit_code != 0 and "no SMILES column" in str(res.exception)


def test_pooled_trains_one_head_per_partner(tmp_path) -> None:
    root = tmp_path / "consortium"
    for i, name in enumerate(["alpha", "beta"]):
        write_synthetic_prepared(
            root / "partners" / name / "prepared",
            n_rows=300,
            n_features=256,
            n_cls_tasks=4 + i,
            n_reg_tasks=i,
            label_density=0.3,
            seed=10 + i,
        )
    res = CliRunner().invoke(app, ["pooled", str(root), "--epochs", "2", *TINY])
    assert res.exit_code == 0, res.output + repr(res.exception)
    out = root / "models" / "pooled"
    report = PooledReport.model_validate_json((out / "metrics.json").read_text())
    assert set(report.partners) == {"alpha", "beta"}
    assert report.partners["beta"].test is not None
    assert report.partners["beta"].test.regression is not None
    assert report.partners["alpha"].test.regression is None
    assert len(report.partners["beta"].test.classification.per_task) == 5
    hp = json.loads((out / "hyperparameters.json").read_text())
    assert set(hp["model"]["heads"]) == {"alpha", "beta"}
    table = pd.read_csv(out / "comparison.csv")
    assert table["partner"].tolist() == ["alpha", "beta"]
    assert table["pooled_test_roc_auc"].between(0, 1).all()


def test_predict_reads_sdf_and_reports_unreadable_records(trained_partner, tmp_path) -> None:
    pytest.importorskip("pharmafl.chem", reason="pharmafl.chem not available")
    from pharmafl.ingest.sdf import format_sdf_record, smiles_to_molblock, write_sdf

    broken = "broken\n  junk\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n"
    sdf = write_sdf(
        tmp_path / "in.sdf",
        [
            format_sdf_record("mol_a", smiles_to_molblock("CCN(CC)CC"), {"id": "A-1"}),
            format_sdf_record("mol_b", broken, {"id": "B-2"}),
        ],
    )
    out = tmp_path / "sdf_pred.csv"
    res = CliRunner().invoke(
        app, ["predict", str(trained_partner), "--input", str(sdf), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    table = pd.read_csv(out, keep_default_na=False)
    assert table["id"].tolist() == ["A-1", "B-2"]
    assert table["status"].tolist() == ["ok", "error"]
    assert table.loc[1, "message"] != ""


def _invoke_with_model_options(args: list[str]) -> tuple[Any, list[Configs]]:
    """Run a throwaway command decorated with ``with_model_options``: its result and the
    configs it received."""
    seen: list[Configs] = []
    cmd_app = typer.Typer()

    @cmd_app.command()
    @with_model_options
    def cmd(name: str, configs: Configs = (None, None, False)) -> None:
        seen.append(configs)

    return CliRunner().invoke(cmd_app, ["x", *args]), seen


def test_shared_model_options_reach_the_configs() -> None:
    args = ["--hidden", "32,16", "--dropout", "0.2", "--fold-va", "-1", "--patience", "3"]
    args += ["--lr-steps", "5,9", "--threads", "2", "--epochs", "7"]
    res, seen = _invoke_with_model_options(args)
    assert res.exit_code == 0, res.output
    trunk, train, by_size = seen[0]
    assert not by_size, "--hidden and --dropout given: the data size chooses nothing"
    assert trunk.hidden_sizes == (32, 16) and trunk.dropouts == (0.2, 0.2)
    assert train.fold_va is None and train.fold_te == 0
    assert train.early_stopping_patience == 3 and train.num_threads == 2
    assert train.lr_steps == (5, 9) and train.epochs == 7
    bad, seen = _invoke_with_model_options(["--lr-steps", "a,b"])
    assert bad.exit_code != 0 and not seen


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], True),
        (["--epochs", "3", "--lr", "0.01"], True),
        (["--hidden", "64"], False),
        (["--dropout", "0.3"], False),
        (["--weight-decay", "0.001"], False),
        (["--trunk", "graph"], False),
    ],
)
def test_regularisation_is_chosen_by_data_size_only_when_none_is_given(
    args: list[str], expected: bool
) -> None:
    res, seen = _invoke_with_model_options(args)
    assert res.exit_code == 0, res.output
    assert seen[0][2] is expected


def test_a_config_file_that_sets_the_dropout_is_kept(tmp_path) -> None:
    cfg = tmp_path / "model.json"
    cfg.write_text(json.dumps({"trunk": {"dropouts": [0.25]}}))
    res, seen = _invoke_with_model_options(["--config", str(cfg)])
    assert res.exit_code == 0, res.output
    trunk, _, by_size = seen[0]
    assert trunk.dropouts == (0.25,) and by_size is False


def test_pooled_refuses_partners_it_cannot_train_together(tmp_path) -> None:
    """Two folders whose names map to one head, or partners of other fingerprint sizes (other
    parameters): refused before training, with the reason."""
    from pharmafl.common.errors import ConfigError, DataNotFoundError, ModelError
    from pharmafl.model import SparseTrunkConfig, TrainConfig, load_prepared
    from pharmafl.model.pooled import find_partner_dirs, train_pooled

    root = tmp_path / "c"
    for name, width in (("acme-1", 256), ("acme.1", 256), ("beta", 128)):
        write_synthetic_prepared(
            root / name / "prepared", n_rows=60, n_features=width, n_cls_tasks=2, n_reg_tasks=0
        )
    (tmp_path / "empty" / "partners" / "alpha").mkdir(parents=True)  # nobody prepared yet
    with pytest.raises(DataNotFoundError, match="no prepared partners found"):
        find_partner_dirs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="two partners map to the head name 'acme_1'"):
        find_partner_dirs([root / "acme-1", root / "acme.1"])
    partners = {n: load_prepared(root / n / "prepared") for n in ("acme-1", "beta")}
    with pytest.raises(ModelError, match="partners have different feature counts"):
        train_pooled(partners, SparseTrunkConfig(hidden_sizes=(4,)), TrainConfig(epochs=1))
