"""The operator's training flow (``pharmafl train CONSORTIUM_DIR``).

Two launchers, one flow code:

- ``embedded`` (default): every partner on this machine, each partner round a Prefect flow
  run in its own thread reading only its own folder; Prefect's ephemeral API, no server.
- ``distributed``: a Prefect server with one work pool and worker per partner; partner rounds
  are started with ``run_deployment`` on each partner's deployment
  (``pharmafl-partner-round/<partner>``) and run on the partner's own machine.

Only encrypted, signed envelopes travel, through the exchange store.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger

from flows._states import clean_failure, result_or_raise
from pharmafl.server.operator import Launcher, TrainingResult, run_training

DEPLOYMENT_FLOW = "pharmafl-partner-round"


class EmbeddedLauncher:
    """Partner rounds as flow runs in threads of this process (one per partner)."""

    def __init__(self, partner_dirs: dict[str, Path], exchange_url: str, timeout_s: float):
        self.partner_dirs = partner_dirs
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(partner_dirs)))
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
        with self._lock:
            self._runs[partner] = self._pool.submit(self._run, partner, round_id, final)

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
                out[partner] = f"{type(exc).__name__}: {exc}"[:300]
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class DeploymentLauncher:
    """Partner rounds through ``run_deployment`` on each partner's own work pool."""

    def __init__(self, exchange_url: str, timeout_s: float, poll_s: float = 2.0) -> None:
        self.exchange_url = exchange_url
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._runs: dict[str, Any] = {}

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        from prefect.deployments import run_deployment

        run = run_deployment(
            f"{DEPLOYMENT_FLOW}/{partner}",
            parameters={
                "exchange_url": self.exchange_url,
                "round_id": round_id,
                "final": final,
                "timeout_s": self.timeout_s,
            },
            timeout=0,  # do not wait: rounds of all partners run at the same time
            as_subflow=False,
        )
        self._runs[partner] = run.id  # type: ignore[union-attr]

    def _states(self) -> dict[str, Any]:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return {p: client.read_flow_run(fid).state for p, fid in self._runs.items()}

    def failed(self) -> dict[str, str]:
        return {
            p: f"flow run {st.name}: {st.message or ''}"[:300]
            for p, st in self._states().items()
            if st is not None and (st.is_failed() or st.is_crashed() or st.is_cancelled())
        }

    def finish(self, timeout_s: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while True:
            states = self._states()
            if all(st is not None and st.is_final() for st in states.values()):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(self.poll_s)
        out = {
            p: (f"flow run {st.name}: {st.message or ''}" if st else "no state")[:300]
            for p, st in states.items()
            if st is None or not st.is_completed()
        }
        self._runs.clear()
        return out


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
    """Run :func:`train_flow` and return its result or raise its pharmafl error."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    return result_or_raise(  # type: ignore[no-any-return]
        train_flow,
        str(consortium_dir),
        exchange_url=exchange_url,
        launcher=launcher,
        resume=resume,
        rounds=rounds,
    )


__all__ = ["DeploymentLauncher", "EmbeddedLauncher", "run_train", "train_flow"]
