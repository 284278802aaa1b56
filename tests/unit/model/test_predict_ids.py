"""``pharmafl predict`` speaks the partner's language: its ids in, its task names out, and it
says (and chooses sensibly) which model it used."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.common.errors import ConfigError, DataNotFoundError, ModelError
from pharmafl.common.params import ConsortiumParameters, FingerprintParams
from pharmafl.common.secret import write_new_consortium_key
from pharmafl.data import CATALOGUE_FILE, TaskCatalogue, TaskInfo
from pharmafl.model.inputs import read_structures
from pharmafl.model.select import available_models, default_model, resolve_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TINY = ["--hidden", "16", "--dropout", "0.1", "--batch-ratio", "0.2", "--threads", "1"]
SMILES = ["CCOc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "C1CC"]


def write_catalogue(prepared: Path, n_cls: int, n_reg: int) -> None:
    """A catalogue naming a synthetic preparation's tasks ASSAY-00 … (its writer has none)."""

    def task(kind: str, j: int) -> TaskInfo:
        label = f"ASSAY-{j:02d} >=6 (cls)" if kind == "classification" else f"ASSAY-{j:02d} (reg)"
        return TaskInfo.model_validate(
            dict(kind=kind, task_id=j, input_assay_id=j, assay_id=f"ASSAY-{j:02d}", label=label,
                 assay_type="OTHER", threshold=6.0 if kind == "classification" else None,
                 is_auxiliary=False, training_weight=1.0, aggregation_weight=1.0,
                 evaluation_quorum_ok=True, num_total=10, num_fold_min=1)
        )  # fmt: skip

    tasks = [task("classification", j) for j in range(n_cls)]
    tasks += [task("regression", j) for j in range(n_reg)]
    cat = TaskCatalogue(n_classification_tasks=n_cls, n_regression_tasks=n_reg, tasks=tasks)
    (prepared / CATALOGUE_FILE).write_text(cat.model_dump_json())


@pytest.fixture(scope="module")
def partner(tmp_path_factory, small_prepared) -> Path:
    """A partner with a task catalogue, a local model and a 'federated' one (another
    baseline written where the federated run puts its model)."""
    pdir = tmp_path_factory.mktemp("ids") / "partner_b"
    shutil.copytree(small_prepared / "prepared", pdir / "prepared")
    write_catalogue(pdir / "prepared", 8, 3)
    params = ConsortiumParameters(fingerprint=FingerprintParams(fold_size=512))
    (pdir / "consortium.json").write_text(params.model_dump_json())
    write_new_consortium_key(pdir / "key.json")
    runner = CliRunner()
    for out in (None, pdir / "models" / "federated" / "model"):
        extra = ["--out", str(out), "--seed", "3"] if out else []
        res = runner.invoke(app, ["baseline", str(pdir), "--epochs", "1", *TINY, *extra])
        assert res.exit_code == 0, res.output + repr(res.exception)
    return pdir


def _predict(pdir: Path, inp: Path, out: Path, *args: str) -> str:
    res = CliRunner().invoke(
        app, ["predict", str(pdir), "--input", str(inp), "--out", str(out), *args]
    )
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def _smiles_file(tmp_path: Path) -> Path:
    """A one-column export: the structures and no id column."""
    inp = tmp_path / "in.csv"
    pd.DataFrame({"smiles": SMILES}).to_csv(inp, index=False)
    return inp


def test_columns_are_named_by_task_and_the_federated_model_is_the_default(
    partner: Path, tmp_path: Path
) -> None:
    inp = tmp_path / "in.csv"
    pd.DataFrame({"Sample ID": ["S-1", "S-2", "S-3"], "Smiles": SMILES}).to_csv(inp, index=False)
    output = _predict(partner, inp, tmp_path / "p.csv")
    assert "model: federated (" in output and "head local" in output
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert list(table.columns[:2]) == ["row", "Sample ID"]
    assert table["Sample ID"].tolist() == ["S-1", "S-2", "S-3"]
    assert "ASSAY-00 >=6 (cls)" in table.columns and "ASSAY-02 (reg)" in table.columns
    assert not any(c.startswith("cls_") for c in table.columns)
    tasks = pd.read_csv(tmp_path / "p-tasks.csv")
    assert tasks["task"].tolist()[:2] == ["ASSAY-00 >=6 (cls)", "ASSAY-01 >=6 (cls)"]
    assert tasks["assay_id"].tolist()[-1] == "ASSAY-02" and len(tasks) == 11
    local = _predict(partner, inp, tmp_path / "l.csv", "--model", "local")
    assert "model: local (" in local


