"""``pharmafl demo``: a whole consortium on one machine, from public data to the report.

Simulates a 4-partner consortium from FS-Mol, prepares every partner (its own flow, its own
folder), trains each partner's local-only baseline, runs federated training with secure
aggregation (embedded launcher: partners in threads, only envelopes through
``DIR/exchange``), trains the pooled reference (the simulation's upper bound), runs the
contribution study (every coalition trained federatedly: exact Shapley and leave-one-out
values), and writes
``DIR/report/summary.json`` + ``report.html``. Every step is the same code a real consortium
runs; only the sizes differ between the default and ``--quick``.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import ConfigError

log = logging.getLogger(__name__)


class DemoConfig(BaseModel):
    """Sizes and hyperparameters of the demo consortium."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field("fsmol", description="Public dataset to simulate from.")
    source: str | None = Field(
        None, description="Any file of a supported shape instead of the dataset (own data)."
    )
    target_family: str | None = Field(
        "kinase",
        description="FS-Mol: keep only assays of this protein super-family. Real consortia "
        "overlap on target families (every pharma runs kinase assays); a random split of all "
        "1,700 FS-Mol targets gives partners little to learn from each other at demo size. "
        "None = all assays.",
    )
    partners: int = Field(4, ge=2, le=26)
    max_compounds: int = Field(5000, ge=100, description="Compounds per partner (cap).")
    seed: int = Field(0, ge=0)
    key_file: str | None = Field(
        None,
        description="Existing consortium key file (mode 600) instead of a fresh random key: "
        "same key and seed, same folds and tasks (a reproducible rehearsal).",
    )
    strategy: str = Field("hash", description="Assay assignment: hash or family.")
    hidden: int = Field(500, ge=8, description="Trunk width (one sparse hidden layer).")
    dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)
    local_epochs: int = Field(25, ge=1, description="Baseline/pooled epoch budget.")
    patience: int = Field(4, ge=1, description="Early-stopping patience (epochs).")
    rounds: int = Field(8, ge=1, description="Federated round budget.")
    round_epochs: float = Field(2.0, gt=0, description="Local epochs per federated round.")
    fed_patience: int = Field(3, ge=1, description="Rounds without validation improvement.")
    server_optimizer: str = Field("fedavg")
    final_trunk: Literal["best", "last"] = Field(
        "last",
        description="Trunk the partners fine-tune their heads on after the last round (see "
        "FederationPlan.final_trunk).",
    )
    head_finetune_epochs: int = Field(10, ge=0)
    study_rounds: int = Field(
        1,
        ge=1,
        description="Contribution study: federated rounds per coalition (every coalition of "
        "≥ 2 partners is trained, securely aggregated, for exact Shapley values). A truncated-"
        "training estimate: 11 coalitions at 2 rounds took 240 s of the 10-minute budget; "
        "`pharmafl contribution --rounds` runs a longer study afterwards.",
    )
    study_parallel: int = Field(2, ge=1, le=8, description="Coalitions trained at a time.")
    contribution: bool = Field(True, description="Run the contribution study.")
    workers: int = Field(0, ge=0, description="Preparation processes (0 = all cores).")
    eval_fold_min: int = Field(
        5,
        ge=1,
        description="Evaluation quorum: actives and inactives per fold. MELLODDY uses 10 for "
        "pharma-sized partners; simulated partners of a few thousand compounds have few "
        "assays with 10/10 in every fold, so the demo counts tasks with 5/5.",
    )

    @classmethod
    def quick(cls, **overrides: Any) -> DemoConfig:
        """A smaller consortium and shorter rounds (same code paths).

        8 rounds of 1 local epoch and the default 10 head fine-tuning epochs: with 4 rounds
        and 5 epochs the trunk was still improving every round and the heads under-fitted,
        and the federated models scored 0.01-0.05 AUC-PR below local-only on every partner.
        """
        base: dict[str, Any] = {
            "max_compounds": 1200,
            "hidden": 250,
            "local_epochs": 10,
            "rounds": 8,
            "round_epochs": 1.0,
            "fed_patience": 3,
            "study_rounds": 1,
        }
        return cls(**(base | overrides))


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and its summary."""

    out_dir: Path
    summary_path: Path
    report_path: Path
    summary: Any
    table: str


def _metrics(report: Any) -> dict[str, Any]:
    """Test and validation aggregates of a pharmafl.model MetricsReport."""

    def agg(split: Any) -> dict[str, float]:
        if split is None or split.classification is None:
            return {}
        return {k: v for k, v in split.classification.aggregate.items() if v is not None}

    return {"test": agg(report.test), "valid": agg(report.validation)}


def _model_metrics(report: Any, partner: str, model: str) -> Any:
    from pharmafl.common.errors import EvaluationError
    from pharmafl.report import ModelMetrics

    m = _metrics(report)
    if "roc_auc" not in m["test"] or "auc_pr" not in m["test"]:
        raise EvaluationError(
            f"partner {partner!r} has no classification task that passes the evaluation "
            f"quorum on its test fold ({model} model), so it cannot be scored.",
            fix="simulate more compounds per partner (--max-compounds) or lower "
            "DemoConfig.eval_fold_min.",
        )
    return ModelMetrics.from_aggregates(m["test"], m["valid"])


def _family_source(family: str, folder: Path) -> str:
    """An FS-Mol-shaped file with only the assays of one protein super-family."""
    import pandas as pd

    from pharmafl.common.settings import data_dir

    fsmol = data_dir("fsmol")
    meta = pd.read_csv(fsmol / "fsmol_assay_metadata.csv")
    keep = set(meta.loc[meta["protein_super_family"] == family, "assay_chembl_id"])
    if not keep:
        known = sorted(meta["protein_super_family"].dropna().unique())[:10]
        raise ConfigError(
            f"no FS-Mol assay has protein super-family {family!r}.",
            fix=f"use one of {', '.join(known)} … or target_family=None.",
        )
    rows = pd.read_csv(fsmol / "fsmol_chembl27_measurements.csv.gz")
    path = folder / f"fsmol-{family}.csv"
    rows[rows["assay_chembl_id"].isin(keep)].to_csv(path, index=False)
    return str(path)


def _benefit(local: Any, federated: Any) -> tuple[Any, list[Any]]:
    """What a partner computes locally from its own per-task test metrics and chooses to share:
    aggregate deltas (MELLODDY-style) and the ECDF difference of per-task ROC-AUC / AUC-PR."""
    import pandas as pd

    from pharmafl.evaluation import benefit_summary, ecdf_difference
    from pharmafl.report.models import EcdfDifference

    if local.test is None or local.test.classification is None:
        return None, []
    if federated.test is None or federated.test.classification is None:
        return None, []
    a = pd.DataFrame(local.test.classification.per_task)
    b = pd.DataFrame(federated.test.classification.per_task)
    benefit = benefit_summary(a, b, "classification")
    keep_a = a[a["aggregation_weight"] > 0] if "aggregation_weight" in a else a
    keep_b = b[b["aggregation_weight"] > 0] if "aggregation_weight" in b else b
    curves = [
        EcdfDifference.from_frame(
            ecdf_difference(keep_a[m].dropna().to_numpy(), keep_b[m].dropna().to_numpy()), m
        )
        for m in ("roc_auc", "auc_pr")
    ]
    return benefit, curves


def run_demo(
    out_dir: str | Path,
    config: DemoConfig | None = None,
    *,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run the whole demo into ``out_dir`` (see the module docstring)."""
    from flows.prepare import run_prepare
    from flows.train import run_train
    from pharmafl.common.params import ConsortiumParameters, EvaluationQuorum, TaskParams
    from pharmafl.common.secret import load_consortium_key
    from pharmafl.evaluation.documents import MetricsReport
    from pharmafl.ledger import verify_ledger
    from pharmafl.model import TrainConfig, run_baseline, run_pooled
    from pharmafl.model.config import SparseTrunkConfig
    from pharmafl.report import (
        ConsortiumContribution,
        ConsortiumSummary,
        LedgerSummary,
        PartnerContribution,
        PartnerSummary,
        learning_curves_from_ledger,
        render_report,
        write_summary,
    )
    from pharmafl.report.models import DataContribution, Participation
    from pharmafl.secure import load_roster
    from pharmafl.server.optimizers import make_server_optimizer
    from pharmafl.server.plan import FederationPlan, LocalTrainingSpec
    from pharmafl.simulate import SimulationSpec, simulate_consortium
    from pharmafl.simulate.federation import setup_federation

    cfg = config or DemoConfig()
    if cfg.key_file is not None:
        load_consortium_key(cfg.key_file)  # a bad key file stops the demo before any work
    out = Path(out_dir)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 1)
        say(f"  {name}: {timings[name]:.1f} s")

    family = cfg.target_family if cfg.dataset == "fsmol" and cfg.source is None else None
    say(
        f"1/7 simulating {cfg.partners} partners from {cfg.dataset}"
        f"{f' ({family} assays)' if family else ''} into {out}"
    )
    t = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="pharmafl-demo-")
    source = _family_source(family, Path(tmp.name)) if family else cfg.source
    simulate_consortium(
        out,
        SimulationSpec(
            dataset=cfg.dataset,  # type: ignore[arg-type]
            source=source,
            partners=cfg.partners,
            max_compounds=cfg.max_compounds,
            seed=cfg.seed,
            strategy=cfg.strategy,  # type: ignore[arg-type]
        ),
        force=True,
        key_file=cfg.key_file,
        parameters=ConsortiumParameters(
            consortium_name=f"simulated-{cfg.dataset}",
            tasks=TaskParams(
                evaluation_quorum=EvaluationQuorum(
                    num_active_fold_min=cfg.eval_fold_min,
                    num_inactive_fold_min=cfg.eval_fold_min,
                )
            ),
        ),
    )
    tmp.cleanup()
    partners = sorted(p for p in (out / "partners").iterdir() if p.is_dir())
    lap("simulate", t)

    say("2/7 preparing each partner locally (standardize, describe, fold, tasks)")
    t = time.perf_counter()
    manifests = {}
    for p in partners:
        manifests[p.name] = run_prepare(p, workers=cfg.workers)
        c = manifests[p.name]["counts"]
        say(
            f"  {p.name}: {c['compounds_input']} compounds → {c['descriptor_vectors']} rows, "
            f"{c['classification_tasks']} classification / {c['regression_tasks']} regression tasks"
        )
    lap("prepare", t)

    trunk = SparseTrunkConfig(hidden_sizes=(cfg.hidden,), dropouts=(cfg.dropout,))
    train = TrainConfig(
        seed=cfg.seed,
        epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        lr_steps=(),
        early_stopping_patience=cfg.patience,
        selection_metric="auc_pr",
    )
    say("3/7 local-only baselines (each partner alone)")
    t = time.perf_counter()
    local: dict[str, MetricsReport] = {}
    for p in partners:
        local[p.name] = run_baseline(p, trunk, train, checkpoint=False)
    lap("baselines", t)

    say(f"4/7 federated training: up to {cfg.rounds} rounds, secure aggregation")
    t = time.perf_counter()
    plan = FederationPlan(
        rounds=cfg.rounds,
        patience=cfg.fed_patience,
        seed=cfg.seed,
        trunk=trunk.model_dump(mode="json"),
        local=LocalTrainingSpec(
            epochs=cfg.round_epochs,
            learning_rate=cfg.lr,
            batch_size=cfg.batch_size,
            head_finetune_epochs=cfg.head_finetune_epochs,
        ),
        server_optimizer=make_server_optimizer(cfg.server_optimizer).config,
        final_trunk=cfg.final_trunk,
        stage_timeout_s=900,
    )
    setup_federation(out, plan)
    fed = run_train(out, exchange_url=str(out / "exchange"))
    lap("federated", t)

    say("5/7 pooled reference (all data in one place: the simulation's upper bound)")
    t = time.perf_counter()
    pooled = run_pooled(partners, trunk, train, out_dir=out / "operator" / "pooled")
    lap("pooled", t)

    contribution = None
    if cfg.contribution:
        from flows.contribution import run_contribution_study
        from pharmafl.accounting.coalitions import StudyConfig

        say(
            f"6/7 contribution study: every coalition of ≥ 2 partners trained federatedly "
            f"({cfg.study_rounds} rounds each, secure aggregation), exact Shapley values"
        )
        t = time.perf_counter()
        contribution = run_contribution_study(
            out,
            StudyConfig(rounds=cfg.study_rounds, parallel=cfg.study_parallel),
            exchange_url=str(out / "exchange"),
        )
        lap("contribution", t)

    say("7/7 evaluation and report")
    t = time.perf_counter()
    roster = load_roster(out / "operator" / "roster.json")
    verification = verify_ledger(out / "operator" / "ledger.jsonl", roster)
    from pharmafl.ledger import read_entries

    entries = read_entries(out / "operator" / "ledger.jsonl")
    participation = {p.name: [0, 0] for p in partners}
    for rec in fed["history"]:
        for name in rec["contributors"]:
            participation[name][0] += 1
        for name in rec["dropped"]:
            participation[name][1] += 1
    rows = []
    for p in partners:
        fed_report = MetricsReport.model_validate_json(
            (p / "models" / "federated" / "model" / "metrics.json").read_text()
        )
        c = manifests[p.name]["counts"]
        benefit, curves = _benefit(local[p.name], fed_report)
        rows.append(
            PartnerSummary(
                name=p.name,
                local=_model_metrics(local[p.name], p.name, "local"),
                federated=_model_metrics(fed_report, p.name, "federated"),
                pooled=_model_metrics(pooled.partners[p.name], p.name, "pooled"),
                benefit=benefit,
                ecdf=curves,
                contribution=PartnerContribution.from_result(
                    contribution,
                    p.name,
                    data=DataContribution(
                        compounds=c["descriptor_vectors"],
                        tasks=c["classification_tasks"] + c["regression_tasks"],
                        measurements=c["classification_labels"] + c["regression_values"],
                    ),
                    rounds=Participation(
                        submitted=participation[p.name][0], dropped=participation[p.name][1]
                    ),
                ),
            )
        )
    summary = ConsortiumSummary(
        consortium=f"simulated-{cfg.dataset}{f'-{family}' if family else ''}",
        secure_aggregation=True,
        rounds=int(fed["rounds"]),
        wall_seconds=round(time.perf_counter() - t0, 1),
        partners=rows,
        learning_curves=learning_curves_from_ledger(entries),
        contribution=None
        if contribution is None
        else ConsortiumContribution.from_result(contribution),
        ledger=LedgerSummary.from_verification(verification),
        notes=[
            f"timings (s): {json.dumps(timings)}",
            f"federated stop: {fed['stop_reason']}",
            f"demo config: {cfg.model_dump_json()}",
        ],
    )
    report_dir = out / "report"
    summary_path = write_summary(summary, report_dir)
    report_path = render_report(summary, report_dir)
    lap("report", t)
    table = format_table(summary)
    say(table)
    return DemoResult(out, summary_path, report_path, summary, table)


