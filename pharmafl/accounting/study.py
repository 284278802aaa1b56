"""The contribution study: train coalitions federatedly, collect a gain each, attribute.

The players are the consortium's **valuation groups**, signed in its security policy
(:class:`~pharmafl.secure.SecurityPolicy`): partners that are always aggregated together,
each group at least max(3, c + 2) strong. Valuing single partners would train coalitions S
and S ∖ {i}, and the difference of their aggregates is i's update, for the operator and for
every other member (issue 12); over whole groups, any such difference is a group's sum, and
partners refuse to take part in anything else (:mod:`pharmafl.partner.reveals`). Without at
least two groups there is no study (:func:`~pharmafl.accounting.coalitions.study_groups`).

For every coalition S of groups the estimator asks about, the operator runs a full federated
training among the partners of S only — the same machinery as the main run (signed round
specs, secure aggregation through the exchange store, each partner's own private head), as
its own run ``cs-<study id>-<groups>`` — and at its final evaluation every member reports
its gain on its own tasks: the test AUC-PR of the coalition's model minus its local-only
model's, with that gain's standard error over its tasks. Then

    v(S) = mean over *all* partners of the members' gains (non-members gain 0),

so v(∅) = 0; a single group is a federation and is trained too. Exact Shapley values,
leave-one-out or a permutation-sampling estimate follow from these utilities
(:mod:`pharmafl.accounting.shapley`); every member of a group shares its group's values.

Every coalition runs under the same study settings (:class:`StudyConfig`: usually a smaller
round budget than the main run), the grand coalition included, so the values are consistent
and Σ φ_i = v(N) − v(∅) holds exactly. Utilities are cached in
``operator/contribution/<study id>/utilities.json`` after each coalition: an interrupted study
resumes (an unfinished coalition continues from its last round) and never retrains a
coalition whose utility is recorded. The study id hashes everything that shapes a coalition's
model (partners, consortium parameters, initial trunk, training settings), so changing any
of them starts a new study, while switching the estimator reuses the cache.

Coalitions run one after another, or ``StudyConfig.parallel`` at a time when the estimator's
coalitions are known in advance (exact, leave-one-out) and a launcher factory is given; a
round mostly waits on I/O and orchestration, so two at a time pay off even on two cores.

On the ledger: each coalition run's rounds and aggregates under its own run id, a
``coalition_evaluated`` entry per coalition (v(S) and the hashes of the members' signed
reports, not the gains themselves), and a ``contribution_study_finished`` entry with the
values. Torch-free and RDKit-free.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from pharmafl.accounting.coalitions import (
    CoalitionRun,
    StudyConfig,
    coalition_plan,
    coalition_run_id,
    file_sha256,
    needed_coalitions,
    study_groups,
    study_id,
)
from pharmafl.accounting.shapley import ContributionResult, estimate_contributions
from pharmafl.accounting.utility import (
    DEFAULT_UTILITY,
    CachedUtility,
    Coalition,
    UtilityEstimate,
    coalition_utility,
    mean_gain_utility,
)
from pharmafl.common.errors import AccountingError
from pharmafl.common.io import atomic_write_text
from pharmafl.layout import CONTRIBUTION_DIR, CONTRIBUTION_FILE, OperatorLayout
from pharmafl.ledger import LedgerEvent, read_entries, validate_payload
from pharmafl.server import (
    Launcher,
    OperatorContext,
    load_operator,
    prune_run,
    run_training,
    write_run_plan,
)

logger = logging.getLogger(__name__)


def _train_coalition(
    ctx: OperatorContext,
    exchange_url: str,
    launcher: Launcher,
    study: StudyConfig,
    sid: str,
    coalition: Coalition,
    on_coalition: Callable[[CoalitionRun], None] | None,
) -> Mapping[str, UtilityEstimate]:
    """Train the partners ``coalition`` (whole valuation groups) as its own run; return each
    member's reported gain."""
    groups = study_groups(ctx.roster.security_policy)
    players = tuple(sorted(groups))
    labels = frozenset(g for g, m in groups.items() if set(m) <= coalition)
    run_id = coalition_run_id(sid, players, labels)
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
            fix="make sure each has its local-only baseline (`pharmafl baseline`) and "
            "is reachable, then run the study again: recorded coalitions are reused and this "
            "one repeats only its final evaluation.",
        )
    gains = {
        p: UtilityEstimate(0.0, 0.0) if r.gain is None else UtilityEstimate(r.gain, r.gain_se)
        for p, r in result.utility_reports.items()
    }
    for p, r in result.utility_reports.items():
        if r.gain is None:
            logger.warning("%s has no scorable test task in run %s: gain counted as 0", p, run_id)
    utility = mean_gain_utility(gains, ctx.roster.partners)
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
        if not coalition:
            continue
        run_id = coalition_run_id(sid, players, coalition)
        if OperatorLayout(Path(operator_dir)).state_dir(run_id).is_dir():
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


