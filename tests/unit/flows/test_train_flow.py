"""The operator's training flow under a real (temporary) Prefect API: one embedded round,
and pharmafl errors that come back as clean failures (no traceback in what Prefect logs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from flows.launchers import EmbeddedLauncher
from pharmafl.common.errors import FederationError
from pharmafl.contract import FederationPlan, LocalTrainingSpec
from pharmafl.layout import PartnerLayout
from pharmafl.simulate.federation import setup_federation

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PARTNERS = ("alpha", "bravo", "charlie")


def _federation(prepared: Path, dst: Path) -> Path:
    shutil.copytree(prepared, dst)
    for key in dst.glob("partners/*/key.json"):
        os.chmod(key, 0o600)
    plan = FederationPlan(
        rounds=1,
        trunk={"kind": "sparse", "hidden_sizes": [32], "dropouts": [0.1]},
        local=LocalTrainingSpec(epochs=1, batch_size=128, head_finetune_epochs=1),
        stage_timeout_s=60,
    )
    setup_federation(dst, plan)
    return dst


def _logs(flow_run_id: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs reach the API in batches
    with get_client(sync_client=True) as client:
        return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def _partner_runs(flow_run_id: UUID, expected: int, wait_s: float = 30) -> list[Any]:
    """The partner-round task runs of a train flow run (recorded from events: waits up to
    ``wait_s`` for ``expected`` finished ones)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterFlowRunId

    flt = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
    deadline = time.monotonic() + wait_s
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(task_run_filter=flt)
        mine = [r for r in runs if r.name.startswith("pharmafl-partner-round")]
        done = [r for r in mine if r.state is not None and r.state.is_final()]
        if len(done) >= expected or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


