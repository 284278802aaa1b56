"""report.html is self-contained with ≥ 3 figures; markdown tables; summary I/O."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pharmafl.accounting import AccountingError, permutation_shapley
from pharmafl.report import (
    MIN_GAP,
    SCHEMA_MODELS,
    ConsortiumContribution,
    ConsortiumSummary,
    LedgerSummary,
    ModelMetrics,
    PartnerContribution,
    PartnerSummary,
    compute_gap_capture,
    load_summary,
    partner_table,
    render_report,
    report_html,
    summary_tables_markdown,
    write_summary,
)
from pharmafl.schema_registry import SCHEMA_DIR, render_schema

_IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def pngs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in _IMG.findall(html)]


def test_report_is_self_contained_with_figures(
    rendered_report: tuple[ConsortiumSummary, Path],
) -> None:
    summary, path = rendered_report
    assert path.name == "report.html"
    html = path.read_text(encoding="utf-8")
    images = pngs(html)
    assert len(images) >= 4  # performance, ECDF, learning curves, contribution
    assert all(img.startswith(b"\x89PNG\r\n\x1a\n") and len(img) > 5000 for img in images)
    for p in summary.partners:
        assert html.count(p.name) >= 3  # performance, benefit and contribution tables
        if p.benefit is not None:
            pr = next(m for m in p.benefit.metrics if m.metric == "auc_pr")
            assert pr.mean_delta_ci95 is not None
            lo, hi = pr.mean_delta_ci95
            assert f"{lo:+.3f} … {hi:+.3f}" in html  # the task-bootstrap interval is shown
    assert "demo &lt;test&gt; &amp; co" in html and "<test>" not in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "default-src 'none'" in html
    assert "Shapley values add up to v(N) − v(∅)" in html
    assert summary.ledger is not None and summary.ledger.head_hash in html


def test_minimal_summary_renders(tmp_path: Path) -> None:
    metrics = ModelMetrics(roc_auc=0.7, auc_pr=0.5)
    better = ModelMetrics(roc_auc=0.72, auc_pr=0.53)
    summary = ConsortiumSummary(
        secure_aggregation=False,
        rounds=2,
        wall_seconds=10.0,
        partners=[
            PartnerSummary(name="a", local=metrics, federated=better),
            PartnerSummary(name="b", local=better, federated=metrics),
        ],
    )
    assert summary.gap_capture is None
    html = render_report(summary, tmp_path).read_text(encoding="utf-8")
    assert len(pngs(html)) == 1
    assert "No contribution study was run" in html and "No ledger summary" in html
    assert "secure aggregation OFF" in html
    assert "1 / 2" in html  # partners at or above local-only


def _with_study(summary: ConsortiumSummary, result: Any) -> ConsortiumSummary:
    """``summary`` with the values of a contribution study's ``result``."""
    partners = [
        p.model_copy(update={"contribution": PartnerContribution.from_result(result, p.name)})
        for p in summary.partners
    ]
    studied = summary.model_copy(
        update={"partners": partners, "contribution": ConsortiumContribution.from_result(result)}
    )
    return ConsortiumSummary.model_validate(studied.model_dump())


def test_sampled_contribution_shows_intervals(summary: ConsortiumSummary) -> None:
    names = [p.name for p in summary.partners]
    result = permutation_shapley(names, lambda s: len(s) ** 0.5, rng=1, n_permutations=20)
    html = report_html(_with_study(summary, result))
    assert "permutation-sampling estimate (20 orderings" in html
    lo, hi = result.shapley_ci[names[0]]  # type: ignore[index]
    assert f"[{lo:.4f}, {hi:.4f}]" in html


def test_markdown_tables(summary: ConsortiumSummary) -> None:
    text = summary_tables_markdown(summary)
    assert text.startswith("# Consortium summary — demo <test> & co")
    for p in summary.partners:
        assert sum(line.startswith(f"| {p.name} |") for line in text.splitlines()) == 2
    assert "| --- | ---: |" in text and "Method: exact" in text
    assert "gap captured: **" in text and "**Ledger:** 15 entries, verified" in text


