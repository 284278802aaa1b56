"""The operator's training flow (``pharmafl train CONSORTIUM_DIR``).

Two launchers, one flow code (``flows/launchers.py``):

- ``embedded`` (default): every partner on this machine, each partner round a Prefect flow
  run in its own thread reading only its own folder; Prefect's ephemeral API, no server.
- ``distributed``: a Prefect server with one work pool and worker per partner; partner rounds
  are started with ``run_deployment`` on each partner's deployment
  (``pharmafl-partner-round/<partner>``) and run on the partner's own machine.

Only encrypted, signed envelopes travel, through the exchange store. At the end the flow
publishes two Prefect artifacts on its run (scalars the ledger already holds, nothing
data-derived beyond them): a table of the rounds and a markdown summary.
"""

# No `from __future__ import annotations`: Prefect builds each flow's parameter model from
# its annotations, which must be objects (the flow body is wrapped by fails_cleanly).
import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows._states import fails_cleanly, operator_environment, result_or_raise
from flows.launchers import EMBEDDED_POLL_S, DeploymentLauncher, LauncherKind, make_launcher
from pharmafl.layout import ConsortiumLayout
from pharmafl.server import RoundResult, TrainingResult, load_operator, run_training

log = logging.getLogger(__name__)


def dropped_text(rec: RoundResult) -> str:
    """``"charlie (worker offline), delta (run crashed)"``: who dropped out and why."""
    return ", ".join(
        f"{p} ({rec.dropout_causes[p]})" if p in rec.dropout_causes else p for p in rec.dropped
    )


def rounds_table(history: list[RoundResult]) -> list[dict[str, Any]]:
    """One row per completed round: contributors, dropped partners, mean validation AUC-PR."""
    return [
        {
            "round": rec.round,
            "contributors": ", ".join(rec.contributors),
            "dropped": dropped_text(rec) or "-",
            "mean validation AUC-PR": "n/a"
            if rec.mean_validation_auc_pr is None
            else round(rec.mean_validation_auc_pr, 4),
        }
        for rec in history
    ]


def training_markdown(result: TrainingResult) -> str:
    """The markdown summary of a finished run (round count, stop reason, final trunk hash)."""
    dropped = sum(len(v) for v in result.dropped.values())
    last = result.history[-1].mean_validation_auc_pr if result.history else None
    return "\n".join(
        [
            "# pharmafl federated training",
            "",
            "| | |",
            "|---|---|",
            f"| rounds | {result.rounds} |",
            f"| stop reason | {result.stop_reason} |",
            "| secure aggregation | yes |",
            f"| dropouts (partner-rounds) | {dropped} |",
            f"| last mean validation AUC-PR | {'n/a' if last is None else f'{last:.4f}'} |",
            f"| final trunk SHA-256 | `{result.final_trunk_sha256}` |",
            f"| wall time | {result.wall_seconds:.1f} s |",
        ]
    )


def publish_training_artifacts(result: TrainingResult) -> None:
    """The rounds table and summary as Prefect artifacts on the current flow run.

    Best effort: an API that refuses artifacts does not fail a finished training.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    try:
        create_table_artifact(
            rounds_table(result.history),
            key="pharmafl-training-rounds",
            description="Federated rounds: contributors, dropouts, mean validation AUC-PR.",
        )
        create_markdown_artifact(
            training_markdown(result),
            key="pharmafl-training-summary",
            description="Federated training run summary.",
        )
    except Exception as exc:  # the run itself is done and checkpointed
        log.warning("could not publish the training artifacts: %s", type(exc).__name__)


@flow(name="pharmafl-train", persist_result=False, log_prints=False)
@fails_cleanly("training")
def train_flow(
    consortium_dir: str,
    exchange_url: str | None = None,
    launcher: LauncherKind = "embedded",
    resume: bool = False,
    rounds: int | None = None,
) -> TrainingResult:
    """Run or resume federated training; returns what it did (scalars and hashes only)."""
    logger = get_run_logger()
    layout = ConsortiumLayout(Path(consortium_dir))
    url = exchange_url or str(layout.exchange)

    def on_round(rec: RoundResult) -> None:
        logger.info(
            "round %s: %d contributors, %d dropped%s, mean validation AUC-PR %s",
            rec.round,
            len(rec.contributors),
            len(rec.dropped),
            f" ({dropped_text(rec)})" if rec.dropped else "",
            rec.mean_validation_auc_pr,
        )

    ctx = load_operator(layout.operator.root, url)
    plan, scope = ctx.plan, ctx.consortium_hash[:12]
    with make_launcher(launcher, layout.root, url, plan.stage_timeout_s, scope) as chosen:
        if isinstance(chosen, DeploymentLauncher):  # tag this run; resumed: clear stale runs
            chosen.claim(plan.run_id, resume=resume)
        result = run_training(
            layout.operator.root,
            url,
            chosen,
            resume=resume,
            rounds=rounds,
            on_round=on_round,
            poll_s=0.2 if isinstance(chosen, DeploymentLauncher) else EMBEDDED_POLL_S,
        )
    publish_training_artifacts(result)
    return result


def run_train(
    consortium_dir: str | Path,
    *,
    exchange_url: str | None = None,
    launcher: LauncherKind = "embedded",
    resume: bool = False,
    rounds: int | None = None,
) -> TrainingResult:
    """Run :func:`train_flow` and return its result or raise its pharmafl error.

    With ``launcher="distributed"`` the flow runs against the Prefect API of
    ``PREFECT_API_URL`` (the consortium's server, where the partners' deployments are).
    """
    operator_environment(launcher)
    return result_or_raise(  # type: ignore[no-any-return]
        train_flow,
        str(consortium_dir),
        exchange_url=exchange_url,
        launcher=launcher,
        resume=resume,
        rounds=rounds,
    )


__all__ = [
    "dropped_text",
    "publish_training_artifacts",
    "rounds_table",
    "run_train",
    "train_flow",
    "training_markdown",
]