def format_table(summary: Any) -> str:
    """The per-partner table printed at the end of the demo."""
    head = (
        f"{'partner':<10} {'local ROC':>9} {'fed ROC':>8} {'pool ROC':>8} "
        f"{'local PR':>9} {'fed PR':>7} {'pool PR':>8} {'Δ PR':>7} {'Δ PR 95% CI':>17} "
        f"{'Shapley':>8} {'LOO':>8}"
    )
    lines = [head, "-" * len(head)]

    def f(x: float | None) -> str:
        return "   n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"

    def g(x: float | None) -> str:
        return "n/a" if x is None else f"{x:+.4f}"

    def ci(p: Any) -> str:
        pr = None if p.benefit is None else p.benefit.metric("auc_pr")
        if pr is None or pr.mean_delta_ci95 is None:
            return "n/a"
        lo, hi = pr.mean_delta_ci95
        return f"{lo:+.4f}…{hi:+.4f}"

    for p in summary.partners:
        pooled = p.pooled
        lines.append(
            f"{p.name:<10} {f(p.local.roc_auc):>9} {f(p.federated.roc_auc):>8} "
            f"{f(pooled.roc_auc if pooled else None):>8} {f(p.local.auc_pr):>9} "
            f"{f(p.federated.auc_pr):>7} {f(pooled.auc_pr if pooled else None):>8} "
            f"{p.federated.auc_pr - p.local.auc_pr:>+7.4f} {ci(p):>17} "
            f"{g(p.contribution.shapley if p.contribution else None):>8} "
            f"{g(p.contribution.leave_one_out if p.contribution else None):>8}"
        )
    gap = summary.gap_capture
    lines.append(
        f"rounds {summary.rounds}, secure aggregation {summary.secure_aggregation}, "
        f"gap capture {'n/a' if gap is None else f'{gap:.0%}'}, "
        f"CI: 95 % bootstrap over the partner's tasks, "
        f"wall {summary.wall_seconds:.0f} s"
    )
    if summary.contribution is not None:
        c = summary.contribution
        lines.append(
            f"contribution ({c.method} Shapley over {c.n_coalitions} coalitions): "
            f"v(N) = {c.grand_coalition_utility:+.4f} (mean AUC-PR gain over local-only), "
            f"v(∅) = {c.empty_coalition_utility:+.4f}"
        )
    return "\n".join(lines)


__all__ = ["DemoConfig", "DemoResult", "format_table", "run_demo"]