def test_gap_capture_and_invariants(summary: ConsortiumSummary) -> None:
    fed = [p.federated.auc_pr - p.local.auc_pr for p in summary.partners]
    pooled = [p.pooled.auc_pr - p.local.auc_pr for p in summary.partners]  # type: ignore[union-attr]
    assert summary.gap_capture == pytest.approx(sum(fed) / sum(pooled))
    # an auxiliary public partner's gain is nobody's benefit: left out of the capture
    aux = [summary.partners[0].model_copy(update={"auxiliary": True}), *summary.partners[1:]]
    assert compute_gap_capture(aux) == pytest.approx(sum(fed[1:]) / sum(pooled[1:]))
    # a gap of the size of the noise gives no ratio (it once read several hundred per cent)
    for gap, shown in ((MIN_GAP - 1e-4, False), (MIN_GAP + 1e-4, True), (-0.01, False)):
        near = [
            p.model_copy(
                update={"pooled": p.local.model_copy(update={"auc_pr": p.local.auc_pr + gap})}
            )
            for p in summary.partners
        ]
        capture = compute_gap_capture(near)
        assert (capture is not None) == shown, (gap, capture)
        if shown:
            assert capture == pytest.approx(sum(fed) / len(fed) / gap)
    assert aux[0].label.endswith("(auxiliary)") and aux[1].label == aux[1].name
    doc = summary.model_dump()
    doc["partners"][0]["contribution"]["shapley"] += 0.01
    with pytest.raises(ValueError, match="Shapley values sum to"):
        ConsortiumSummary.model_validate(doc)
    doc = summary.model_dump()
    doc["partners"][1]["name"] = doc["partners"][0]["name"]
    with pytest.raises(ValueError, match="unique"):
        ConsortiumSummary.model_validate(doc)
    doc = summary.model_dump()
    doc["learning_curves"][0]["metrics"]["valid_auc_pr"]["pharma_x"] = 0.5
    with pytest.raises(ValueError, match="unknown partner"):
        ConsortiumSummary.model_validate(doc)
    doc = summary.model_dump()
    doc["partners"][0]["ecdf"][0]["difference"].pop()
    with pytest.raises(ValueError, match="same length"):
        ConsortiumSummary.model_validate(doc)
    doc = summary.model_dump()
    grid = doc["partners"][0]["ecdf"][0]["grid"]
    grid[0], grid[1] = grid[1], grid[0]
    with pytest.raises(ValueError, match="grid must be strictly increasing"):
        ConsortiumSummary.model_validate(doc)
    doc = summary.model_dump()
    doc["partners"][0]["ecdf"][0]["difference"][0] = 1.5
    with pytest.raises(ValueError, match=r"ECDF differences lie in \[-1, 1\]"):
        ConsortiumSummary.model_validate(doc)
    # the members of a valuation group share its one value
    doc = summary.model_dump()
    for p, v in zip(doc["partners"][:2], (0.01, 0.02), strict=True):
        p["contribution"].update(group="g", shapley=v)
    with pytest.raises(ValueError, match="members of valuation group g show different values"):
        ConsortiumSummary.model_validate(doc)


def test_metrics_from_evaluation_aggregates() -> None:
    m = ModelMetrics.from_aggregates(
        {"roc_auc": 0.8, "auc_pr": 0.6, "auc_pr_cal": float("nan"), "n_tasks": 12.0},
        {"roc_auc": 0.79, "auc_pr": float("nan")},
    )
    assert (m.auc_pr_cal, m.n_tasks, m.valid_roc_auc, m.valid_auc_pr) == (None, 12, 0.79, None)


def test_failed_ledger_is_shown(summary: ConsortiumSummary) -> None:
    bad = summary.model_copy(
        update={
            "ledger": LedgerSummary(
                entries=15, verified=False, issue="entry 4 (reordered): line 5 holds entry 6"
            )
        }
    )
    html = report_html(bad)
    assert "NOT verified" in html and "entry 4 (reordered)" in html
    assert "NOT verified (entry 4 (reordered)" in summary_tables_markdown(bad)


def test_summary_round_trip_and_schema(summary: ConsortiumSummary, tmp_path: Path) -> None:
    path = write_summary(summary, tmp_path / "report")
    assert path == tmp_path / "report" / "summary.json"
    assert load_summary(path) == summary == load_summary(tmp_path / "report")
    schema = json.loads((SCHEMA_DIR / "consortium_summary.schema.json").read_text())
    jsonschema.validate(json.loads(path.read_text()), schema)
    with pytest.raises(AccountingError, match="not found"):
        load_summary(tmp_path / "nowhere.json")
    doc = json.loads(path.read_text())
    doc["partners"][0]["local"]["roc_auc"] = 1.5
    path.write_text(json.dumps(doc))
    with pytest.raises(AccountingError, match=r"partners\.0\.local\.roc_auc"):
        load_summary(path)


@pytest.mark.parametrize("stem", sorted(SCHEMA_MODELS))
def test_committed_schema_is_fresh(stem: str) -> None:
    path = SCHEMA_DIR / f"{stem}.schema.json"
    assert path.is_file(), f"missing {path.name}: regenerate the schemas"
    assert path.read_text(encoding="utf-8") == render_schema(SCHEMA_MODELS[stem])


