"""The operator's contribution-study flow (``pharmafl contribution CONSORTIUM_DIR``).

Trains every coalition the estimator needs as its own securely aggregated federated run
(same launchers as ``pharmafl train``: embedded threads or the partners' deployments) and
attributes leave-one-out and Shapley values from the members' scalar gains
(:func:`pharmafl.accounting.contribution_study`). Publishes a table of the per-partner
values and a markdown summary as Prefect artifacts on its run (utilities only).
"""

# No `from __future__ import annotations`: Prefect builds each flow's parameter model from
# its annotations, which must be objects (the flow body is wrapped by fails_cleanly).
import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows._states import fails_cleanly, operator_environment, result_or_raise
from flows.launchers import DeploymentLauncher, LauncherKind, make_launcher
from pharmafl.accounting import CoalitionRun, ContributionResult, StudyConfig, contribution_study
from pharmafl.layout import ConsortiumLayout
from pharmafl.report import contribution_rows, contribution_study_markdown
from pharmafl.server import Launcher, load_operator

log = logging.getLogger(__name__)

#: The tag name of the study's own flow runs (``pharmafl-run:<consortium>:contribution``).
STUDY_RUN = "contribution"


def publish_contribution_artifacts(result: ContributionResult, study: StudyConfig) -> None:
    """The per-partner table and the summary as Prefect artifacts (best effort)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    try:
        create_table_artifact(
            contribution_rows(result),
            key="pharmafl-contributions",
            description="Per-partner Shapley and leave-one-out values of the consortium utility.",
        )
        create_markdown_artifact(
            contribution_study_markdown(result, study),
            key="pharmafl-contribution-summary",
            description="Contribution study summary.",
        )
    except Exception as exc:  # the study itself is done and recorded
        log.warning("could not publish the contribution artifacts: %s", type(exc).__name__)


@flow(name="pharmafl-contribution", persist_result=False, log_prints=False)
@fails_cleanly("contribution study")
def contribution_flow(
    consortium_dir: str,
    study: StudyConfig | None = None,
    exchange_url: str | None = None,
    launcher: LauncherKind = "embedded",
) -> dict[str, Any]:
    """Run or resume the contribution study; returns the ContributionResult as JSON."""
    logger = get_run_logger()
    layout = ConsortiumLayout(Path(consortium_dir))
    url = exchange_url or str(layout.exchange)
    cfg = study or StudyConfig()
    ctx = load_operator(layout.operator.root, url)
    timeout = cfg.stage_timeout_s or ctx.plan.stage_timeout_s

    def new_launcher() -> Launcher:  # one per coalition (closed after it); a coalition run
        # interrupted with the study (its operator dead) has its stale flow runs cancelled
        scope = ctx.consortium_hash[:12]
        return make_launcher(launcher, layout.root, url, timeout, scope, clear_stale=True)

    def on_coalition(run: CoalitionRun) -> None:
        logger.info(
            "coalition of %d (run %s): %d rounds in %.1f s",
            len(run.coalition),
            run.run_id,
            run.rounds,
            run.wall_seconds,
        )

    if launcher == "distributed":
        _claim_study(url, timeout, ctx.consortium_hash[:12])
    result = contribution_study(
        layout.operator.root, url, new_launcher, cfg, on_coalition=on_coalition
    )
    publish_contribution_artifacts(result, cfg)
    return result.model_dump(mode="json")


def _claim_study(exchange_url: str, timeout_s: float, scope: str) -> None:
    """Tag the study's own flow run, and cancel an earlier study's that its dead operator
    left running (studies of a consortium run one at a time; a rerun resumes it)."""
    with DeploymentLauncher(exchange_url, timeout_s, scope=scope) as claimer:
        claimer.claim(STUDY_RUN, resume=True)


def run_contribution_study(
    consortium_dir: str | Path,
    study: StudyConfig | None = None,
    *,
    exchange_url: str | None = None,
    launcher: LauncherKind = "embedded",
) -> ContributionResult:
    """Run :func:`contribution_flow`; return its result or raise its pharmafl error.

    ``consortium_dir`` holds ``operator/`` (set up and, usually, trained) and ``partners/``
    (each with its local-only baseline in ``models/local/``). The exchange store defaults to
    ``CONSORTIUM_DIR/exchange``. With ``launcher="distributed"`` the flow runs against the
    Prefect API of ``PREFECT_API_URL``, where the partners' deployments are.
    """
    operator_environment(launcher)
    doc = result_or_raise(
        contribution_flow,
        str(consortium_dir),
        study=study,
        exchange_url=exchange_url,
        launcher=launcher,
    )
    return ContributionResult.model_validate(doc)


__all__ = [
    "contribution_flow",
    "publish_contribution_artifacts",
    "run_contribution_study",
]