def _train_in_parallel(
    todo: list[Coalition],
    parallel: int,
    train: Callable[[Coalition, Launcher], Mapping[str, UtilityEstimate]],
    new_launcher: Callable[[], Launcher],
    record: Callable[[Coalition, Mapping[str, UtilityEstimate]], None],
) -> None:
    """Train ``todo`` with ``parallel`` workers, each coalition with a fresh launcher;
    ``record`` runs in this thread as each one finishes. The first failure is raised after
    the coalitions already running have finished and been recorded."""

    def one(coalition: Coalition) -> Mapping[str, UtilityEstimate]:
        launcher = new_launcher()
        try:
            return train(coalition, launcher)
        finally:
            launcher.close()

    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="pharmafl-study") as pool:
        pending: dict[Future[Mapping[str, UtilityEstimate]], Coalition] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < parallel and not errors:
                c = queue.pop(0)
                # In the caller's context: Prefect settings (e.g. the API URL of a
                # temporary_settings block) and run context live in context variables.
                pending[pool.submit(contextvars.copy_context().run, one, c)] = c
            if not pending:
                break
            done, _ = wait(pending, return_when="FIRST_COMPLETED")
            for fut in done:
                c = pending.pop(fut)
                exc = fut.exception()
                if exc is not None:
                    errors.append(exc)
                else:
                    record(c, fut.result())
    if errors:
        raise errors[0]


def contribution_study(
    operator_dir: str | Path,
    exchange_url: str,
    launcher: Launcher | Callable[[], Launcher],
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
        Starts partner rounds (embedded threads or Prefect deployments), as for the main run:
        one launcher (coalitions one after another), or a factory returning a fresh one per
        coalition (closed after it if it has ``close()``), needed for ``study.parallel > 1``.
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
    groups = study_groups(ctx.roster.security_policy)
    players = tuple(sorted(groups))
    sid = study_id(
        players,
        ctx.consortium_hash,
        file_sha256(OperatorLayout(odir).initial_trunk),
        ctx.plan,
        cfg,
    )
    cache_path = OperatorLayout(odir).contribution_dir / sid / "utilities.json"
    logger.info(
        "contribution study %s: %d valuation groups, %d rounds per coalition",
        sid,
        len(players),
        cfg.budget(ctx.plan)[0],
    )
    trained: list[Coalition] = []
    ready: dict[Coalition, Mapping[str, UtilityEstimate]] = {}
    single: Launcher | None = None
    factory: Callable[[], Launcher] | None = None
    if isinstance(launcher, Launcher):
        single = launcher
    else:
        factory = launcher

    def members(labels: Coalition) -> Coalition:
        return frozenset(p for g in labels for p in groups[g])

    def train(coalition: Coalition, chosen: Launcher) -> Mapping[str, UtilityEstimate]:
        return _train_coalition(ctx, exchange_url, chosen, cfg, sid, coalition, on_coalition)

    def train_and_report(coalition: Coalition) -> Mapping[str, UtilityEstimate]:
        if coalition in ready:  # trained in the parallel phase (keyed by members)
            return ready.pop(coalition)
        if cfg.prune:
            _prune_recorded(odir, exchange_url, sid, players, v)
        if single is not None:
            gains = train(coalition, single)
        else:
            assert factory is not None
            chosen = factory()
            try:
                gains = train(coalition, chosen)
            finally:
                chosen.close()
        trained.append(coalition)
        return gains

    v = CachedUtility(
        players,
        coalition_utility(train_and_report, groups),
        cache_path=cache_path,
        description=DEFAULT_UTILITY,
    )
    options: dict[str, object] = {}
    method = cfg.method
    if method == "auto":
        method = "exact" if len(players) <= cfg.exact_max_players else "permutation"
    options["confidence"] = cfg.confidence
    if method == "permutation":
        options["n_permutations"] = cfg.samples
    elif method == "exact" and len(players) > cfg.exact_max_players:
        pass  # the estimator refuses it (with the fix) before any training
    elif cfg.parallel > 1:
        if factory is None:
            raise AccountingError(
                "training coalitions in parallel needs a launcher per coalition.",
                fix="pass a launcher factory (a callable returning a new launcher), or parallel=1.",
            )
        todo = [c for c in needed_coalitions(method, players) if c not in v]
        if todo:
            logger.info("training %d coalitions, %d at a time", len(todo), cfg.parallel)

            def record(labels: Coalition, gains: Mapping[str, UtilityEstimate]) -> None:
                ready[members(labels)] = gains
                trained.append(labels)
                v(labels)  # into the cache (and its file) right away
                if cfg.prune:  # keep the store small while the others train
                    _prune_recorded(odir, exchange_url, sid, players, v)

            def train_groups(labels: Coalition, chosen: Launcher) -> Mapping[str, UtilityEstimate]:
                return train(members(labels), chosen)

            _train_in_parallel(todo, cfg.parallel, train_groups, factory, record)
    result = estimate_contributions(
        players,
        v,
        method=method,
        rng=cfg.seed,
        exact_max_players=cfg.exact_max_players,
        **options,
    ).model_copy(update={"groups": {g: list(m) for g, m in groups.items()}})
    if cfg.prune:
        _prune_recorded(odir, exchange_url, sid, players, v)
    _record_finished(
        ctx,
        {
            "study_id": sid,
            "parameters": cfg.parameters(),
            "utility": result.utility,
            "method": result.method,
            "grand_coalition_utility": result.grand_coalition_utility,
            "empty_coalition_utility": result.empty_coalition_utility,
            "shapley": result.shapley or {},
            "leave_one_out": result.leave_one_out,
            "n_coalitions": result.n_coalitions,
            "shapley_ci": result.shapley_ci,
            "confidence": result.confidence,
            "leave_one_out_ci": result.leave_one_out_ci,
            "grand_coalition_ci": result.grand_coalition_ci,
            "groups": result.groups,
        },
    )
    atomic_write_text(OperatorLayout(odir).contribution, result.model_dump_json(indent=2) + "\n")
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
    "contribution_study",
]
