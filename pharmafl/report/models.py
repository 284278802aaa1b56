"""``DIR/report/summary.json``: what each partner got and gave, in one shared document.

Only aggregates that partners chose to share appear here: per-partner means over their own
tasks, benefit summaries, ECDF-difference curves, per-round validation means; never a
task-level value, a label or a model update.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from pharmafl import __version__
from pharmafl.accounting import ContributionResult, mean_gain_utility
from pharmafl.accounting.privacy import PartnerPrivacy
from pharmafl.evaluation import BenefitSummary
from pharmafl.ledger import LedgerEntry, VerificationResult, run_entries
from pharmafl.ledger.events import (
    DEFAULT_RUN_ID,
    HEX64,
    EvaluationReportedPayload,
    LedgerEvent,
    PartnerDroppedPayload,
)
from pharmafl.secure.identity import PARTY_ID_PATTERN

#: Metrics compared across local / federated / pooled models.
HEADLINE_METRICS: tuple[str, ...] = ("roc_auc", "auc_pr")


#: What the report compares on regression tasks: R² and RMSE over the measured (uncensored)
#: values, the same rows, and the censor-aware RMSE, which also counts a censored value
#: (<, >) predicted on its wrong side. When R² and the censor-aware RMSE disagree, the
#: measured RMSE tells which rows moved.
REGRESSION_BENEFIT_NAMES: dict[str, str] = {
    "r2": "R²",
    "rmse_uncensored": "RMSE measured",
    "rmse": "RMSE censor-aware",
}
REGRESSION_BENEFIT_METRICS: tuple[str, ...] = tuple(REGRESSION_BENEFIT_NAMES)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


class ModelMetrics(_Frozen):
    """One model's scores on a partner's own tasks: means over its evaluated tasks."""

    roc_auc: float = Field(ge=0.0, le=1.0, description="Test ROC-AUC, mean over tasks.")
    auc_pr: float = Field(ge=0.0, le=1.0, description="Test AUC-PR, mean over tasks.")
    auc_pr_cal: float | None = Field(
        None, ge=0.0, le=1.0, description="Test calibrated AUC-PR, mean over tasks."
    )
    n_tasks: int | None = Field(None, ge=0, description="Tasks in the means.")
    valid_roc_auc: float | None = Field(None, ge=0.0, le=1.0, description="Validation ROC-AUC.")
    valid_auc_pr: float | None = Field(None, ge=0.0, le=1.0, description="Validation AUC-PR.")

    @classmethod
    def from_aggregates(
        cls, test: Mapping[str, float], valid: Mapping[str, float] | None = None
    ) -> ModelMetrics:
        """Build from ``EvaluationResult.aggregate`` dicts (NaN becomes None)."""
        n = _finite(test.get("n_tasks"))
        return cls(
            roc_auc=float(test["roc_auc"]),
            auc_pr=float(test["auc_pr"]),
            auc_pr_cal=_finite(test.get("auc_pr_cal")),
            n_tasks=None if n is None else int(n),
            valid_roc_auc=None if valid is None else _finite(valid.get("roc_auc")),
            valid_auc_pr=None if valid is None else _finite(valid.get("auc_pr")),
        )


class DataContribution(_Frozen):
    """Data a partner contributed (counts from its signed preparation manifest)."""

    compounds: int = Field(ge=0, description="Compounds.")
    tasks: int = Field(ge=0, description="Tasks (outputs).")
    measurements: int = Field(ge=0, description="Non-missing labels over all tasks.")


class Participation(_Frozen):
    """Rounds a partner took part in (from the ledger)."""

    submitted: int = Field(ge=0, description="Rounds with a submitted update.")
    dropped: int = Field(ge=0, description="Rounds it dropped out of.")
    dropout_causes: dict[str, int] = Field(
        default_factory=dict,
        description="Why it dropped out (the ledger's cause, e.g. 'worker offline') → rounds.",
    )

    def dropped_text(self) -> str:
        """``"2 (worker offline ×2)"``, or the bare count when there were no dropouts."""
        if not self.dropout_causes:
            return str(self.dropped)
        causes = ", ".join(f"{c} ×{n}" for c, n in sorted(self.dropout_causes.items()))
        return f"{self.dropped} ({causes})"


class PartnerContribution(_Frozen):
    """What one partner gave: value attribution, data, participation, compute."""

    group: str | None = Field(
        None, description="The valuation group whose values these are (shared by its members)."
    )
    shapley: float | None = Field(None, description="Shapley value of the consortium utility.")
    shapley_ci: tuple[float, float] | None = Field(
        None, description="Confidence interval (evaluation and sampling error)."
    )
    leave_one_out: float | None = Field(None, description="v(N) − v(N ∖ {partner}).")
    data: DataContribution | None = None
    rounds: Participation | None = None
    compute_seconds: float | None = Field(None, ge=0.0, description="Local training time.")

    @classmethod
    def from_result(
        cls,
        result: ContributionResult | None,
        name: str,
        *,
        data: DataContribution | None = None,
        rounds: Participation | None = None,
        compute_seconds: float | None = None,
    ) -> PartnerContribution:
        """Take one partner's values (its valuation group's) from a contribution study (or
        none) plus its counts."""
        player = name if result is None else result.player_of(name)
        return cls(
            group=None if result is None or result.groups is None else player,
            shapley=None if result is None or result.shapley is None else result.shapley[player],
            shapley_ci=None
            if result is None or result.shapley_ci is None
            else result.shapley_ci[player],
            leave_one_out=None if result is None else result.leave_one_out[player],
            data=data,
            rounds=rounds,
            compute_seconds=compute_seconds,
        )


class EcdfDifference(_Frozen):
    """A shared ECDF-difference curve: ECDF(federated) − ECDF(local) of a per-task metric."""

    metric: str = Field("roc_auc", description="Per-task metric the ECDFs are of.")
    grid: list[float] = Field(min_length=2, description="Metric values (x), increasing.")
    difference: list[float] = Field(description="ECDF_b − ECDF_a at each grid point.")

    @model_validator(mode="after")
    def _aligned(self) -> EcdfDifference:
        if len(self.grid) != len(self.difference):
            raise ValueError("grid and difference must have the same length")
        if any(b <= a for a, b in zip(self.grid, self.grid[1:], strict=False)):
            raise ValueError("grid must be strictly increasing")
        if any(not -1.0 <= d <= 1.0 for d in self.difference):
            raise ValueError("ECDF differences lie in [-1, 1]")
        return self

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, metric: str = "roc_auc") -> EcdfDifference:
        """From :func:`pharmafl.evaluation.ecdf_difference` output (NaN points dropped)."""
        ok = np.isfinite(frame["difference"].to_numpy(dtype=np.float64))
        return cls(
            metric=metric,
            grid=[float(x) for x in frame["value"].to_numpy()[ok]],
            difference=[float(x) for x in frame["difference"].to_numpy()[ok]],
        )


class BestLocal(_Frozen):
    """The partner's best local reference, chosen on its validation fold: what it would run
    without the consortium (issue 18: a chemist compares with its best in-house model)."""

    model: str = Field(description="local (the network), local_rf or local_gbm.")
    selected_by: str = Field(description="The validation metric it was chosen by.")
    candidates: dict[str, float] = Field(
        description="Every local reference trained, with its validation score."
    )
    scores: ModelMetrics = Field(description="Its test scores.")
    benefit: BenefitSummary | None = Field(None, description="Federated vs this reference.")


class PartnerSummary(_Frozen):
    """One partner: local-only, federated and pooled scores, benefit, contribution."""

    name: str = Field(pattern=PARTY_ID_PATTERN, description="Partner id.")
    local: ModelMetrics = Field(description="Local-only model (own data only).")
    federated: ModelMetrics = Field(description="Federated trunk + private heads.")
    pooled: ModelMetrics | None = Field(
        None, description="Reference trained on pooled data (simulations only)."
    )
    benefit: BenefitSummary | None = Field(None, description="Federated vs local aggregates.")
    regression_benefit: BenefitSummary | None = Field(
        None,
        description="Federated vs local on the partner's regression tasks (R² and RMSE on "
        "measured values, censor-aware RMSE; 95 % intervals over tasks); None without scored "
        "regression tasks.",
    )
    best_local: BestLocal | None = Field(
        None, description="The best local reference on validation (network, forest, GBM)."
    )
    contribution: PartnerContribution | None = None
    auxiliary: bool = Field(
        False,
        description="An auxiliary public partner: it trains the shared trunk, its heads are "
        "nobody's benefit (left out of the gap capture).",
    )
    ecdf: list[EcdfDifference] = Field(default_factory=list, description="Shared ECDF curves.")

    @property
    def label(self) -> str:
        """The name as tables show it: an auxiliary partner marked."""
        return f"{self.name} (auxiliary)" if self.auxiliary else self.name

    def gain(self, metric: str = "auc_pr", model: str = "federated") -> float | None:
        """``model``'s test ``metric`` minus local-only's (None without a pooled model)."""
        other: ModelMetrics | None = getattr(self, model)
        if other is None:
            return None
        return float(getattr(other, metric)) - float(getattr(self.local, metric))


#: Smallest mean pooled-minus-local gain (AUC-PR) worth a gap capture: half a point. Below
#: it the capture is a ratio of two noise-sized numbers (a demo partner's 95 % interval over
#: its tasks spans ±0.015; a +0.0003 gap once gave a capture of several hundred per cent),
#: so the report shows the gains themselves and no ratio.
MIN_GAP = 0.005


def compute_gap_capture(partners: Sequence[PartnerSummary], metric: str = "auc_pr") -> float | None:
    """Share of the pooled-minus-local gain that federation captured, on average over the
    members (auxiliary partners left out).

    ``mean_i(federated_i − local_i) / mean_i(pooled_i − local_i)``; None when a partner has no
    pooled reference or pooling gains less than :data:`MIN_GAP` on average (no gap to
    capture that a ratio could measure).
    """
    partners = [p for p in partners if not p.auxiliary]
    fed = [p.gain(metric, "federated") for p in partners]
    pooled = [p.gain(metric, "pooled") for p in partners]
    if not partners or any(g is None for g in pooled):
        return None
    gap = math.fsum(g for g in pooled if g is not None) / len(partners)
    if gap < MIN_GAP:
        return None
    return math.fsum(g for g in fed if g is not None) / len(partners) / gap


class RoundMetrics(_Frozen):
    """Validation scalars partners shared after one round (learning curves)."""

    round: int = Field(ge=0, description="Round number, 0-based.")
    metrics: dict[str, dict[str, float]] = Field(
        description="Metric (e.g. 'valid_auc_pr') → partner → mean over its tasks."
    )
    dropped: list[str] = Field(default_factory=list, description="Partners that dropped out.")


def learning_curves_from_ledger(
    entries: Sequence[LedgerEntry], run_id: str = DEFAULT_RUN_ID
) -> list[RoundMetrics]:
    """Learning curves from the ``evaluation_reported`` entries of a run's rounds.

    Each per-round validation report a partner put on the ledger becomes
    ``metrics["valid_<metric>"][partner]``; ``partner_dropped`` entries fill ``dropped``.
    Reports without a round (final models) and test-split reports are left out.
    """
    by_round: dict[int, dict[str, dict[str, float]]] = {}
    dropped: dict[int, set[str]] = {}
    for e in run_entries(entries, run_id):
        if e.event is LedgerEvent.EVALUATION_REPORTED:
            rep = EvaluationReportedPayload.model_validate(e.payload)
            if rep.round is None or rep.split != "valid":
                continue
            slot = by_round.setdefault(rep.round, {})
            for metric, value in rep.metrics.items():
                slot.setdefault(f"valid_{metric}", {})[rep.partner] = value
        elif e.event is LedgerEvent.PARTNER_DROPPED:
            dr = PartnerDroppedPayload.model_validate(e.payload)
            dropped.setdefault(dr.round, set()).add(dr.partner)
    return [
        RoundMetrics(
            round=r,
            metrics=dict(sorted(by_round.get(r, {}).items())),
            dropped=sorted(dropped.get(r, set())),
        )
        for r in sorted(set(by_round) | set(dropped))
    ]


class ConsortiumContribution(_Frozen):
    """How contributions were attributed (top level of the summary)."""

    method: Literal["exact", "permutation", "leave_one_out"]
    utility: str = Field(description="What v(S) measures.")
    grand_coalition_utility: float = Field(description="v(N).")
    grand_coalition_ci: tuple[float, float] | None = Field(
        None, description="Interval of v(N) (the members' evaluation error)."
    )
    empty_coalition_utility: float = Field(description="v(∅).")
    n_coalitions: int = Field(ge=0, description="Coalitions trained and evaluated.")
    n_permutations: int | None = Field(None, ge=1, description="Orderings sampled.")
    confidence: float | None = Field(None, gt=0, lt=1, description="Level of the intervals.")
    players: list[str] | None = Field(
        None,
        description="Players the values are over: valuation groups, or partners in studies "
        "made before groups (the summary may lack a row for some).",
    )
    groups: dict[str, list[str]] | None = Field(
        None, description="Valuation group → its partners (None: the players are partners)."
    )

    @classmethod
    def from_result(cls, result: ContributionResult) -> ConsortiumContribution:
        """The consortium-level part of a :class:`~pharmafl.accounting.ContributionResult`."""
        return cls(
            method=result.method,
            utility=result.utility,
            grand_coalition_utility=result.grand_coalition_utility,
            grand_coalition_ci=result.grand_coalition_ci,
            empty_coalition_utility=result.empty_coalition_utility,
            n_coalitions=result.n_coalitions,
            n_permutations=result.n_permutations,
            confidence=result.confidence,
            players=list(result.players),
            groups=result.groups,
        )


class LedgerSummary(_Frozen):
    """The state of the ledger when the summary was written."""

    entries: int = Field(ge=0, description="Entries in the ledger.")
    verified: bool = Field(description="Whether verification passed.")
    signatures_checked: bool = Field(True, description="Whether signatures were checked.")
    head_hash: str | None = Field(None, pattern=HEX64, description="Hash of the last entry.")
    events: dict[str, int] = Field(default_factory=dict, description="Entries per event type.")
    issue: str | None = Field(None, description="First problem found, if not verified.")

    @classmethod
    def from_verification(cls, result: VerificationResult) -> LedgerSummary:
        """From :func:`pharmafl.ledger.verify_ledger`'s result."""
        issue = None
        if not result.ok:
            issue = f"entry {result.first_bad_index} ({result.issue}): {result.message}"
        return cls(
            entries=result.entries,
            verified=result.ok,
            signatures_checked=result.signatures_checked,
            head_hash=result.head_hash,
            events=result.events,
            issue=issue,
        )


