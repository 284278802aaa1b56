"""A partner's local reference with public data (issue 15, the auxiliary partner lever)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pharmafl.common.errors import ConfigError
from pharmafl.evaluation.documents import MetricsReport
from pharmafl.layout import PartnerLayout
from pharmafl.model import SparseTrunkConfig, TrainConfig, write_synthetic_prepared
from pharmafl.model.public import PUBLIC_REFERENCE, run_local_with_public
from pharmafl.report.partners import best_local

SIZES = {"n_features": 512, "n_cls_tasks": 4, "n_reg_tasks": 1, "bits_per_row": 24}


@pytest.fixture(scope="module")
def consortium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("public")
    write_synthetic_prepared(
        root / "alpha/prepared", n_rows=300, label_density=0.5, seed=1, **SIZES
    )
    write_synthetic_prepared(
        root / "public/prepared", n_rows=900, label_density=0.5, seed=2, **SIZES
    )
    return root


def test_the_reference_scores_the_partners_own_tasks_and_is_weighed_as_local(
    consortium: Path,
) -> None:
    trunk = SparseTrunkConfig(hidden_sizes=(32,), dropouts=(0.2,))
    train = TrainConfig(epochs=3, batch_size=64, seed=0)
    report = run_local_with_public(consortium / "alpha", consortium / "public", trunk, train)
    folder = consortium / "alpha/models" / PUBLIC_REFERENCE
    saved = MetricsReport.model_validate_json((folder / "metrics.json").read_text())
    assert saved == report and report.model_name == PUBLIC_REFERENCE
    assert report.head == "alpha"  # the partner's head, not the public one
    assert report.test is not None and report.validation is not None
    assert report.test.metric("roc_auc") is not None
    extra = json.loads((folder / "hyperparameters.json").read_text())
    assert "public" in json.dumps(extra)
    # the report weighs it with the partner's other local references, on validation
    chosen = best_local(PartnerLayout(consortium / "alpha"), report, None)
    assert chosen is not None and PUBLIC_REFERENCE in chosen.candidates


def test_the_public_partner_cannot_be_the_partner_itself(consortium: Path) -> None:
    trunk = SparseTrunkConfig(hidden_sizes=(32,), dropouts=(0.2,))
    with pytest.raises(ConfigError, match="partner itself"):
        run_local_with_public(
            consortium / "alpha", consortium / "alpha", trunk, TrainConfig(epochs=1)
        )


def test_cli_baseline_with_public(consortium: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pharmafl.cli.main import app

    out = tmp_path / "lp"
    args = ["baseline", str(consortium / "alpha"), "--with-public", str(consortium / "public")]
    res = CliRunner().invoke(app, [*args, "--out", str(out), "--epochs", "2", "--hidden", "16"])
    assert res.exit_code == 0, res.output
    assert "test: roc_auc" in res.output
    saved = MetricsReport.model_validate_json((out / "metrics.json").read_text())
    assert saved.model_name == PUBLIC_REFERENCE and saved.head == "alpha"


def test_public_data_prepared_under_another_key_is_refused(
    consortium: Path, tmp_path: Path
) -> None:
    import shutil

    for name, digest in (("alpha", "a"), ("public", "b")):
        shutil.copytree(consortium / name / "prepared", tmp_path / name / "prepared")
        (tmp_path / name / "prepared/manifest.json").write_text(
            json.dumps({"consistency_hash": digest * 64})
        )
    trunk = SparseTrunkConfig(hidden_sizes=(32,), dropouts=(0.2,))
    with pytest.raises(ConfigError, match="another consortium key") as err:
        run_local_with_public(tmp_path / "alpha", tmp_path / "public", trunk, TrainConfig(epochs=1))
    assert "manifest.json" in str(err.value.file)
    assert not (tmp_path / "alpha/models").exists()  # nothing written
