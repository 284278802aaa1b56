"""The operator's training flow (``pharmafl train CONSORTIUM_DIR``).

Two launchers, one flow code:

- ``embedded`` (default): every partner on this machine, each partner round a Prefect flow
  run in its own thread reading only its own folder; Prefect's ephemeral API, no server.
- ``distributed``: a Prefect server with one work pool and worker per partner; partner rounds
  are started with ``run_deployment`` on each partner's deployment
  (``pharmafl-partner-round/<partner>``) and run on the partner's own machine.

Only encrypted, signed envelopes travel, through the exchange store. At the end the flow
publishes two Prefect artifacts on its run (scalars the ledger already holds, nothing
data-derived beyond them): a table of the rounds and a markdown summary.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger

from flows._states import clean_failure, operator_environment, result_or_raise
from pharmafl.server.operator import Launcher, TrainingResult, run_training

DEPLOYMENT_FLOW = "pharmafl-partner-round"

log = logging.getLogger(__name__)


class EmbeddedLauncher:
    """Partner rounds as flow runs in threads of this process (a thread per run)."""

    def __init__(self, partner_dirs: dict[str, Path], exchange_url: str, timeout_s: float):
        self.partner_dirs = partner_dirs
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self._pools: list[ThreadPoolExecutor] = []
        self._runs: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()

    def _run(self, partner: str, round_id: str, final: bool) -> Any:
        from flows.partner_round import partner_round_flow

        return result_or_raise(
            partner_round_flow,
            str(self.partner_dirs[partner]),
            self.exchange_url,
            round_id,
            final=final,
            timeout_s=self.timeout_s,
        )

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        # Never a shared, bounded pool: a straggler still running after finish() gave up on
        # it would hold a thread that the next round's partners need at the same time.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pharmafl-{partner}")
        with self._lock:
            self._runs[partner] = pool.submit(self._run, partner, round_id, final)
            self._pools.append(pool)
        pool.shutdown(wait=False)  # its thread ends with the run

    def failed(self) -> dict[str, str]:
        with self._lock:
            runs = dict(self._runs)
        out = {}
        for partner, fut in runs.items():
            if fut.done() and fut.exception() is not None:
                out[partner] = f"{type(fut.exception()).__name__}: {fut.exception()}"[:300]
        return out

    def finish(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        with self._lock:
            runs = dict(self._runs)
            self._runs.clear()
        out = {}
        for partner, fut in runs.items():
            try:
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # the partner's failure is a dropout, not ours
                out[partner] = (
                    f"{type(exc).__name__}: {exc}"[:300]
                    if fut.done()
                    else f"still running after {timeout_s:.0f} s"
                )
        return out

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for pool in pools:
            pool.shutdown(wait=True)


class DeploymentLauncher:
    """Partner rounds through ``run_deployment`` on each partner's own work pool.

    Sends only the exchange URL, the round id, ``final`` and the timeout; the partner folder
    is the deployment's own default, set by the partner (``pharmafl partner serve``). A
    partner whose deployment cannot be started counts as failed (a dropout), like one whose
    flow run fails or crashes. Runs still not finished at the deadline, and round runs not
    even started when the round is over, are cancelled, so a worker that comes back late
    never starts a stale round.
    """

    def __init__(self, exchange_url: str, timeout_s: float, poll_s: float = 1.0) -> None:
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._runs: dict[str, Any] = {}  # partner -> flow run id
        self._start_errors: dict[str, str] = {}
        self._states: dict[str, Any] = {}
        self._polled_at = -math.inf
        self._final = False

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        name = f"{DEPLOYMENT_FLOW}/{partner}"
        self._final = final
        try:
            run = run_deployment(
                name,
                parameters={
                    "exchange_url": self.exchange_url,
                    "round_id": round_id,
                    "final": final,
                    "timeout_s": self.timeout_s,
                },
                flow_run_name=f"{round_id}-{partner}",
                idempotency_key=f"{round_id}/{partner}",  # a retried request starts no 2nd run
                timeout=0,  # do not wait: rounds of all partners run at the same time
                as_subflow=False,
            )
        except ObjectNotFound:
            self._start_errors[partner] = (
                f"no deployment {name} on the Prefect server "
                "(the partner runs `pharmafl partner serve PARTNER_DIR --pool POOL`)"
            )
        except Exception as exc:  # an unreachable partner deployment is a dropout
            self._start_errors[partner] = f"could not start {name}: {type(exc).__name__}"
        else:
            self._runs[partner] = run.id  # type: ignore[union-attr]
            self._polled_at = -math.inf
            return
        log.warning("partner %s not started: %s", partner, self._start_errors[partner])

    def _poll(self, force: bool = False) -> dict[str, Any]:
        """Current states of the started runs (one API call, at most every ``poll_s``)."""
        if not self._runs:
            return {}
        if not force and time.monotonic() - self._polled_at < self.poll_s:
            return self._states
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        ids = list(self._runs.values())
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=len(ids)
            )
        by_id = {r.id: r.state for r in runs}
        self._states = {p: by_id.get(fid) for p, fid in self._runs.items()}
        self._polled_at = time.monotonic()
        return self._states

    @staticmethod
    def _reason(state: Any) -> str:
        if state is None:
            return "flow run not found on the Prefect server"
        return f"flow run {state.name}: {state.message or ''}".strip()[:300]

    def failed(self) -> dict[str, str]:
        out = dict(self._start_errors)
        for p, st in self._poll().items():
            if st is not None and (st.is_failed() or st.is_crashed() or st.is_cancelled()):
                out[p] = self._reason(st)
        return out

    def _cancel(self, partner: str, state: Any) -> None:
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled, Cancelling

        running = state is not None and state.is_running()
        new = Cancelling if running else Cancelled
        try:
            with get_client(sync_client=True) as client:
                client.set_flow_run_state(
                    self._runs[partner], new(message="round deadline passed"), force=True
                )
        except Exception as exc:  # best effort: the run is already counted as failed
            log.warning("could not cancel the run of %s: %s", partner, type(exc).__name__)

    def finish(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self._poll(force=True)
            # After a round's secure aggregation, a run that has not even started cannot
            # contribute any more (its partner was dropped): no reason to wait for it.
            if all(
                st is not None and (st.is_final() or (not self._final and _unstarted(st)))
                for st in states.values()
            ):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(self.poll_s)
        out = dict(self._start_errors)
        for p, st in states.items():
            if st is None or not st.is_completed():
                out[p] = self._reason(st)
            if st is not None and not st.is_final():
                self._cancel(p, st)
        self._runs.clear()
        self._start_errors.clear()
        self._states = {}
        self._final = False
        return out


def _unstarted(state: Any) -> bool:
    return bool(state.is_scheduled() or state.is_pending())


def rounds_table(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per completed round: contributors, dropped partners, mean validation AUC-PR."""
    rows = []
    for rec in history:
        auc = rec.get("mean_validation_auc_pr")
        rows.append(
            {
                "round": rec["round"],
                "contributors": ", ".join(rec["contributors"]),
                "dropped": ", ".join(rec["dropped"]) or "-",
                "mean validation AUC-PR": "n/a" if auc is None else round(float(auc), 4),
            }
        )
    return rows


