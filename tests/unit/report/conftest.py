"""A realistic synthetic consortium summary, built through the real library pieces.

Four partners with made-up per-task scores (federated a little better than local-only, pooled
a little better still), a contribution study over a made-up coalition game (exact Shapley),
per-round validation means, ECDF differences and a real signed ledger.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pharmafl.accounting import coalition_utility, exact_shapley
from pharmafl.evaluation import benefit_summary, ecdf_difference
from pharmafl.evaluation.significance import SignificanceResult
from pharmafl.ledger import Ledger, verify_ledger
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
from pharmafl.secure.identity import Identity, build_roster

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
