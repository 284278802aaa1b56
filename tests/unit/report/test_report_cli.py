"""``pharmafl report``: the table and the files on a consortium folder, one clean error line on
bad input, and the real command after a real (small) federated run without the demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.layout import MAIN_RUN_ID, ConsortiumLayout
from pharmafl.report import load_summary

from .conftest import FOLDER_PARTNERS, write_consortium_folder

PHARMAFL = str(Path(sys.executable).with_name("pharmafl"))


def test_report_prints_the_table_and_writes_both_files(
    consortium_folder: ConsortiumLayout, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["report", str(consortium_folder.root), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for p in FOLDER_PARTNERS:
        assert any(line.startswith(p) for line in lines), result.output
    assert f"wrote {out / 'summary.json'} and {out / 'report.html'}" in result.output
    assert "note: partner charlie: no data counts" in result.output
    summary = load_summary(out)
    assert [p.name for p in summary.partners] == list(FOLDER_PARTNERS)
    assert not consortium_folder.report.exists()  # --out, not the default folder


@pytest.mark.parametrize("case", ["not a consortium", "interrupted"])
def test_bad_input_is_one_error_line_and_a_nonzero_exit(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "c"
    if case == "interrupted":
        write_consortium_folder(folder, trained=False)
    res = subprocess.run(
        [PHARMAFL, "report", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stderr.startswith("error:")
    expected = "not a consortium folder" if case == "not a consortium" else "pharmafl train"
    assert expected in res.stderr
    assert not (folder / "report").exists()


# --- End to end: simulate, prepare, baselines, `pharmafl train`'s flow, `pharmafl report` ---


@pytest.fixture(scope="module")
def trained_consortium(
    tmp_path_factory: pytest.TempPathFactory, consortium_key_file: Path
) -> ConsortiumLayout:
    """Three simulated FS-Mol partners (≈300 compounds, an evaluation quorum of 3 so that each
    has scorable test tasks: the shared prepared fixture's quorum of 10 leaves none), each
    with a local-only baseline, and a 1-round main run through the training flow."""
    from prefect.testing.utilities import prefect_test_harness

    from flows.train import run_train
    from pharmafl.common.params import ConsortiumParameters, EvaluationQuorum, TaskParams
    from pharmafl.contract import FederationPlan, LocalTrainingSpec, SparseTrunkConfig
    from pharmafl.model import TrainConfig, run_baseline
    from pharmafl.partner import PrepareOptions, prepare_partner
    from pharmafl.simulate import SimulationSpec, simulate_consortium
    from pharmafl.simulate.federation import setup_federation

    layout = ConsortiumLayout(tmp_path_factory.mktemp("report-e2e") / "c")
    quorum = EvaluationQuorum(num_active_fold_min=3, num_inactive_fold_min=3)
    simulate_consortium(
        layout.root,
        SimulationSpec(dataset="fsmol", partners=3, max_compounds=300, seed=7),
        workers=1,
        key_file=consortium_key_file,
        parameters=ConsortiumParameters(
            consortium_name="report-e2e", tasks=TaskParams(evaluation_quorum=quorum)
        ),
    )
    trunk = SparseTrunkConfig(hidden_sizes=(32,), dropouts=(0.1,))
    for folder in layout.partner_dirs().values():
        prepare_partner(folder, PrepareOptions(workers=1))
        train = TrainConfig(epochs=2, batch_size=128, lr_steps=(), selection_metric="auc_pr")
        run_baseline(folder, trunk, train, checkpoint=False)
    plan = FederationPlan(
        rounds=1,
        trunk=trunk.model_dump(mode="json"),
        local=LocalTrainingSpec(epochs=1, batch_size=128, head_finetune_epochs=1),
        stage_timeout_s=60,
    )
    setup_federation(layout.root, plan)
    with prefect_test_harness(server_startup_timeout=120):
        run_train(layout.root)
    return layout


@pytest.mark.slow
@pytest.mark.integration
def test_report_after_a_real_run_without_the_demo(trained_consortium: ConsortiumLayout) -> None:
    layout = trained_consortium
    res = subprocess.run(
        [PHARMAFL, "report", str(layout.root)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    summary = json.loads((layout.report / "summary.json").read_text())
    names = [p["name"] for p in summary["partners"]]
    assert names == ["alpha", "bravo", "charlie"]
    assert summary["rounds"] == 1 and summary["secure_aggregation"] is True
    assert summary["consortium"] == "report-e2e"
    assert summary["ledger"]["verified"] is True and summary["ledger"]["signatures_checked"]
    entries = [json.loads(line) for line in layout.operator.ledger.read_text().splitlines()]
    main = [e["payload"] for e in entries if e["payload"].get("run_id") == MAIN_RUN_ID]
    for p in summary["partners"]:
        submitted = {
            e["round"] for e in main if e.get("partner") == p["name"] and "envelope_hash" in e
        }
        rounds = {"submitted": len(submitted), "dropped": 0, "dropout_causes": {}}
        assert p["contribution"]["rounds"] == rounds
        assert len(submitted) == 1
        assert p["contribution"]["data"]["compounds"] > 0
        assert 0.0 <= p["federated"]["auc_pr"] <= 1.0 and 0.0 <= p["local"]["auc_pr"] <= 1.0
        assert p["benefit"] is not None and len(p["ecdf"]) == 2
    assert [c["round"] for c in summary["learning_curves"]] == [0]
    html = (layout.report / "report.html").read_text(encoding="utf-8")
    assert all(html.count(name) >= 3 for name in names)
    for name in names:
        assert any(line.startswith(name) for line in res.stdout.splitlines()), res.stdout