class ConsortiumSummary(BaseModel):
    """``DIR/report/summary.json`` (schema ``consortium_summary``)."""

    model_config = ConfigDict(extra="forbid")

    consortium: str | None = Field(None, max_length=200, description="Consortium name.")
    created_at: AwareDatetime = Field(
        default_factory=lambda: datetime.now(UTC), description="When the summary was written."
    )
    pharmafl_version: str = Field(__version__, description="pharmafl version that wrote it.")
    secure_aggregation: bool = Field(description="Whether trunk updates were securely aggregated.")
    rounds: int = Field(ge=0, description="Federated rounds completed.")
    wall_seconds: float = Field(
        ge=0.0,
        description="Wall-clock time of the whole run (without one given: the main training "
        "run's, from its training_started to its training_finished ledger entry).",
    )
    partners: list[PartnerSummary] = Field(
        description="One entry per partner whose metrics were at hand (the notes name any "
        "partner left out and the file it lacked)."
    )
    contribution: ConsortiumContribution | None = Field(
        None, description="How contributions were attributed (None: no study run)."
    )
    learning_curves: list[RoundMetrics] = Field(
        default_factory=list, description="Per-round validation scalars partners shared."
    )
    ledger: LedgerSummary | None = None
    privacy: list[PartnerPrivacy] = Field(
        default_factory=list,
        description="Each partner's privacy loss over every aggregate its updates went into "
        "(all runs: main, coalitions, retries), from the ledger.",
    )
    gap_capture: float | None = Field(
        None,
        description="Federated share of the pooled-minus-local AUC-PR gain, averaged over "
        "partners (filled in from the partners when omitted); None when pooling gains less "
        "than MIN_GAP (0.005) on average.",
    )
    notes: list[str] = Field(default_factory=list, description="Free-text remarks.")

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> ConsortiumSummary:
        names = [p.name for p in self.partners]
        if len(set(names)) != len(names):
            raise ValueError(f"partner names must be unique, got {names}")
        for rm in self.learning_curves:
            for metric, values in rm.metrics.items():
                unknown = set(values).difference(names)
                if unknown:
                    raise ValueError(
                        f"learning curve {metric!r} of round {rm.round} names unknown "
                        f"partner(s) {sorted(unknown)}"
                    )
        self._check_efficiency(names)
        if self.gap_capture is None:
            self.gap_capture = compute_gap_capture(self.partners)
        return self

    def _check_efficiency(self, names: Sequence[str]) -> None:
        """The players' Shapley values (each valuation group's once) add up to v(N) − v(∅)
        when every player has a row."""
        c = self.contribution
        values: dict[str, float] = {}
        for p in self.partners:
            pc = p.contribution
            if c is None or pc is None or pc.shapley is None:
                return
            player = pc.group or p.name
            if values.setdefault(player, pc.shapley) != pc.shapley:
                raise ValueError(f"members of valuation group {player} show different values")
        if c is None or (c.players is not None and sorted(c.players) != sorted(values)):
            return  # a player was left out: its value is missing from the sum
        total = math.fsum(values.values())
        target = c.grand_coalition_utility - c.empty_coalition_utility
        scale = max(1.0, abs(c.grand_coalition_utility))
        if abs(total - target) > 1e-9 * scale * len(names):
            raise ValueError(
                f"partners' Shapley values sum to {total!r}, not v(N) − v(∅) = {target!r}"
            )

    def main_run_utility(self) -> float | None:
        """The main run's gain as the study's v(N) measures it (:func:`~pharmafl.accounting.
        mean_gain_utility` of federated − local-only test AUC-PR over the study's partners; no
        score counts 0), for comparing the grand coalition with it. None without a study, or
        when a partner of the study has no row here."""
        c = self.contribution
        if c is None:
            return None
        players = c.players or [p.name for p in self.partners]
        study = sorted({m for g in players for m in (c.groups or {}).get(g, [g])})
        rows = {p.name: p for p in self.partners}
        if not study or any(name not in rows for name in study):
            return None
        gains = {name: rows[name].gain("auc_pr") for name in study}
        return mean_gain_utility(
            {n: g for n, g in gains.items() if g is not None and math.isfinite(g)}, study
        )

    def partner(self, name: str) -> PartnerSummary:
        """The summary of partner ``name`` (KeyError if absent)."""
        for p in self.partners:
            if p.name == name:
                return p
        raise KeyError(name)


__all__ = [
    "ConsortiumContribution",
    "ConsortiumSummary",
    "DataContribution",
    "EcdfDifference",
    "HEADLINE_METRICS",
    "LedgerSummary",
    "MIN_GAP",
    "ModelMetrics",
    "Participation",
    "PartnerContribution",
    "PartnerSummary",
    "REGRESSION_BENEFIT_METRICS",
    "REGRESSION_BENEFIT_NAMES",
    "RoundMetrics",
    "compute_gap_capture",
    "learning_curves_from_ledger",
]