def test_train_flow_runs_one_embedded_round(
    prefect_harness: None,
    prepared_consortium: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.train import train_flow
    from pharmafl.model import LocalTrainer

    steps: list[int] = []
    real_train = LocalTrainer.train

    def spy(self: LocalTrainer, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("steps") is not None:
            steps.append(int(kwargs["steps"]))
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(LocalTrainer, "train", spy)
    cdir = _federation(prepared_consortium, tmp_path / "c")
    state = train_flow(str(cdir), return_state=True)
    assert state.is_completed(), state.message
    # ~120 training rows and batch 128 make one step an epoch: a round still takes the
    # plan's minimum of local steps (issue 18: 4 steps a round on small partners).
    assert len(steps) >= 3 and min(steps) >= LocalTrainingSpec().min_steps
    result = state.result()
    assert result.rounds == 1 and result.stop_reason == "round budget"
    assert result.history[0].contributors == list(PARTNERS)
    assert (cdir / "exchange").is_dir()  # the default store: CONSORTIUM_DIR/exchange

    # One round and one final evaluation per partner, each a completed task run of the
    # train flow run (a subflow run per partner and round cost a second of API calls each).
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    runs = _partner_runs(flow_run_id, 2 * len(PARTNERS))
    assert len(runs) == 2 * len(PARTNERS)
    assert all(r.state is not None and r.state.is_completed() for r in runs)
    messages = [log.message for log in _logs(flow_run_id)]
    assert any("round 0: 3 contributors, 0 dropped" in m for m in messages), messages


def _overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_partners_train_at_once_with_the_one_after_another_result(
    prefect_harness: None,
    prepared_consortium: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Embedded partners may train concurrently (issue 16): same trunk and same private
    models as with PHARMAFL_PARALLEL_PARTNERS=1, which trains them one after another. With
    every partner admitted, each round training waits at a barrier for the other two: it
    passes only if all three train at the same time (a lock would break it after 60 s)."""
    from flows.train import train_flow
    from pharmafl.model import LocalTrainer

    spans: list[tuple[float, float]] = []
    barrier: list[threading.Barrier] = []
    real_train = LocalTrainer.train

    def timed(self: LocalTrainer, *args: Any, **kwargs: Any) -> Any:
        if barrier and kwargs.get("steps") is not None:  # a round's training, not fine-tuning
            barrier[0].wait(timeout=60)
        t0 = time.monotonic()
        try:
            return real_train(self, *args, **kwargs)
        finally:
            spans.append((t0, time.monotonic()))

    monkeypatch.setattr(LocalTrainer, "train", timed)
    out = {}
    for slots in ("1", "0"):
        monkeypatch.setenv("PHARMAFL_PARALLEL_PARTNERS", slots)
        spans.clear()
        barrier[:] = [threading.Barrier(len(PARTNERS))] if slots == "0" else []
        cdir = _federation(prepared_consortium, tmp_path / f"c{slots}")
        state = train_flow(str(cdir), return_state=True)
        assert state.is_completed(), state.message
        models = {
            p: json.loads(PartnerLayout(cdir / "partners" / p).federated_metrics.read_text())
            for p in PARTNERS
        }
        out[slots] = (state.result().final_trunk_sha256, models, _overlap(spans))
    (serial_trunk, serial_models, serial_most), (trunk, models, _) = out["1"], out["0"]
    assert serial_most == 1  # one slot: never two trainings at once
    assert trunk == serial_trunk
    for p in PARTNERS:  # the private heads' scores, to the last digit
        for split in ("validation", "test"):
            assert models[p][split] == serial_models[p][split]


def test_a_pharmafl_error_is_a_clean_failure(
    prefect_harness: None, prepared_consortium: Path, tmp_path: Path
) -> None:
    from flows.train import run_train, train_flow

    cdir = _federation(prepared_consortium, tmp_path / "c")
    (cdir / "operator" / "plan.json").unlink()

    with pytest.raises(FederationError, match="no federation plan") as err:
        run_train(cdir)
    assert err.value.file is not None and err.value.file.endswith("plan.json")

    state = train_flow(str(cdir), return_state=True)
    assert state.is_failed()
    assert "no federation plan" in (state.message or "")
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    messages = [log.message for log in _logs(flow_run_id)]
    assert any("training failed:" in m and "plan.json" in m for m in messages), messages
    assert not any("Traceback" in m for m in messages), messages
    assert not _partner_runs(flow_run_id, 1, wait_s=3)  # nothing was started at any partner
    assert not (cdir / "operator" / "state").exists()
    assert not (cdir / "operator" / "ledger.jsonl").exists()


def test_cli_train_reports_the_error_without_traceback(
    prefect_harness: None, prepared_consortium: Path, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    cdir = _federation(prepared_consortium, tmp_path / "c")
    (cdir / "operator" / "plan.json").unlink()
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    exe = Path(sys.executable).with_name("pharmafl")
    res = subprocess.run(
        [str(exe), "train", str(cdir)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 2, res.stderr[-2000:]
    assert "no federation plan" in res.stderr and "plan.json" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


class _Straggling(EmbeddedLauncher):
    """Partner work replaced by its timing only: in round r0 partner "slow" overruns; in
    r1 every partner must be running at the same time (as in secure aggregation)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.together = threading.Barrier(3, timeout=2.0)

    def _run(self, partner: str, round_id: str, final: bool) -> Any:
        if round_id == "r0":
            if partner == "slow":
                time.sleep(3.0)
            return None
        return self.together.wait()


def test_a_straggler_does_not_starve_the_next_round() -> None:
    launcher = _Straggling({p: Path(p) for p in ("a", "b", "slow")}, "unused", 1.0)
    try:
        for p in ("a", "b", "slow"):
            launcher.start(p, "r0", final=False)
        assert launcher.finish(0.2) == {"slow": "deadline: still running after 0 s"}
        for p in ("a", "b", "slow"):
            launcher.start(p, "r1", final=False)
        assert launcher.finish(10.0) == {}
    finally:
        launcher.close()


def test_cli_train_with_dp_runs_every_round_with_it(
    prefect_harness: None, prepared_consortium: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from pharmafl.accounting import partner_privacy
    from pharmafl.cli.main import app
    from pharmafl.common.errors import ConfigError
    from pharmafl.ledger import LedgerEvent, read_entries

    cdir = _federation(prepared_consortium, tmp_path / "c")
    plan_file = cdir / "operator" / "plan.json"
    before = plan_file.read_bytes()
    train = ["train", str(cdir), "--dp-noise-multiplier"]
    for bad_args, field in (
        (["-1"], "noise_multiplier"),
        (["1", "--dp-min-contributors", "0"], "min_contributors"),
    ):
        bad = CliRunner().invoke(app, [*train, *bad_args])
        assert isinstance(bad.exception, ConfigError) and field in str(bad.exception)
    assert plan_file.read_bytes() == before  # nothing half-written, nothing trained
    assert not (cdir / "operator" / "ledger.jsonl").exists()

    args = ["train", str(cdir), "--dp-noise-multiplier", "1.5", "--dp-clip-norm", "0.5"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "differential privacy on every round (z = 1.5" in res.output
    plan = FederationPlan.model_validate_json(plan_file.read_text())
    assert plan.dp is not None and plan.dp.noise_multiplier == 1.5 and plan.dp.clip_norm == 0.5
    # The quantization clip was raised to fit the noise (C + 6·σ = 3.68 > the default 1.0).
    assert plan.quantization.clip >= 0.5 + 6 * plan.dp.partner_noise_std
    entries = read_entries(cdir / "operator" / "ledger.jsonl")
    started = [e.payload for e in entries if e.event is LedgerEvent.ROUND_STARTED]
    assert started and all(p["dp"]["noise_multiplier"] == 1.5 for p in started)
    privacy = partner_privacy(entries)
    assert [r.partner for r in privacy] == list(PARTNERS)
    assert all(r.epsilon == plan.dp.epsilon(1) for r in privacy)
