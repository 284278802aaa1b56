"""The report builder on a consortium folder: every number from its files, participation from
the ledger, partners without their files left out with a note, untrained folders refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pharmafl.accounting import ContributionResult
from pharmafl.common.errors import AccountingError
from pharmafl.evaluation.documents import MetricsReport
from pharmafl.layout import MAIN_RUN_ID, ConsortiumLayout
from pharmafl.partner.manifest import PrepareCounts
from pharmafl.report import (
    ConsortiumSummary,
    build_summary,
    load_summary,
    main_run_from_ledger,
    partner_table,
    write_report,
)
from pharmafl.report.html import report_html
from pharmafl.report.markdown import summary_tables_markdown
from pharmafl.report.partners import _ManifestCounts

from .conftest import (
    DROPPED,
    FED_GAIN,
    FOLDER_PARTNERS,
    LOCAL_PR,
    MANIFEST_COUNTS,
    REGRESSION_R2,
    SUBMITTED,
    write_consortium_folder,
)


def _ledger_participation(layout: ConsortiumLayout) -> dict[str, tuple[int, int]]:
    """Rounds submitted / dropped per partner of the main run, read straight from the file."""
    entries = [json.loads(line) for line in layout.operator.ledger.read_text().splitlines()]
    main = [e for e in entries if e["payload"].get("run_id", MAIN_RUN_ID) == MAIN_RUN_ID]
    out = {}
    for p in FOLDER_PARTNERS:
        rounds = {
            event: {
                e["payload"]["round"]
                for e in main
                if e["event"] == event and e["payload"]["partner"] == p
            }
            for event in ("update_submitted", "partner_dropped")
        }
        out[p] = (len(rounds["update_submitted"]), len(rounds["partner_dropped"]))
    return out


def test_summary_holds_every_file_of_the_folder(consortium_folder: ConsortiumLayout) -> None:
    summary = build_summary(consortium_folder.root)
    assert [p.name for p in summary.partners] == list(FOLDER_PARTNERS)
    assert summary.consortium == "folder-test"  # the roster's name
    assert summary.rounds == 2 and summary.secure_aggregation is True
    assert "federated stop: round budget" in summary.notes
    assert summary.ledger is not None and summary.ledger.verified
    assert summary.ledger.signatures_checked and summary.ledger.entries == 16
    result = ContributionResult.model_validate_json(
        consortium_folder.operator.contribution.read_bytes()
    )
    assert summary.contribution is not None and summary.contribution.method == "exact"
    for p in summary.partners:
        fed_doc = MetricsReport.model_validate_json(
            consortium_folder.partner(p.name).federated_metrics.read_bytes()
        )
        assert fed_doc.test is not None
        assert p.federated.auc_pr == pytest.approx(fed_doc.test.metric("auc_pr"))
        assert p.local.auc_pr == pytest.approx(LOCAL_PR[p.name])
        assert p.gain("auc_pr") == pytest.approx(FED_GAIN[p.name])
        assert p.pooled is not None and p.pooled.auc_pr == pytest.approx(LOCAL_PR[p.name] + 0.05)
        assert p.benefit is not None and p.benefit.metric("auc_pr") is not None
        assert {c.metric for c in p.ecdf} == {"roc_auc", "auc_pr"}
        assert p.contribution is not None and result.shapley is not None
        assert p.contribution.shapley == result.shapley[p.name]
        assert p.contribution.leave_one_out == result.leave_one_out[p.name]


def test_regression_benefit_is_summarised_with_intervals_and_shown(
    consortium_folder: ConsortiumLayout,
) -> None:
    """Partners with regression tasks get R², measured RMSE and censor-aware RMSE deltas with
    intervals over their tasks, in the summary, the console table, the Markdown and the HTML
    report, with what each counts (R² and the censor-aware RMSE can disagree: the demo showed
    R² up and the censor-aware RMSE worse, the measured RMSE says which rows moved)."""
    summary = build_summary(consortium_folder.root)
    for p in summary.partners:
        b = p.regression_benefit
        if p.name not in REGRESSION_R2:
            assert b is None
            continue
        assert b is not None and b.task_type == "regression" and b.n_tasks == 8
        r2, rmse, measured = b.metric("r2"), b.metric("rmse"), b.metric("rmse_uncensored")
        assert r2 is not None and rmse is not None and measured is not None
        assert r2.mean_delta == pytest.approx(FED_GAIN[p.name])
        assert rmse.mean_delta == pytest.approx(-FED_GAIN[p.name])
        assert measured.mean_delta == pytest.approx(-FED_GAIN[p.name])
        assert measured.mean_delta_ci95 is not None
        assert r2.mean_delta_ci95 is not None
        assert r2.mean_delta_ci95[0] <= r2.mean_delta <= r2.mean_delta_ci95[1]
    text = partner_table(summary)
    assert "alpha: regression (8 tasks) federated − local R² +0.0300" in text
    line = next(x for x in text.splitlines() if x.startswith("alpha: regression"))
    assert "RMSE measured -0.0300" in line and "RMSE censor-aware -0.0300" in line, line
    assert "RMSE censor-aware also counts a censored (<, >) value" in text
    assert "charlie: regression" not in text
    one = summary.partners[0].model_copy(
        update={
            "regression_benefit": summary.partners[0].regression_benefit.model_copy(  # type: ignore[union-attr]
                update={"n_tasks": 1}
            )
        }
    )
    assert "regression (1 task) federated" in partner_table(
        summary.model_copy(update={"partners": [one]})
    )
    none = one.model_copy(
        update={"regression_benefit": one.regression_benefit.model_copy(update={"n_tasks": 0})}  # type: ignore[union-attr]
    )
    assert "regression" not in partner_table(summary.model_copy(update={"partners": [none]}))
    md = summary_tables_markdown(summary)
    assert "Regression tasks, federated − local-only" in md and "| bravo | 8 | +0.0100 |" in md
    assert "Δ RMSE measured" in md and "Δ RMSE censor-aware" in md
    html = report_html(summary)
    assert "Regression benefit" in html and "Δ R² 95 % CI (tasks)" in html
    assert "Δ RMSE measured" in html and "Δ RMSE censor-aware" in html


def test_participation_is_counted_from_the_main_run_on_the_ledger(
    consortium_folder: ConsortiumLayout,
) -> None:
    summary = build_summary(consortium_folder.root)
    counted = {
        p.name: (p.contribution.rounds.submitted, p.contribution.rounds.dropped)
        for p in summary.partners
        if p.contribution is not None and p.contribution.rounds is not None
    }
    expected = {p: (len(SUBMITTED[p]), len(DROPPED.get(p, ()))) for p in FOLDER_PARTNERS}
    assert counted == _ledger_participation(consortium_folder) == expected
    # alpha's update in a coalition run is on the ledger too, but not in the main run.
    assert counted["alpha"] == (2, 0)
    # Each dropout's cause, from the ledger, reaches the summary and the rendered report.
    causes = {
        p.name: p.contribution.rounds.dropout_causes
        for p in summary.partners
        if p.contribution is not None and p.contribution.rounds is not None
    }
    assert causes == {
        p: ({"worker offline": len(DROPPED[p])} if DROPPED.get(p) else {}) for p in FOLDER_PARTNERS
    }
    html = report_html(summary)
    assert f"{len(DROPPED['charlie'])} (worker offline ×{len(DROPPED['charlie'])})" in html
    # Learning curves: round 1 has no score of charlie, who dropped out of it.
    curves = {c.round: c for c in summary.learning_curves}
    assert curves[1].dropped == ["charlie"]
    assert set(curves[1].metrics["valid_auc_pr"]) == {"alpha", "bravo"}
    assert curves[0].metrics["valid_auc_pr"]["bravo"] == pytest.approx(LOCAL_PR["bravo"])


def test_data_counts_come_from_the_manifest_and_a_missing_one_is_a_note(
    consortium_folder: ConsortiumLayout,
) -> None:
    summary = build_summary(consortium_folder.root)
    for name, (rows, cls_tasks, reg_tasks, labels, values) in MANIFEST_COUNTS.items():
        c = summary.partner(name).contribution
        assert c is not None and c.data is not None
        assert (c.data.compounds, c.data.tasks, c.data.measurements) == (
            rows,
            cls_tasks + reg_tasks,
            labels + values,
        )
    charlie = summary.partner("charlie").contribution
    assert charlie is not None and charlie.data is None
    assert any("charlie" in n and "manifest.json" in n for n in summary.notes)
    # The report reads the manifest without pharmafl.partner (RDKit): its view must stay a
    # subset of the real counts.
    assert set(_ManifestCounts.model_fields) <= set(PrepareCounts.model_fields)


def test_partner_without_a_baseline_is_left_out_with_a_note(
    consortium_folder: ConsortiumLayout,
) -> None:
    missing = consortium_folder.partner("bravo").local_metrics
    missing.unlink()
    summary = build_summary(consortium_folder.root)
    assert [p.name for p in summary.partners] == ["alpha", "charlie"]
    (note,) = [n for n in summary.notes if "left out" in n]
    assert "bravo" in note and str(missing) in note and "pharmafl baseline" in note
    assert all("bravo" not in c.metrics.get("valid_auc_pr", {}) for c in summary.learning_curves)
    assert summary.contribution is not None and summary.contribution.players == list(
        FOLDER_PARTNERS
    )


def test_operator_only_machine_still_gets_a_report(tmp_path: Path) -> None:
    layout = write_consortium_folder(tmp_path / "c")
    shutil.rmtree(layout.partners_dir)
    files = write_report(layout.root, tmp_path / "out")
    assert files.summary.partners == [] and files.summary.rounds == 2
    assert files.summary.learning_curves == [] or all(
        not c.metrics for c in files.summary.learning_curves
    )
    left_out = [n for n in files.summary.notes if "left out" in n]
    assert len(left_out) == 3 and all("not on this machine" in n for n in left_out)
    html = files.report_path.read_text(encoding="utf-8")
    assert all(p in html for p in FOLDER_PARTNERS) and "No partner" in html
    assert load_summary(files.summary_path) == files.summary
    assert "rounds 2" in partner_table(files.summary)


def test_unscorable_partner_is_left_out(consortium_folder: ConsortiumLayout) -> None:
    path = consortium_folder.partner("alpha").federated_metrics
    doc = MetricsReport.model_validate_json(path.read_bytes())
    path.write_text(doc.model_copy(update={"test": None}).model_dump_json())
    summary = build_summary(consortium_folder.root)
    assert [p.name for p in summary.partners] == ["bravo", "charlie"]
    assert any("alpha" in n and "evaluation quorum" in n for n in summary.notes)


def test_untrained_consortium_is_a_clear_error(tmp_path: Path) -> None:
    layout = write_consortium_folder(tmp_path / "c", trained=False)
    with pytest.raises(AccountingError, match="no finished main training run") as err:
        build_summary(layout.root)
    assert "pharmafl train" in str(err.value) and err.value.file == str(layout.operator.ledger)
    layout.operator.ledger.unlink()
    with pytest.raises(AccountingError, match="no ledger") as err:
        build_summary(layout.root)
    assert "pharmafl train" in str(err.value)
    with pytest.raises(AccountingError, match="not a consortium folder"):
        build_summary(tmp_path / "elsewhere")


def test_invalid_contribution_document_names_the_file(
    consortium_folder: ConsortiumLayout,
) -> None:
    consortium_folder.operator.contribution.write_text('{"method": "exact"}')
    with pytest.raises(AccountingError, match="ContributionResult is invalid") as err:
        build_summary(consortium_folder.root)
    assert err.value.file == str(consortium_folder.operator.contribution)


def test_a_tampered_ledger_is_reported_not_verified(consortium_folder: ConsortiumLayout) -> None:
    path = consortium_folder.operator.ledger
    lines = path.read_text().splitlines(keepends=True)
    lines[1], lines[2] = lines[2], lines[1]  # reorder two entries
    path.write_text("".join(lines))
    summary = build_summary(consortium_folder.root)
    assert summary.ledger is not None and not summary.ledger.verified
    assert summary.ledger.issue is not None


def test_caller_name_notes_and_wall_time_win(consortium_folder: ConsortiumLayout) -> None:
    summary = build_summary(
        consortium_folder.root, name="rehearsal", notes=["timings: x"], wall_seconds=12.5
    )
    assert summary.consortium == "rehearsal" and summary.wall_seconds == 12.5
    assert summary.notes[:2] == ["timings: x", "federated stop: round budget"]


def test_main_run_is_none_without_training_finished(consortium_folder: ConsortiumLayout) -> None:
    from pharmafl.ledger import read_entries

    entries = read_entries(consortium_folder.operator.ledger)
    run = main_run_from_ledger(entries)
    assert run is not None and run.participants == FOLDER_PARTNERS
    assert run.wall_seconds >= 0.0 and run.stop_reason == "round budget"
    assert main_run_from_ledger(entries[:-1]) is None
    assert main_run_from_ledger(entries, "c-alpha-bravo") is None


def test_summary_round_trips_through_write_report(consortium_folder: ConsortiumLayout) -> None:
    files = write_report(consortium_folder.root)
    assert files.summary_path.parent == consortium_folder.report
    assert files.report_path.parent == consortium_folder.report
    assert isinstance(load_summary(files.summary_path), ConsortiumSummary)
    html = files.report_path.read_text(encoding="utf-8")
    assert all(html.count(p) >= 3 for p in FOLDER_PARTNERS)


def test_no_regression_benefit_without_a_scored_regression_task() -> None:
    """Regression tasks that no fold could score (weight 0) give no benefit, not '0 tasks'."""
    from pharmafl.evaluation.documents import MetricsReport, SplitMetrics, TaskTypeMetrics
    from pharmafl.report.partners import regression_benefit

    def report(r2: float, weight: int) -> MetricsReport:
        rows = [{"task_id": t, "r2": r2, "rmse": 1 - r2, "aggregation_weight": weight}
                for t in range(3)]  # fmt: skip
        part = TaskTypeMetrics(task_type="regression", aggregate={}, per_task=rows)
        test = SplitMetrics(folds=[0], n_rows=9, regression=part)
        return MetricsReport(model_name="m", fold_va=1, fold_te=0, epochs_trained=1, test=test)

    assert regression_benefit(report(0.1, 0), report(0.3, 0)) is None
    scored = regression_benefit(report(0.1, 1), report(0.3, 1))
    assert scored is not None and scored.n_tasks == 3


def test_members_of_a_valuation_group_get_its_values(consortium_folder: ConsortiumLayout) -> None:
    """A study over valuation groups (the only kind the security rules allow from six
    partners): every member's row carries its group's values, and the console says so."""
    from pharmafl.accounting import UtilityEstimate, exact_shapley

    groups = {"alpha+bravo": ["alpha", "bravo"], "charlie": ["charlie"]}
    result = exact_shapley(
        list(groups), lambda s: UtilityEstimate(0.01 * len(s) + 0.005 * ("charlie" in s), 0.002)
    ).model_copy(update={"groups": groups})
    consortium_folder.operator.contribution.write_text(result.model_dump_json())
    summary = build_summary(consortium_folder.root)
    assert result.shapley is not None and result.shapley_ci is not None
    for p in summary.partners:
        group = "charlie" if p.name == "charlie" else "alpha+bravo"
        assert p.contribution is not None and p.contribution.group == group
        assert p.contribution.shapley == result.shapley[group]
        assert p.contribution.shapley_ci == result.shapley_ci[group]
        assert p.contribution.leave_one_out == result.leave_one_out[group]
    text = partner_table(summary)
    assert text.count("group alpha+bravo: Shapley") == 1 and "group charlie: Shapley" in text
