"""One partner's row of the consortium summary, from the files in its folder.

Each partner's local-only (``models/local/metrics.json``) and federated
(``models/federated/model/metrics.json``) metrics documents, its preparation manifest's
counts, and, when present, the pooled reference and the contribution study. Only the
aggregates the summary shares are taken from them: means over the partner's tasks, the
benefit summary and ECDF-difference curves it computes from its own per-task rows.

A partner whose folder lacks a metrics document (an operator-only machine, a partner that
never trained a baseline) is left out with the reason (:class:`PartnerLeftOutError`), never a
crash. Torch-free and RDKit-free: the documents are read with their torch-free models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from pharmafl.accounting import ContributionResult
from pharmafl.common.errors import AccountingError, EvaluationError
from pharmafl.evaluation import BenefitSummary, benefit_summary, ecdf_difference
from pharmafl.evaluation.documents import MetricsReport, PooledReport, SplitMetrics
from pharmafl.layout import METRICS_FILE, PartnerLayout
from pharmafl.report.models import (
    HEADLINE_METRICS,
    REGRESSION_BENEFIT_METRICS,
    BestLocal,
    DataContribution,
    EcdfDifference,
    ModelMetrics,
    Participation,
    PartnerContribution,
    PartnerSummary,
)


class PartnerLeftOutError(AccountingError):
    """A partner has no row in the summary: the message says which file it lacks and why."""


class _ManifestCounts(BaseModel):
    """The counts of ``prepared/manifest.json`` the summary shows.

    A read-only view of :class:`pharmafl.partner.PrepareCounts`: importing
    :mod:`pharmafl.partner` loads RDKit, which the operator side never installs.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    descriptor_vectors: int
    classification_tasks: int
    regression_tasks: int
    classification_labels: int
    regression_values: int


