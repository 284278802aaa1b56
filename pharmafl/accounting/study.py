"""The contribution study: train coalitions federatedly, collect one scalar each, attribute.

For every coalition S the estimator asks about, the operator runs a full federated training
among the members of S only — the same machinery as the main run (signed round specs, secure
aggregation through the exchange store, each partner's own private head), as its own run
``cs-<study id>-<members>`` — and at its final evaluation every member reports one scalar on
its own tasks: the test AUC-PR of the coalition's model minus its local-only model's. Then

    v(S) = mean over *all* n partners of the members' gains (non-members gain 0),

so v(∅) = 0, and v({i}) = 0 without a run: a coalition of one is training alone, which *is*
the local-only model (and secure aggregation needs two). Exact Shapley values (≤ 6 partners,
2^n − n − 1 trainings), leave-one-out (n + 1 coalitions) or a permutation-sampling estimate
follow from these utilities (:mod:`pharmafl.accounting.shapley`); no method ever needs an
individual update in the clear.

Every coalition runs under the same study settings (:class:`StudyConfig`: usually a smaller
round budget than the main run), the grand coalition included, so the values are consistent
and Σ φ_i = v(N) − v(∅) holds exactly. Utilities are cached in
``operator/contribution/<study id>/utilities.json`` after each coalition: an interrupted study
resumes (an unfinished coalition continues from its last round) and never retrains a
coalition whose utility is recorded. The study id hashes everything that shapes a coalition's
model (partners, consortium parameters, initial trunk, training settings), so changing any
of them starts a new study, while switching the estimator reuses the cache.

On the ledger: each coalition run's rounds and aggregates under its own run id, a
``coalition_evaluated`` entry per coalition (v(S) and the hashes of the members' signed
reports, not the gains themselves), and a ``contribution_study_finished`` entry with the
values. Torch-free and RDKit-free.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.accounting.shapley import (
    EXACT_MAX_PLAYERS,
    ContributionResult,
    estimate_contributions,
)
from pharmafl.accounting.utility import (
    DEFAULT_UTILITY,
    CachedUtility,
    Coalition,
    coalition_utility,
    mean_gain_utility,
)
from pharmafl.common.errors import AccountingError
from pharmafl.common.io import atomic_write_text
from pharmafl.ledger import LedgerEvent, read_entries, validate_payload
from pharmafl.server.operator import Launcher, OperatorContext, load_operator, run_training
from pharmafl.server.plan import FederationPlan
from pharmafl.server.runs import INITIAL_TRUNK_FILE, STATE_DIR, prune_run, run_dir, write_run_plan

logger = logging.getLogger(__name__)

#: Folder of the study caches under ``operator/``.
CONTRIBUTION_DIR = "contribution"
#: The latest study's result, under ``operator/``.
CONTRIBUTION_FILE = "contribution.json"
StudyMethod = Literal["auto", "exact", "permutation", "leave_one_out"]


class StudyConfig(BaseModel):
    """How a contribution study trains its coalitions and attributes the values.

    The training settings (``rounds``, ``local_epochs``, ``head_finetune_epochs``) apply to
    every coalition alike and override the main plan; everything else (trunk, learning rate,
    batch size, server optimizer, quantization, seed) is the main plan's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(
        2,
        ge=1,
        le=1000,
        description="Federated rounds per coalition (fixed budget, no early stopping). Each "
        "exact study trains 2^n − n − 1 coalitions, so this is usually below the main run's.",
    )
    local_epochs: float | None = Field(
        None, gt=0, le=100, description="Local epochs per round (None: the main plan's)."
    )
    head_finetune_epochs: int | None = Field(
        None, ge=0, le=100, description="Head fine-tuning epochs at the end (None: main plan's)."
    )
    method: StudyMethod = Field(
        "auto",
        description="'auto' (exact for ≤ exact_max_players partners, else permutation), "
        "'exact', 'permutation' or 'leave_one_out' (LOO only, n + 1 coalitions).",
    )
    samples: int = Field(64, ge=2, le=100_000, description="Orderings sampled (permutation).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of sampled intervals.")
    seed: int = Field(0, ge=0, description="Seed of permutation sampling.")
    exact_max_players: int = Field(
        EXACT_MAX_PLAYERS, ge=1, le=16, description="Largest consortium for exact Shapley."
    )
    prune: bool = Field(
        True,
        description="Once a coalition's utility is recorded, delete its envelopes from the "
        "exchange store and its trunk files at the operator (the ledger keeps every hash). "
        "Without it a study stores (rounds + 1) × (members + 1) trunks per coalition.",
    )
    stage_timeout_s: float | None = Field(
        None, gt=0, description="Per secure-aggregation stage (None: the main plan's)."
    )

    def training(self) -> dict[str, float | int | None]:
        """The settings that shape a coalition's model (they enter the study id)."""
        return {
            "rounds": self.rounds,
            "local_epochs": self.local_epochs,
            "head_finetune_epochs": self.head_finetune_epochs,
        }


