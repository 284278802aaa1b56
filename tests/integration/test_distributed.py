"""Distributed federated training: a real Prefect server, one process worker per partner.

Three partners each run ``pharmafl partner serve`` (their own process pool, their own
deployment ``pharmafl-partner-round/<partner>`` with their folder as its default, then a
process worker in its own working folder); the operator runs ``run_train(...,
launcher="distributed")`` in this process against the server, which starts every partner
round (one round, then the final evaluation) with ``run_deployment``. Everything listens on
127.0.0.1 only. The server and the partners' processes are the session's ``fleet``
(``conftest.py``), shared with the fault tests (``test_distributed_faults.py``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_a_round_through_prefect_server_and_partner_workers(fleet: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.launchers import run_tag
    from flows.train import run_train
    from pharmafl.common.params import load_consortium_parameters
    from pharmafl.ledger import verify_ledger
    from pharmafl.secure import load_roster

    t0 = time.perf_counter()
    cdir, deps, url = fleet.cdir, fleet.deployments, fleet.server.url
    partners = list(fleet.partner_dirs)
    assert len(partners) == 3
    for name, dep in deps.items():
        assert dep.work_pool_name == f"pool-{name}"
        assert dep.parameters == {"partner_dir": str((cdir / "partners" / name).resolve())}
        assert dep.entrypoint == "flows.partner_round.partner_round_flow"
        assert not dep.pull_steps
    t_deployed = time.perf_counter()

    scope = load_consortium_parameters(cdir / "operator" / "consortium.json").parameter_hash()
    tag = run_tag(scope[:12], "train")
    with temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            result = run_train(cdir, launcher="distributed", rounds=1)  # one keeps it fast
        except BaseException:
            print(fleet.processes.tails())
            raise
        with get_client(sync_client=True) as client:
            tagged = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
            )
    train_runs = [r for r in tagged if r.deployment_id is None]
    runs = fleet.server.ran([r for r in tagged if r.deployment_id is not None])
    t_trained = time.perf_counter()

    # every partner contributed
    assert result.rounds == 1, fleet.processes.tails()
    assert [r.round for r in result.history] == [0]
    for rec in result.history:
        assert rec.contributors == partners
        assert rec.dropped == [] and rec.dropout_causes == {}
    # each partner fine-tuned its head on the final trunk and evaluated, in its own folder
    for name in partners:
        metrics = cdir / "partners" / name / "models" / "federated" / "model" / "metrics.json"
        assert metrics.is_file(), fleet.processes.tails()
        assert json.loads(metrics.read_text())
    # the ledger verifies against the roster
    odir = cdir / "operator"
    check = verify_ledger(odir / "ledger.jsonl", load_roster(odir / "roster.json"))
    assert check.ok and check.signatures_checked, check.message
    # every partner round ran as a flow run of the partner's deployment on its own pool,
    # with the folder the partner set (the operator never sends one), and completed; each
    # carries the run's tag, as does the operator's own flow run
    by_partner: dict[str, list[Any]] = {name: [] for name in partners}
    dep_partner = {d.id: name for name, d in deps.items()}
    for run in runs:
        by_partner[dep_partner[run.deployment_id]].append(run)
    for name, its_runs in by_partner.items():
        assert len(its_runs) == 2, [r.name for r in its_runs]  # a round + final evaluation
        for run in its_runs:
            assert run.state is not None and run.state.is_completed(), (run.name, run.state)
            assert run.work_pool_name == f"pool-{name}"
            assert run.name.endswith(f"-{name}")
            assert run.parameters["partner_dir"] == deps[name].parameters["partner_dir"]
        assert sum(r.parameters["final"] for r in its_runs) == 1
    # the operator's own flow ran against the same server
    assert [r.state.is_completed() for r in train_runs if r.state] == [True]
    # each partner's rounds forked from its warm engine's host, which is still up (the
    # worker starts only once the host listens)
    for name, started in fleet.serving.items():
        below = psutil.Process(started.popen.pid).children()  # forked runs: grandchildren
        hosts = [p for p in below if "warm_engine host" in " ".join(p.cmdline())]
        assert len(hosts) == 1, (name, [p.cmdline() for p in below])
    print(
        f"distributed 1-round test: {time.perf_counter() - t0:.1f} s (partners serving "
        f"{t_deployed - t0:.1f} s, training {t_trained - t_deployed:.1f} s)"
    )