class _ManifestView(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    counts: _ManifestCounts


def _aggregates(split: SplitMetrics | None) -> dict[str, float]:
    """A split's finite classification aggregates (empty without classification tasks)."""
    if split is None or split.classification is None:
        return {}
    agg = split.classification.aggregate.items()
    return {k: float(v) for k, v in agg if v is not None and math.isfinite(v)}


def model_metrics(report: MetricsReport) -> ModelMetrics | None:
    """Test (and validation) means of a metrics document; None when its test fold has no
    classification task that passed the evaluation quorum."""
    test = _aggregates(report.test)
    if any(m not in test for m in HEADLINE_METRICS):
        return None
    return ModelMetrics.from_aggregates(test, _aggregates(report.validation))


def _per_task(
    report: MetricsReport, kind: Literal["classification", "regression"] = "classification"
) -> pd.DataFrame | None:
    """The test fold's per-task rows of one task type (None without any)."""
    part = None if report.test is None else getattr(report.test, kind)
    if part is None or not part.per_task:
        return None
    return pd.DataFrame(part.per_task)


def _weighted(frame: pd.DataFrame) -> pd.DataFrame:
    """Tasks that count in the means (aggregation weight > 0)."""
    if "aggregation_weight" not in frame:
        return frame
    return frame[frame["aggregation_weight"] > 0]


def benefit(
    local: MetricsReport, federated: MetricsReport
) -> tuple[BenefitSummary | None, list[EcdfDifference]]:
    """What a partner computes from its own per-task test metrics and chooses to share:
    aggregate deltas (MELLODDY-style) and the ECDF difference of per-task ROC-AUC / AUC-PR."""
    a, b = _per_task(local), _per_task(federated)
    if a is None or b is None:
        return None, []
    curves = [
        EcdfDifference.from_frame(
            ecdf_difference(
                _weighted(a)[m].dropna().to_numpy(), _weighted(b)[m].dropna().to_numpy()
            ),
            m,
        )
        for m in HEADLINE_METRICS
    ]
    try:
        return benefit_summary(a, b, "classification"), curves
    except EvaluationError:  # e.g. the two models were scored on different tasks
        return None, curves


def regression_benefit(local: MetricsReport, federated: MetricsReport) -> BenefitSummary | None:
    """The same on the partner's regression tasks: mean deltas of
    :data:`REGRESSION_BENEFIT_METRICS` with 95 % bootstrap intervals over tasks (MELLODDY saw
    its larger gains on regression); None when either model has no scored regression task."""
    a, b = _per_task(local, "regression"), _per_task(federated, "regression")
    if a is None or b is None:
        return None
    # a metric both documents hold (a metrics file may predate the measured RMSE)
    names = [m for m in REGRESSION_BENEFIT_METRICS if m in a.columns and m in b.columns]
    try:
        summary = benefit_summary(a, b, "regression", metrics=names)
    except EvaluationError:
        return None
    return summary if summary.n_tasks > 0 else None


#: Local references a partner may train (``models/<name>/metrics.json``): the network and
#: the per-task tree models of :mod:`pharmafl.model.trees`.
LOCAL_REFERENCES: tuple[str, ...] = ("local", "local_rf", "local_gbm", "local_public")
_SELECTION = "auc_pr"


def _references(partner: PartnerLayout, local: MetricsReport | None) -> dict[str, MetricsReport]:
    """Every local reference's metrics (the network's as already read; None: none)."""
    found = {} if local is None else {"local": local}
    for name in LOCAL_REFERENCES[1:]:
        path = partner.models / name / METRICS_FILE
        try:
            found[name] = MetricsReport.model_validate_json(path.read_bytes())
        except (FileNotFoundError, ValidationError):
            continue
    return found


def best_local(
    partner: PartnerLayout, federated: MetricsReport, local: MetricsReport | None
) -> BestLocal | None:
    """The local reference with the best validation mean AUC-PR (per partner: one model for
    all its tasks, as a partner would deploy one), its test scores and the federated model's
    benefit over it; None when no reference has validation and test scores."""
    scored: dict[str, tuple[float, MetricsReport, ModelMetrics]] = {}
    for name, report in _references(partner, local).items():
        metrics, valid = model_metrics(report), _aggregates(report.validation).get(_SELECTION)
        if metrics is not None and valid is not None:
            scored[name] = (valid, report, metrics)
    if not scored:
        return None
    name = max(scored, key=lambda n: (scored[n][0], n == "local"))
    _, report, metrics = scored[name]
    gain, _ = benefit(report, federated)
    return BestLocal(
        model=name,
        selected_by=f"validation mean {_SELECTION}",
        candidates={n: round(v[0], 6) for n, v in scored.items()},
        scores=metrics,
        benefit=gain,
    )


def _read_metrics(path: Path, what: str, fix: str) -> MetricsReport:
    try:
        return MetricsReport.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise PartnerLeftOutError(f"no {what} ({path} is missing; {fix})") from None
    except ValidationError as exc:
        raise PartnerLeftOutError(
            f"{path} is not a metrics document ({exc.error_count()} errors)"
        ) from None


def _scored(report: MetricsReport, path: Path, what: str) -> ModelMetrics:
    metrics = model_metrics(report)
    if metrics is None:
        raise PartnerLeftOutError(
            f"its {what} has no classification task that passes the evaluation quorum on its "
            f"test fold ({path})"
        )
    return metrics


def data_counts(partner: PartnerLayout) -> DataContribution | None:
    """Compounds, tasks and measurements from the partner's preparation manifest (None if the
    manifest is not in its folder)."""
    try:
        counts = _ManifestView.model_validate_json(partner.manifest.read_bytes()).counts
    except (FileNotFoundError, ValidationError):
        return None
    return DataContribution(
        compounds=counts.descriptor_vectors,
        tasks=counts.classification_tasks + counts.regression_tasks,
        measurements=counts.classification_labels + counts.regression_values,
    )


def partner_summary(
    partner: PartnerLayout,
    *,
    rounds: Participation | None = None,
    pooled: PooledReport | None = None,
    contribution: ContributionResult | None = None,
) -> PartnerSummary:
    """The summary row of one partner, from the files in its folder.

    Raises
    ------
    PartnerLeftOutError
        If its local-only or federated metrics are missing, invalid or unscorable.
    """
    if not partner.root.is_dir():
        raise PartnerLeftOutError(
            f"its folder {partner.root} is not on this machine (each partner keeps its metrics)"
        )
    local = _read_metrics(
        partner.local_metrics, "local-only baseline", "run `pharmafl baseline PARTNER_DIR`"
    )
    fed = _read_metrics(
        partner.federated_metrics, "federated model", "run `pharmafl train CONSORTIUM_DIR`"
    )
    local_scores = _scored(local, partner.local_metrics, "local-only model")
    fed_scores = _scored(fed, partner.federated_metrics, "federated model")
    gain, curves = benefit(local, fed)
    pooled_doc = None if pooled is None else pooled.partners.get(partner.name)
    in_study = (
        contribution is not None and contribution.player_of(partner.name) in contribution.players
    )
    study = contribution if in_study else None
    return PartnerSummary(
        name=partner.name,
        local=local_scores,
        federated=fed_scores,
        pooled=None if pooled_doc is None else model_metrics(pooled_doc),
        benefit=gain,
        regression_benefit=regression_benefit(local, fed),
        best_local=best_local(partner, fed, local),
        ecdf=curves,
        contribution=PartnerContribution.from_result(
            study, partner.name, data=data_counts(partner), rounds=rounds
        ),
    )


def partner_rows(
    partners: Mapping[str, PartnerLayout],
    participation: Mapping[str, Participation],
    *,
    pooled: PooledReport | None = None,
    contribution: ContributionResult | None = None,
) -> tuple[list[PartnerSummary], list[str]]:
    """Rows for every partner that has its metrics here, and one note per partner left out."""
    rows: list[PartnerSummary] = []
    notes: list[str] = []
    for name, layout in partners.items():
        try:
            row = partner_summary(
                layout, rounds=participation.get(name), pooled=pooled, contribution=contribution
            )
        except PartnerLeftOutError as why:
            notes.append(f"partner {name} left out of the partner tables: {why}")
            continue
        rows.append(row)
        if row.contribution is not None and row.contribution.data is None:
            notes.append(f"partner {name}: no data counts (no readable {layout.manifest})")
    return rows, notes


__all__ = [
    "LOCAL_REFERENCES",
    "PartnerLeftOutError",
    "benefit",
    "best_local",
    "data_counts",
    "model_metrics",
    "partner_rows",
    "partner_summary",
    "regression_benefit",
]