def test_long_format_has_one_row_per_compound_and_task(partner: Path, tmp_path: Path) -> None:
    inp = tmp_path / "in.csv"
    pd.DataFrame({"compound": ["a", "b", "c"], "smiles": SMILES}).to_csv(inp, index=False)
    _predict(partner, inp, tmp_path / "long.csv", "--long", "--mc-samples", "2")
    table = pd.read_csv(tmp_path / "long.csv", keep_default_na=False)
    ok = table[table["status"] == "ok"]
    assert len(ok) == 2 * 11 and set(ok["compound"]) == {"a", "b"}
    assert {"task", "assay_id", "kind", "threshold", "prediction", "std"} <= set(table.columns)
    bad = table[table["status"] == "error"]
    assert bad["compound"].tolist() == ["c"] and bad["task"].tolist() == [""]


def test_id_columns_are_recognised_or_named(tmp_path: Path) -> None:
    inp = tmp_path / "in.csv"
    pd.DataFrame(
        {"Name": ["n1"], "Compound ID": ["c1"], "batch": ["b1"], "SMILES": ["CCO"]}
    ).to_csv(inp, index=False)
    assert list(read_structures(inp).ids.columns) == ["Name", "Compound ID"]
    assert list(read_structures(inp, ["batch"]).ids.columns) == ["batch"]
    with pytest.raises(ConfigError, match="not in the input"):
        read_structures(inp, ["Sample ID"])
    with pytest.raises(DataNotFoundError, match="input structure file not found"):
        read_structures(tmp_path / "typo.csv")
    semi = tmp_path / "excel.csv"
    semi.write_text("ID;SMILES\nx1;CCO\n", encoding="utf-8")
    got = read_structures(semi)
    assert got.ids["ID"].tolist() == ["x1"] and got.smiles == ["CCO"]


def _two_heads(src: Path, dest: Path) -> None:
    """A copy of the model folder in ``src`` whose hyperparameters list two heads of other
    names (which head to use is chosen from them, before any weight is read)."""
    shutil.copytree(src, dest)
    hp = json.loads((dest / "hyperparameters.json").read_text())
    head = hp["model"]["heads"].pop("local")
    hp["model"]["heads"] = {"pooled_x": head, "pooled_y": head}
    (dest / "hyperparameters.json").write_text(json.dumps(hp))


def test_model_choice_names_what_it_used_or_what_is_missing(partner: Path, tmp_path: Path) -> None:
    assert default_model(partner).name == "federated"
    assert [m.name for m in available_models(partner)] == ["local", "federated"]
    local = resolve_model(partner, "local")
    assert local.path == partner / "models" / "local" and local.head == "local"
    assert resolve_model(partner, str(local.path)).name == "local"  # a folder works too
    with pytest.raises(DataNotFoundError, match="no pooled model"):
        resolve_model(partner, "pooled")
    with pytest.raises(DataNotFoundError, match="not a saved model folder"):
        resolve_model(partner, str(tmp_path))
    with pytest.raises(ModelError, match="no head 'alpha'"):
        resolve_model(partner, "local", head="alpha")
    pooled = tmp_path / "pooled"  # a model of two other partners' heads, none of this one
    _two_heads(partner / "models" / "local", pooled)
    with pytest.raises(ModelError, match=r"several heads \(pooled_x, pooled_y\) and none"):
        resolve_model(partner, str(pooled))
    assert resolve_model(partner, str(pooled), head="pooled_y").head == "pooled_y"
    with pytest.raises(DataNotFoundError, match="no trained model"):
        default_model(tmp_path)


def test_a_model_of_another_preparation_is_refused(partner: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(partner, other)
    write_catalogue(other / "prepared", 5, 3)
    inp = _smiles_file(tmp_path)
    res = CliRunner().invoke(
        app, ["predict", str(other), "--input", str(inp), "--out", str(tmp_path / "o.csv")]
    )
    assert res.exit_code != 0 and isinstance(res.exception, ModelError)
    assert "another preparation" in str(res.exception)


def test_negative_mc_samples_are_refused(partner: Path, tmp_path: Path) -> None:
    from pharmafl.model.predict import predict_structures

    inp = _smiles_file(tmp_path)
    with pytest.raises(ConfigError, match="mc_samples must be >= 0, got -1"):
        predict_structures(partner, inp, tmp_path / "o.csv", mc_samples=-1)
    assert not (tmp_path / "o.csv").exists()


def test_a_model_for_another_fingerprint_size_is_refused(partner: Path, tmp_path: Path) -> None:
    from pharmafl.common.params import ConsortiumParameters, FingerprintParams
    from pharmafl.model.predict import predict_structures

    inp = _smiles_file(tmp_path)
    other = ConsortiumParameters(fingerprint=FingerprintParams(fold_size=1024))
    with pytest.raises(ModelError, match="expects 512 features but the consortium fingerprint"):
        predict_structures(partner, inp, tmp_path / "o.csv", params=other)
