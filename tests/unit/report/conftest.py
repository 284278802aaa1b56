"""A realistic synthetic consortium summary, built through the real library pieces.

Four partners with made-up per-task scores (federated a little better than local-only, pooled
a little better still), a contribution study over a made-up coalition game (exact Shapley),
per-round validation means, ECDF differences and a real signed ledger.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

from pharmafl.accounting import coalition_utility, exact_shapley
from pharmafl.evaluation import benefit_summary, ecdf_difference
from pharmafl.evaluation.documents import (
    MetricsReport,
    PooledReport,
    SplitMetrics,
    TaskTypeMetrics,
)
from pharmafl.evaluation.significance import SignificanceResult
from pharmafl.layout import METRICS_FILE, ConsortiumLayout
from pharmafl.ledger import Ledger, verify_ledger
from pharmafl.partner.manifest import PrepareCounts, PrepareManifest
from pharmafl.report import (
    ConsortiumContribution,
    ConsortiumSummary,
    DataContribution,
    EcdfDifference,
    LedgerSummary,
    ModelMetrics,
    Participation,
    PartnerContribution,
    PartnerSummary,
    RoundMetrics,
)
from pharmafl.secure.identity import Identity, build_roster, write_roster

PARTNERS = ("pharma_a", "pharma_b", "pharma_c", "pharma_d")
SIZES = {"pharma_a": 1200, "pharma_b": 800, "pharma_c": 2500, "pharma_d": 400}


def _per_task(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    roc = np.clip(rng.normal(0.72 + shift, 0.07, n), 0.5, 0.99)
    pr = np.clip(rng.normal(0.55 + shift, 0.1, n), 0.1, 0.99)
    return pd.DataFrame(
        {
            "task_id": np.arange(n),
            "aggregation_weight": np.ones(n),
            "roc_auc": roc,
            "auc_pr": pr,
            "auc_pr_cal": np.clip(pr - 0.02, 0, 1),
        }
    )


def _metrics(frame: pd.DataFrame, valid_shift: float = 0.0) -> ModelMetrics:
    agg = {
        "roc_auc": float(frame["roc_auc"].mean()),
        "auc_pr": float(frame["auc_pr"].mean()),
        "auc_pr_cal": float(frame["auc_pr_cal"].mean()),
        "n_tasks": float(len(frame)),
    }
    valid = {"roc_auc": agg["roc_auc"] - valid_shift, "auc_pr": agg["auc_pr"] - valid_shift}
    return ModelMetrics.from_aggregates(agg, valid)


def _ledger(tmp: Path) -> LedgerSummary:
    ids = {p: Identity.generate(p) for p in PARTNERS}
    op = Identity.generate("operator", "operator")
    roster = build_roster(op, [i.public for i in ids.values()], consortium="demo")
    ledger = Ledger(tmp / "ledger.jsonl", roster=roster)
    for r in range(3):
        trunk = hashlib.sha256(f"trunk{r}".encode()).hexdigest()
        for p in PARTNERS:
            env = hashlib.sha256(f"{r}{p}".encode()).hexdigest()
            ledger.append(
                p, ids[p], "update_submitted", {"round": r, "partner": p, "envelope_hash": env}
            )
        ledger.append(
            "operator",
            op,
            "aggregate_applied",
            {"round": r, "trunk_hash": trunk, "contributors": list(PARTNERS)},
        )
    return LedgerSummary.from_verification(verify_ledger(ledger.path, roster))


def build_summary(tmp: Path, *, with_optional: bool = True) -> ConsortiumSummary:
    rng = np.random.default_rng(7)
    help_ = {"pharma_a": 0.012, "pharma_b": 0.008, "pharma_c": 0.02, "pharma_d": 0.004}

    def study(coalition: frozenset[str]) -> dict[str, float]:
        return {p: sum(help_[q] for q in coalition if q != p) ** 0.9 for p in coalition}

    result = exact_shapley(PARTNERS, coalition_utility(study, PARTNERS))
    partners = []
    for i, name in enumerate(PARTNERS):
        n = 20 + 5 * i
        local = _per_task(rng, n, 0.0)
        fed = local.assign(
            roc_auc=np.clip(local["roc_auc"] + rng.normal(0.015, 0.01, n), 0, 1),
            auc_pr=np.clip(local["auc_pr"] + rng.normal(0.02, 0.015, n), 0, 1),
            auc_pr_cal=np.clip(local["auc_pr_cal"] + rng.normal(0.02, 0.015, n), 0, 1),
        )
        pooled = fed.assign(
            roc_auc=np.clip(fed["roc_auc"] + 0.004, 0, 1),
            auc_pr=np.clip(fed["auc_pr"] + 0.004, 0, 1),
        )
        sig = SignificanceResult(pd.DataFrame(), n, 0.1 + 0.05 * i, 0.0, 0.05)
        benefit = benefit_summary(local, fed, "classification", significance=sig)
        ecdf = ecdf_difference(local["roc_auc"], fed["roc_auc"], np.linspace(0.4, 1.0, 61))
        partners.append(
            PartnerSummary(
                name=name,
                local=_metrics(local, 0.01),
                federated=_metrics(fed, 0.01),
                pooled=_metrics(pooled, 0.01),
                benefit=benefit if with_optional else None,
                ecdf=[EcdfDifference.from_frame(ecdf)] if with_optional else [],
                contribution=PartnerContribution.from_result(
                    result,
                    name,
                    data=DataContribution(
                        compounds=SIZES[name], tasks=n, measurements=SIZES[name] * 3
                    ),
                    rounds=Participation(submitted=3 - (i == 3), dropped=int(i == 3)),
                    compute_seconds=30.0 + 10 * i,
                ),
            )
        )
    curves = [
        RoundMetrics(
            round=r,
            metrics={
                "valid_auc_pr": {
                    p.name: p.local.auc_pr + 0.02 * (1 - np.exp(-r / 2)) for p in partners
                }
            },
        )
        for r in range(6)
    ]
    return ConsortiumSummary(
        consortium="demo <test> & co",
        secure_aggregation=True,
        rounds=6,
        wall_seconds=412.5,
        partners=partners,
        contribution=ConsortiumContribution.from_result(result),
        learning_curves=curves if with_optional else [],
        ledger=_ledger(tmp),
        notes=["synthetic numbers for tests"],
    )


@pytest.fixture
def summary(tmp_path: Path) -> ConsortiumSummary:
    return build_summary(tmp_path)


@pytest.fixture(scope="module")
def rendered_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConsortiumSummary, Path]:
    """The synthetic summary and its report.html, rendered once per test module."""
    from pharmafl.report import render_report

    tmp = tmp_path_factory.mktemp("report")
    summary = build_summary(tmp)
    return summary, render_report(summary, tmp / "report")


# --- A trained consortium folder, written file by file (for the report builder) -----------

FOLDER_PARTNERS = ("alpha", "bravo", "charlie")
#: The main run: alpha and bravo submit in both rounds, charlie drops out of round 1.
SUBMITTED = {"alpha": {0, 1}, "bravo": {0, 1}, "charlie": {0}}
DROPPED = {"charlie": {1}}
#: A partner's local-only / federated test AUC-PR means (federated better for all).
LOCAL_PR = {"alpha": 0.55, "bravo": 0.60, "charlie": 0.50}
FED_GAIN = {"alpha": 0.03, "bravo": 0.01, "charlie": 0.02}
#: Local-only mean test R² of the partners with regression tasks (federated: + FED_GAIN).
REGRESSION_R2 = {"alpha": 0.30, "bravo": 0.40}
MANIFEST_COUNTS = {"alpha": (310, 12, 4, 2100, 900), "bravo": (250, 9, 3, 1500, 400)}


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _regression(r2: float, n_tasks: int, rng: np.random.Generator) -> TaskTypeMetrics:
    """``n_tasks`` regression rows around ``r2`` (RMSE falling as R² rises)."""
    r2s = np.clip(r2 + rng.normal(0.0, 0.03, n_tasks), -1.0, 1.0)
    per_task = [
        {
            "task_id": 100 + t,
            "aggregation_weight": 1.0,
            "r2": float(r2s[t]),
            "rmse": float(1.2 - r2s[t]),
            "rmse_uncensored": float(1.1 - r2s[t]),
            "pearson_r": float(np.sqrt(max(r2s[t], 0.0))),
        }
        for t in range(n_tasks)
    ]
    agg: dict[str, float | None] = {"r2": float(r2s.mean()), "rmse": float(1.2 - r2s.mean())}
    return TaskTypeMetrics(task_type="regression", aggregate=agg, per_task=per_task)


def metrics_doc(
    model: str, auc_pr: float, n_tasks: int = 12, seed: int = 0, r2: float | None = None
) -> MetricsReport:
    """A metrics.json document with ``n_tasks`` classification tasks around ``auc_pr`` (and,
    with ``r2``, 8 regression tasks around it)."""
    rng = np.random.default_rng(seed)
    pr = np.clip(auc_pr + rng.normal(0.0, 0.02, n_tasks), 0.0, 1.0)
    pr += auc_pr - pr.mean()  # the mean is exactly auc_pr
    roc = np.clip(pr + 0.2, 0.0, 1.0)
    per_task = [
        {
            "task_id": t,
            "aggregation_weight": 1.0,
            "roc_auc": float(roc[t]),
            "auc_pr": float(pr[t]),
            "auc_pr_cal": float(pr[t]),
        }
        for t in range(n_tasks)
    ]
    agg: dict[str, float | None] = {
        "roc_auc": float(roc.mean()),
        "auc_pr": float(pr.mean()),
        "auc_pr_cal": float(pr.mean()),
        "n_tasks": float(n_tasks),
    }

    reg = None if r2 is None else _regression(r2, 8, rng)

    def split(fold: int) -> SplitMetrics:
        cls = TaskTypeMetrics(task_type="classification", aggregate=agg, per_task=per_task)
        return SplitMetrics(folds=[fold], n_rows=100, classification=cls, regression=reg)

    return MetricsReport(
        model_name=model, fold_va=3, fold_te=4, epochs_trained=2, validation=split(3), test=split(4)
    )


def _write(path: Path, doc: BaseModel) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc.model_dump_json(indent=2))


def _manifest(name: str, counts: tuple[int, int, int, int, int]) -> PrepareManifest:
    rows, cls_tasks, reg_tasks, labels, values = counts
    return PrepareManifest(
        pharmafl_version="0",
        rdkit_version="0",
        consortium_name="folder-test",
        partner_name=name,
        created_at=datetime.now(UTC),
        parameter_hash=_hex("params"),
        consistency_hash=_hex("consistency"),
        reference_hash_checked=False,
        fold_size=1024,
        nfolds=5,
        counts=PrepareCounts(
            compounds_input=rows + 5,
            compounds_standardized=rows + 2,
            compounds_rejected=3,
            measurements_input=labels + values,
            measurements_rejected=0,
            assays=cls_tasks,
            descriptor_vectors=rows,
            classification_tasks=cls_tasks,
            regression_tasks=reg_tasks,
            classification_labels=labels,
            regression_values=values,
            rows_per_fold=[rows // 5] * 5,
        ),
        files={},
        wall_seconds=1.0,
    )


def _main_run_ledger(
    ledger: Ledger, op: Identity, ids: dict[str, Identity], *, finished: bool = True
) -> None:
    """Two rounds of the main run (``finished``: and its end), and one coalition run whose
    entries must not count."""
    names = list(FOLDER_PARTNERS)
    ledger.append(
        "operator",
        op,
        "training_started",
        {
            "code_version": "0",
            "consortium_hash": _hex("consortium"),
            "parameters": {"rounds": 2},
            "initial_trunk_hash": _hex("t-init"),
            "participants": names,
            "secure_aggregation": True,
        },
    )
    for r in range(2):
        for p in names:
            if r in SUBMITTED[p]:
                env = {"round": r, "partner": p, "envelope_hash": _hex(f"{r}{p}")}
                ledger.append(p, ids[p], "update_submitted", env)
                valid = {"auc_pr": LOCAL_PR[p] + 0.01 * r}
                report = {"partner": p, "round": r, "model": "federated", "split": "valid"}
                ledger.append(p, ids[p], "evaluation_reported", report | {"metrics": valid})
            if r in DROPPED.get(p, set()):
                drop = {"round": r, "partner": p, "reason": "worker offline"}
                ledger.append("operator", op, "partner_dropped", drop)
        contributors = [p for p in names if r in SUBMITTED[p]]
        applied = {"round": r, "trunk_hash": _hex(f"t{r}"), "contributors": contributors}
        ledger.append("operator", op, "aggregate_applied", applied)
    other = {"run_id": "c-alpha-bravo", "round": 0, "partner": "alpha", "envelope_hash": _hex("c")}
    ledger.append("alpha", ids["alpha"], "update_submitted", other)
    if finished:
        end = {"rounds": 2, "final_trunk_hash": _hex("t1"), "reason": "round budget"}
        ledger.append("operator", op, "training_finished", end)


def write_consortium_folder(root: Path, *, trained: bool = True) -> ConsortiumLayout:
    """A consortium folder as `pharmafl train` and friends leave it: signed roster and ledger,
    each partner's local-only and federated metrics, manifests of alpha and bravo (not
    charlie), a pooled reference and a contribution study. ``trained=False``: the main run
    was interrupted (its ledger has no ``training_finished``)."""
    layout = ConsortiumLayout(root)
    ids = {p: Identity.generate(p) for p in FOLDER_PARTNERS}
    op = Identity.generate("operator", "operator")
    roster = build_roster(op, [i.public for i in ids.values()], consortium="folder-test")
    write_roster(roster, layout.operator.roster)
    ledger = Ledger(layout.operator.ledger, roster=roster)
    _main_run_ledger(ledger, op, ids, finished=trained)
    for i, p in enumerate(FOLDER_PARTNERS):
        partner = layout.partner(p)
        r2 = REGRESSION_R2.get(p)
        _write(partner.local_metrics, metrics_doc("local", LOCAL_PR[p], seed=i, r2=r2))
        fed_r2 = None if r2 is None else r2 + FED_GAIN[p]
        fed = metrics_doc("federated", LOCAL_PR[p] + FED_GAIN[p], seed=i, r2=fed_r2)
        _write(partner.federated_metrics, fed)
        if p in MANIFEST_COUNTS:
            _write(partner.manifest, _manifest(p, MANIFEST_COUNTS[p]))
    pooled = {p: metrics_doc("pooled", LOCAL_PR[p] + 0.05, seed=9) for p in FOLDER_PARTNERS}
    _write(layout.operator.pooled / METRICS_FILE, PooledReport(partners=pooled))
    help_ = {"alpha": 0.02, "bravo": 0.01, "charlie": 0.005}

    def study(coalition: frozenset[str]) -> dict[str, float]:
        return {p: sum(help_[q] for q in coalition if q != p) for p in coalition}

    result = exact_shapley(FOLDER_PARTNERS, coalition_utility(study, FOLDER_PARTNERS))
    _write(layout.operator.contribution, result)
    return layout


@pytest.fixture
def consortium_folder(tmp_path: Path) -> ConsortiumLayout:
    """A freshly written, trained consortium folder (see :func:`write_consortium_folder`)."""
    return write_consortium_folder(tmp_path / "consortium")
