"""A partner reads prepare's outputs by its own ids: tasks, T8c/T8r, rejections, the task list."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.data import load_catalogue, task_list
from pharmafl.ingest import ingest_partner
from pharmafl.partner.ids import COMPOUND_SEPARATOR

pytestmark = pytest.mark.slow


def _partners(root: Path) -> list[Path]:
    return sorted((root / "partners").iterdir())


def _own_ids(partner: Path) -> tuple[dict[int, str], set[str]]:
    ingested = ingest_partner(partner, workers=1)
    frame = ingested.assay_ids
    assays = dict(zip(frame["input_assay_id"], frame["original_id"], strict=True))
    return assays, set(ingested.compound_ids["original_id"])


def test_tasks_are_named_by_the_partners_assay_ids(prepared_consortium: Path) -> None:
    for partner in _partners(prepared_consortium):
        out = partner / "prepared"
        assays, _ = _own_ids(partner)
        cat = load_catalogue(out)
        assert cat.tasks
        for t in cat.tasks:
            assert t.assay_id == assays[t.input_assay_id]
            assert t.label.startswith(f"{t.assay_id} ")
            assert t.label.endswith("(cls)" if t.kind == "classification" else "(reg)")
        t8c = pd.read_csv(out / "T8c.csv", dtype={"assay_id": str})
        assert (t8c["assay_id"] == t8c["input_assay_id"].map(assays)).all()
        trained = t8c[t8c["cont_classification_task_id"].notna()]
        assert trained.sort_values("cont_classification_task_id")["task"].tolist() == (
            cat.labels("classification")
        )
        assert set(pd.read_csv(out / "T8r.csv")["task_kind"]) <= {"regression"}


def test_rejections_name_the_partners_compounds_and_assays(prepared_consortium: Path) -> None:
    steps: set[str] = set()
    for partner in _partners(prepared_consortium):
        assays, compounds = _own_ids(partner)
        report = json.loads((partner / "prepared" / "run_report.json").read_text())
        for r in report["rejections"]:
            steps.add(r["step"])
            if r["input_compound_id"] is not None:
                assert set(r["input_compound_id"].split(COMPOUND_SEPARATOR)) <= compounds, r
            if r["input_assay_id"] is not None:
                assert r["input_assay_id"] in set(assays.values()), r
    assert {"ingest", "aggregate"} <= steps  # both kinds were checked


def test_the_task_list_counts_every_label_per_fold(prepared_consortium: Path) -> None:
    out = _partners(prepared_consortium)[0] / "prepared"
    tl = task_list(out)
    cat = load_catalogue(out)
    assert [t.task for t in tl.tasks] == [t.label for t in cat.tasks] and tl.nfolds == 5
    y = sp.load_npz(out / "cls_T10_y.npz")
    for t, info in zip(tl.tasks, cat.tasks, strict=True):
        assert t.trained and t.assay_id == info.assay_id
        if t.kind == "classification":
            col = y[:, t.task_id].toarray().ravel()
            assert (t.actives, t.inactives) == (int((col > 0).sum()), int((col < 0).sum()))
            assert sum(f.actives or 0 for f in t.per_fold) == t.actives == info.num_actives
        else:
            assert sum(f.values or 0 for f in t.per_fold) == t.values == info.num_total
        assert t.evaluated == (info.aggregation_weight > 0)
        assert (t.note is None) == t.evaluated
    everything = task_list(out, untrained=True)
    untrained = [t for t in everything.tasks if not t.trained]
    assert len(untrained) == everything.n_candidates_untrained > 0
    assert all(t.note and "training quorum" in t.note and not t.per_fold for t in untrained)


def test_the_task_list_of_a_half_prepared_folder_says_what_is_missing(
    prepared_consortium: Path, tmp_path: Path
) -> None:
    import shutil

    from pharmafl.common.errors import DataNotFoundError

    out = tmp_path / "prepared"
    shutil.copytree(_partners(prepared_consortium)[0] / "prepared", out)
    (out / "reg_T10_censor_y.npz").unlink()
    with pytest.raises(DataNotFoundError, match="censor flags not found") as err:
        task_list(out)
    assert "reg_T10_censor_y.npz" in str(err.value) and "pharmafl prepare" in str(err.value)
    (out / "cls_T11_fold_vector.npy").unlink()
    with pytest.raises(DataNotFoundError, match="fold vector not found") as err:
        task_list(out)
    assert "cls_T11_fold_vector.npy" in str(err.value)


def test_pharmafl_tasks_prints_a_table_and_json(prepared_consortium: Path) -> None:
    partner = _partners(prepared_consortium)[0]
    runner = CliRunner()
    table = runner.invoke(app, ["tasks", str(partner)])
    assert table.exit_code == 0, table.output
    first = load_catalogue(partner / "prepared").tasks[0]
    assert first.label in table.output and "per fold" in table.output
    doc = runner.invoke(app, ["tasks", str(partner), "--json", "--all"])
    assert doc.exit_code == 0, doc.output
    parsed = json.loads(doc.output)
    assert parsed["format"] == "pharmafl.task_list/1"
    assert sum(not t["trained"] for t in parsed["tasks"]) == parsed["n_candidates_untrained"]