@dataclass(frozen=True)
class CoalitionRun:
    """What one coalition's training gave (passed to ``on_coalition``)."""

    coalition: tuple[str, ...]
    run_id: str
    utility: float
    rounds: int
    wall_seconds: float


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def study_id(
    players: Iterable[str],
    consortium_hash: str,
    initial_trunk_sha256: str,
    plan: FederationPlan,
    study: StudyConfig,
) -> str:
    """A short hash of everything that shapes the coalitions' models.

    Partners, consortium parameters, the initial trunk, the main plan's training settings
    (its round budget, patience and run id aside) and the study's own
    (:meth:`StudyConfig.training`). The estimator and its seed are left out: changing them
    reuses the coalitions.
    """
    base = json.loads(plan.model_dump_json())
    for key in ("run_id", "rounds", "patience", "participants", "report_test_gain"):
        base.pop(key, None)
    doc = {
        "players": sorted(players),
        "consortium_hash": consortium_hash,
        "initial_trunk": initial_trunk_sha256,
        "plan": base,
        "study": study.training(),
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def coalition_run_id(sid: str, players: tuple[str, ...], coalition: Coalition) -> str:
    """``cs-<study id>-<mask>``: bit i of the hex mask is the i-th partner in sorted order."""
    mask = sum(1 << i for i, p in enumerate(players) if p in coalition)
    return f"cs-{sid}-{mask:0{max(1, (len(players) + 3) // 4)}x}"


def coalition_plan(
    base: FederationPlan, study: StudyConfig, run_id: str, coalition: Coalition
) -> FederationPlan:
    """The main plan, restricted to ``coalition`` under the study's training settings.

    The secure-aggregation threshold is left to its default for the coalition's size
    (t = 2 for two members), so every coalition of two or more can aggregate.
    """
    local = base.local.model_copy(
        update={
            k: v
            for k, v in (
                ("epochs", study.local_epochs),
                ("head_finetune_epochs", study.head_finetune_epochs),
            )
            if v is not None
        }
    )
    doc = json.loads(base.model_dump_json())
    doc.update(
        run_id=run_id,
        rounds=study.rounds,
        patience=study.rounds,  # a fixed budget: the same for every coalition
        participants=sorted(coalition),
        threshold=None,
        report_test_gain=True,
        local=json.loads(local.model_dump_json()),
    )
    if study.stage_timeout_s is not None:
        doc["stage_timeout_s"] = study.stage_timeout_s
    return FederationPlan.model_validate(doc)


def _train_coalition(
    ctx: OperatorContext,
    exchange_url: str,
    launcher: Launcher,
    study: StudyConfig,
    sid: str,
    coalition: Coalition,
    on_coalition: Callable[[CoalitionRun], None] | None,
) -> Mapping[str, float]:
    """Train ``coalition`` as its own run; return each member's reported gain."""
    players = tuple(sorted(ctx.roster.partners))
    run_id = coalition_run_id(sid, players, coalition)
    members = tuple(sorted(coalition))
    write_run_plan(ctx.operator_dir, coalition_plan(ctx.plan, study, run_id, coalition))
    logger.info("coalition %s: training as run %s", ",".join(members), run_id)
    t0 = time.perf_counter()
    result = run_training(ctx.operator_dir, exchange_url, launcher, resume=True, run_id=run_id)
    missing = sorted(set(members).difference(result.utility_reports))
    if missing:
        raise AccountingError(
            f"partner(s) {missing} did not report their gain for coalition {list(members)} "
            f"(run {run_id}).",
            fix="make sure each has its local-only baseline (`pharmafl model baseline`) and "
            "is reachable, then run the study again: recorded coalitions are reused and this "
            "one repeats only its final evaluation.",
        )
    gains = {p: r.gain if r.gain is not None else 0.0 for p, r in result.utility_reports.items()}
    for p, r in result.utility_reports.items():
        if r.gain is None:
            logger.warning("%s has no scorable test task in run %s: gain counted as 0", p, run_id)
    utility = mean_gain_utility(gains, players)
    ctx.ledger.append(
        ctx.identity.id,
        ctx.identity,
        LedgerEvent.COALITION_EVALUATED,
        {
            "study_id": sid,
            "run_id": run_id,
            "coalition": list(members),
            "utility": utility,
            "reports": dict(sorted(result.utility_report_hashes.items())),
        },
    )
    wall = time.perf_counter() - t0
    logger.info("coalition %s: v = %.4f in %.1f s", ",".join(members), utility, wall)
    if on_coalition is not None:
        on_coalition(CoalitionRun(members, run_id, utility, result.rounds, round(wall, 2)))
    return gains


def _prune_recorded(
    operator_dir: Path, exchange_url: str, sid: str, players: tuple[str, ...], v: CachedUtility
) -> None:
    """Prune the runs of coalitions whose utility is already in the cache (never before: a
    coalition interrupted between its training and the cache keeps its trained model)."""
    for coalition in v.values():
        if len(coalition) < 2:
            continue
        run_id = coalition_run_id(sid, players, coalition)
        if (run_dir(operator_dir, run_id) / STATE_DIR).is_dir():
            n = prune_run(operator_dir, exchange_url, run_id)
            logger.debug("pruned run %s (%d rounds)", run_id, n)


def _record_finished(ctx: OperatorContext, payload: dict[str, object]) -> None:
    """Append ``contribution_study_finished`` unless the last such entry says the same."""
    doc = validate_payload(LedgerEvent.CONTRIBUTION_STUDY_FINISHED, payload)
    if ctx.ledger.path.is_file():
        last = [
            e
            for e in read_entries(ctx.ledger.path)
            if e.event is LedgerEvent.CONTRIBUTION_STUDY_FINISHED
        ]
        if last and last[-1].payload == doc:
            logger.info("the ledger already records this contribution study's result")
            return
    ctx.ledger.append(ctx.identity.id, ctx.identity, LedgerEvent.CONTRIBUTION_STUDY_FINISHED, doc)


def contribution_study(
    operator_dir: str | Path,
    exchange_url: str,
    launcher: Launcher,
    study: StudyConfig | None = None,
    *,
    on_coalition: Callable[[CoalitionRun], None] | None = None,
) -> ContributionResult:
    """Run (or resume) the contribution study of the consortium (see the module doc).

    Parameters
    ----------
    operator_dir
        The operator folder of the main run (``plan.json``, roster, initial trunk, ledger).
        The main run's own files are never touched.
    exchange_url
        The exchange store.
    launcher
        Starts partner rounds (embedded threads or Prefect deployments), as for the main run.
    study
        Training budget and estimator (default :class:`StudyConfig`).
    on_coalition
        Called after each coalition trained in this call (not for cached ones).

    Returns
    -------
    ContributionResult
        Also written to ``operator/contribution.json`` and recorded on the ledger.

    Raises
    ------
    AccountingError
        A member did not report its gain, or the estimator cannot run (e.g. exact Shapley
        beyond ``exact_max_players``).
    FederationError
        A coalition's training failed (e.g. too few members reachable); rerun to resume.
    """
    cfg = study or StudyConfig()
    odir = Path(operator_dir)
    ctx = load_operator(odir, exchange_url)
    players = tuple(sorted(ctx.roster.partners))
    sid = study_id(
        players,
        ctx.consortium_hash,
        _file_sha256(odir / INITIAL_TRUNK_FILE),
        ctx.plan,
        cfg,
    )
    cache_path = odir / CONTRIBUTION_DIR / sid / "utilities.json"
    logger.info(
        "contribution study %s: %d partners, %d rounds per coalition",
        sid,
        len(players),
        cfg.rounds,
    )
    trained: list[Coalition] = []

    def train_and_report(coalition: Coalition) -> Mapping[str, float]:
        if cfg.prune:
            _prune_recorded(odir, exchange_url, sid, players, v)
        gains = _train_coalition(ctx, exchange_url, launcher, cfg, sid, coalition, on_coalition)
        trained.append(coalition)
        return gains

    v = CachedUtility(
        players,
        coalition_utility(train_and_report, players),
        cache_path=cache_path,
        description=DEFAULT_UTILITY,
    )
    options: dict[str, object] = {}
    method = cfg.method
    if method == "auto":
        method = "exact" if len(players) <= cfg.exact_max_players else "permutation"
    if method == "permutation":
        options |= {"n_permutations": cfg.samples, "confidence": cfg.confidence}
    result = estimate_contributions(
        players,
        v,
        method=method,
        rng=cfg.seed,
        exact_max_players=cfg.exact_max_players,
        **options,
    )
    if cfg.prune:
        _prune_recorded(odir, exchange_url, sid, players, v)
    _record_finished(
        ctx,
        {
            "study_id": sid,
            "parameters": json.loads(cfg.model_dump_json()),
            "utility": result.utility,
            "method": result.method,
            "grand_coalition_utility": result.grand_coalition_utility,
            "empty_coalition_utility": result.empty_coalition_utility,
            "shapley": result.shapley or {},
            "leave_one_out": result.leave_one_out,
            "n_coalitions": result.n_coalitions,
            "shapley_ci": result.shapley_ci,
            "confidence": result.confidence,
        },
    )
    atomic_write_text(odir / CONTRIBUTION_FILE, result.model_dump_json(indent=2) + "\n")
    logger.info(
        "contribution study %s done: %s, %d coalitions (%d trained now)",
        sid,
        result.method,
        result.n_coalitions,
        len(trained),
    )
    return result


__all__ = [
    "CONTRIBUTION_DIR",
    "CONTRIBUTION_FILE",
    "CoalitionRun",
    "StudyConfig",
    "StudyMethod",
    "coalition_plan",
    "coalition_run_id",
    "contribution_study",
    "study_id",
]