def test_learning_curves_from_ledger(tmp_path: Path) -> None:
    from pharmafl.ledger import Ledger, read_entries
    from pharmafl.report import learning_curves_from_ledger
    from pharmafl.secure.identity import Identity

    ids = {p: Identity.generate(p) for p in ("a", "b")}
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for r in range(3):
        for p, ident in ids.items():
            if r == 2 and p == "b":
                continue
            ledger.append(
                p,
                ident,
                "evaluation_reported",
                {
                    "partner": p,
                    "round": r,
                    "model": "federated",
                    "split": "valid",
                    "metrics": {"auc_pr": 0.5 + 0.01 * r, "roc_auc": 0.7},
                },
            )
    op = Identity.generate("op", "operator")
    ledger.append("op", op, "partner_dropped", {"round": 2, "partner": "b", "reason": "timeout"})
    ledger.append(
        "a",
        ids["a"],
        "evaluation_reported",
        {"partner": "a", "model": "federated", "split": "test", "metrics": {"auc_pr": 0.6}},
    )
    curves = learning_curves_from_ledger(read_entries(ledger.path))
    assert [c.round for c in curves] == [0, 1, 2]
    assert curves[1].metrics == {
        "valid_auc_pr": {"a": 0.51, "b": 0.51},
        "valid_roc_auc": {"a": 0.7, "b": 0.7},
    }
    assert curves[2].metrics["valid_auc_pr"] == {"a": 0.52} and curves[2].dropped == ["b"]
    assert learning_curves_from_ledger(read_entries(ledger.path), run_id="other") == []


def test_privacy_loss_is_shown_per_partner(summary: ConsortiumSummary) -> None:
    from pharmafl.accounting import PartnerPrivacy
    from pharmafl.report.html import report_html

    rows = [
        PartnerPrivacy(partner="alpha", aggregates=12, runs=3, epsilon=4.25, delta=1e-6),
        PartnerPrivacy(partner="bravo", aggregates=9, runs=2, epsilon=None, delta=None),
    ]
    html = report_html(summary.model_copy(update={"privacy": rows}))
    assert "Privacy loss" in html and "4.25" in html and "unbounded (no DP)" in html
    assert "Privacy loss" not in report_html(summary.model_copy(update={"privacy": []}))


def test_auxiliary_partners_are_read_from_the_simulation_manifest(tmp_path: Path) -> None:
    from pharmafl.layout import ConsortiumLayout
    from pharmafl.report.build import _auxiliary

    layout = ConsortiumLayout(tmp_path)
    assert _auxiliary(layout) == set()  # a real consortium: no simulation.json
    manifest = {"partners": [{"name": "alpha"}, {"name": "public", "auxiliary": True}]}
    layout.simulation.write_text(json.dumps(manifest))
    assert _auxiliary(layout) == {"public"}
    for bad in ("[]", '{"partners": [{"auxiliary": true}]}', "{not json"):
        layout.simulation.write_text(bad)
        assert _auxiliary(layout) == set()


def test_the_grand_coalition_shows_its_interval_and_the_main_runs_gain(
    summary: ConsortiumSummary,
) -> None:
    """A study whose utilities carry standard errors: v(N) with its interval, each group's
    interval, and the main run's gain measured as v(N) is, beside it."""
    from pharmafl.accounting import UtilityEstimate, exact_shapley

    names = [p.name for p in summary.partners]
    result = exact_shapley(names, lambda s: UtilityEstimate(0.01 * len(s), 0.002 * len(s)))
    assert result.grand_coalition_ci is not None and result.shapley_ci is not None
    html = report_html(_with_study(summary, result))
    lo, hi = result.grand_coalition_ci
    assert f"v(N) = {result.grand_coalition_utility:.4f} [{lo:.4f}, {hi:.4f}]" in html
    lo, hi = result.shapley_ci[names[0]]
    assert f"[{lo:.4f}, {hi:.4f}]" in html
    gains = [p.gain("auc_pr") or 0.0 for p in summary.partners]
    assert f"The main run, measured the same way: {sum(gains) / len(gains):.4f}." in html
    console = partner_table(_with_study(summary, result))
    lo, hi = result.grand_coalition_ci
    assert f"v(N) = {result.grand_coalition_utility:+.4f} (95% CI {lo:+.4f}…{hi:+.4f})" in console
    assert f"the main run, measured the same way: {sum(gains) / len(gains):+.4f}" in console
    lo, hi = result.shapley_ci[names[0]]
    assert f"partner {names[0]}: Shapley {result.shapley[names[0]]:+.4f} (95% CI " in console
    assert f"{lo:+.4f}…{hi:+.4f})" in console
    # a partner of the study without a row here: v(N) is over it too, so no comparison
    fewer = _with_study(summary, result).model_copy(update={"partners": summary.partners[1:]})
    assert "The main run, measured the same way" not in report_html(fewer)