def training_markdown(result: TrainingResult) -> str:
    """The markdown summary of a finished run (round count, stop reason, final trunk hash)."""
    dropped = sum(len(v) for v in result.dropped.values())
    last = result.history[-1].get("mean_validation_auc_pr") if result.history else None
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


def _partner_dirs(consortium_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((consortium_dir / "partners").iterdir()) if p.is_dir()}


@flow(name="pharmafl-train", persist_result=False, log_prints=False)
def train_flow(
    consortium_dir: str,
    exchange_url: str | None = None,
    launcher: Literal["embedded", "distributed"] = "embedded",
    resume: bool = False,
    rounds: int | None = None,
) -> dict[str, Any]:
    """Run or resume federated training; returns the round history (scalars only)."""
    logger = get_run_logger()
    cdir = Path(consortium_dir)
    url = exchange_url or str(cdir / "exchange")
    from pharmafl.server.operator import load_operator

    with clean_failure() as failed:
        plan = load_operator(cdir / "operator", url).plan
        chosen: Launcher
        if launcher == "distributed":
            chosen = DeploymentLauncher(url, plan.stage_timeout_s)
        else:
            chosen = EmbeddedLauncher(_partner_dirs(cdir), url, plan.stage_timeout_s)

        def on_round(rec: dict[str, Any]) -> None:
            logger.info(
                "round %s: %d contributors, %d dropped, mean validation AUC-PR %s",
                rec["round"],
                len(rec["contributors"]),
                len(rec["dropped"]),
                rec["mean_validation_auc_pr"],
            )

        try:
            result: TrainingResult = run_training(
                cdir / "operator", url, chosen, resume=resume, rounds=rounds, on_round=on_round
            )
        finally:
            if isinstance(chosen, EmbeddedLauncher):
                chosen.close()
        publish_training_artifacts(result)
        return {
            "rounds": result.rounds,
            "stop_reason": result.stop_reason,
            "final_trunk_sha256": result.final_trunk_sha256,
            "history": result.history,
            "wall_seconds": result.wall_seconds,
            "dropped": {str(k): v for k, v in result.dropped.items()},
        }
    assert failed.state is not None
    logger.error("training failed: %s", failed.state.message)
    return failed.state  # type: ignore[return-value]


def run_train(
    consortium_dir: str | Path,
    *,
    exchange_url: str | None = None,
    launcher: Literal["embedded", "distributed"] = "embedded",
    resume: bool = False,
    rounds: int | None = None,
) -> dict[str, Any]:
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
    "DeploymentLauncher",
    "EmbeddedLauncher",
    "publish_training_artifacts",
    "rounds_table",
    "run_train",
    "train_flow",
    "training_markdown",
]
