"""Distributed federated training: a real Prefect server, one process worker per partner.

Three partners each run ``pharmafl partner serve`` (their own process pool, their own
deployment ``pharmafl-partner-round/<partner>`` with their folder as its default, then a
process worker in its own working folder); the operator runs ``run_train(...,
launcher="distributed")`` in this process against the server, which starts every partner
round with ``run_deployment``. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_two_rounds_through_prefect_server_and_partner_workers(
    prefect_server: Any, processes: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.train import run_train
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.ledger import verify_ledger
    from pharmafl.secure import load_roster
    from pharmafl.simulate.federation import setup_federation

    t0 = time.perf_counter()
    # The server boots while the (session-cached) consortium is simulated and prepared.
    prepared: Path = request.getfixturevalue("prepared_consortium")
    cdir = tmp_path / "consortium"
    shutil.copytree(prepared, cdir)
    setup_federation(
        cdir,
        FederationPlan(
            rounds=2,
            trunk={"kind": "sparse", "hidden_sizes": [64], "dropouts": [0.1]},
            local=LocalTrainingSpec(epochs=1, batch_size=128),
            stage_timeout_s=300,
        ),
    )
    partner_dirs = sorted(p for p in (cdir / "partners").iterdir() if p.is_dir())
    partners = [p.name for p in partner_dirs]
    assert len(partners) == 3
    url = prefect_server.wait_ready()
    t_ready = time.perf_counter()
    deps = prefect_server.serve_partners(processes, partner_dirs, tmp_path)
    for name, dep in deps.items():
        assert dep.work_pool_name == f"pool-{name}"
        assert dep.parameters == {"partner_dir": str((cdir / "partners" / name).resolve())}
        assert dep.entrypoint == "flows.partner_round.partner_round_flow"
        assert not dep.pull_steps
    t_deployed = time.perf_counter()

    with temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            result = run_train(cdir, launcher="distributed")
        except BaseException:
            print(processes.tails())
            raise
        with get_client(sync_client=True) as client:
            train_runs = [r for r in client.read_flow_runs() if r.deployment_id is None]
    runs = prefect_server.deployment_runs(deps)
    t_trained = time.perf_counter()

    # 2 rounds, every partner contributed every round
    assert result.rounds == 2, processes.tails()
    assert [r.round for r in result.history] == [0, 1]
    for rec in result.history:
        assert rec.contributors == partners
        assert rec.dropped == []
    # each partner fine-tuned its head on the final trunk and evaluated, in its own folder
    for name in partners:
        metrics = cdir / "partners" / name / "models" / "federated" / "model" / "metrics.json"
        assert metrics.is_file(), processes.tails()
        assert json.loads(metrics.read_text())
    # the ledger verifies against the roster
    odir = cdir / "operator"
    check = verify_ledger(odir / "ledger.jsonl", load_roster(odir / "roster.json"))
    assert check.ok and check.signatures_checked, check.message
    # every partner round ran as a flow run of the partner's deployment on its own pool,
    # with the folder the partner set (the operator never sends one), and completed
    by_partner: dict[str, list[Any]] = {name: [] for name in partners}
    dep_partner = {d.id: name for name, d in deps.items()}
    for run in runs:
        by_partner[dep_partner[run.deployment_id]].append(run)
    for name, its_runs in by_partner.items():
        assert len(its_runs) == 3, [r.name for r in its_runs]  # 2 rounds + final evaluation
        for run in its_runs:
            assert run.state is not None and run.state.is_completed(), (run.name, run.state)
            assert run.work_pool_name == f"pool-{name}"
            assert run.name.endswith(f"-{name}")
            assert run.parameters["partner_dir"] == deps[name].parameters["partner_dir"]
        assert sum(r.parameters["final"] for r in its_runs) == 1
    # the operator's own flow ran against the same server
    assert [r.state.is_completed() for r in train_runs if r.state] == [True]

    prefect_server.drain_client()
    left = processes.stop_all()
    assert not left, f"processes left running: {left}"
    print(
        f"distributed 2-round test: {time.perf_counter() - t0:.1f} s (consortium + server "
        f"{t_ready - t0:.1f} s, partners serving {t_deployed - t_ready:.1f} s, training "
        f"{t_trained - t_deployed:.1f} s)"
    )
