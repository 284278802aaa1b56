"""The contribution study through a real Prefect server and one process worker per partner.

Same set-up as ``test_distributed.py`` (``pharmafl partner serve`` processes, each its own
pool, deployment and folder), with six partners — the three simulated ones and a copy of
each — in two valuation groups of three (the simulator's default policy): the exact study
trains three coalitions, each group alone and both. The operator runs
``run_contribution_study(..., launcher="distributed", parallel=2)`` in this process, so the
coalition runs go through worker threads of the study, a launcher each and
``run_deployment`` on each member's deployment. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_contribution_study_through_partner_workers(
    prefect_server: Any, processes: Any, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.contribution import run_contribution_study
    from flows.launchers import run_tag
    from pharmafl.accounting import StudyConfig, coalition_run_id
    from pharmafl.common.params import load_consortium_parameters
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.ledger import LedgerEvent, read_entries, verify_ledger
    from pharmafl.model import TrainConfig, run_baseline
    from pharmafl.model.config import SparseTrunkConfig
    from pharmafl.secure import load_roster
    from pharmafl.simulate.federation import setup_federation

    t0 = time.perf_counter()
    prepared: Path = request.getfixturevalue("prepared_consortium")
    cdir = tmp_path / "consortium"
    shutil.copytree(prepared, cdir)
    for src, copy in zip(("alpha", "bravo", "charlie"), ("delta", "echo", "foxtrot"), strict=True):
        shutil.copytree(cdir / "partners" / src, cdir / "partners" / copy)  # six: two groups
    for p in sorted((cdir / "partners").iterdir()):
        run_baseline(
            p,
            SparseTrunkConfig(hidden_sizes=(32,), dropouts=(0.1,)),
            TrainConfig(epochs=1, batch_size=128, lr_steps=()),
            checkpoint=False,
        )
    setup_federation(
        cdir,
        FederationPlan(
            trunk={"kind": "sparse", "hidden_sizes": [32], "dropouts": [0.1]},
            local=LocalTrainingSpec(epochs=1, batch_size=128, head_finetune_epochs=1),
            stage_timeout_s=300,
        ),
    )
    partner_dirs = sorted(p for p in (cdir / "partners").iterdir() if p.is_dir())
    partners = [p.name for p in partner_dirs]
    deps = prefect_server.serve_partners(processes, partner_dirs, tmp_path)  # server ready
    url = prefect_server.url
    t_served = time.perf_counter()

    study = StudyConfig(rounds=1, parallel=2)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        try:
            result = run_contribution_study(cdir, study, launcher="distributed")
        except BaseException:
            print(processes.tails())
            raise
        # the study's own flow run carries its tag (a rerun cancels it if left running)
        scope = load_consortium_parameters(cdir / "operator" / "consortium.json")
        tag = run_tag(scope.parameter_hash()[:12], "contribution")
        with get_client(sync_client=True) as client:
            own = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
            )
        assert [r.state.is_completed() for r in own if r.state] == [True]
    runs = prefect_server.deployment_runs(deps)
    t_studied = time.perf_counter()

    assert result.method == "exact" and result.shapley is not None
    groups = {"alpha+bravo+charlie": partners[:3], "delta+echo+foxtrot": partners[3:]}
    assert result.players == list(groups) and result.n_coalitions == 4
    grand = result.grand_coalition_utility
    assert sum(result.shapley.values()) == pytest.approx(grand, abs=1e-12)  # v(∅) = 0
    sid = next((cdir / "operator" / "contribution").iterdir()).name
    run_ids = {
        coalition_run_id(sid, tuple(groups), frozenset(c)): [p for g in c for p in groups[g]]
        for c in (("alpha+bravo+charlie",), ("delta+echo+foxtrot",), tuple(groups))
    }
    run_id = coalition_run_id(sid, tuple(groups), frozenset(groups))

    # Each member ran each coalition's round and its final evaluation as completed flow runs
    # of its own deployment, on its own pool, in its own folder.
    done = prefect_server.ran(runs)
    assert sorted(r.name for r in done) == sorted(
        f"{rid}-r{tail}-{p}"
        for rid, members in run_ids.items()
        for p in members
        for tail in ("0000-a0", "0001-final")
    )
    for r in done:
        assert r.state is not None and r.state.is_completed(), (r.name, r.state)
        assert r.work_pool_name == f"pool-{r.name.rsplit('-', 1)[1]}"
    for p in partners:
        assert (cdir / "partners" / p / "models" / "runs" / run_id / "metrics.json").is_file()

    odir = cdir / "operator"
    check = verify_ledger(odir / "ledger.jsonl", load_roster(odir / "roster.json"))
    assert check.ok and check.signatures_checked, check.message
    entries = read_entries(odir / "ledger.jsonl")
    evaluated = {
        e.payload["run_id"]: e.payload
        for e in entries
        if e.event is LedgerEvent.COALITION_EVALUATED
    }
    assert sorted(evaluated) == sorted(run_ids) and evaluated[run_id]["utility"] == grand
    assert sorted(evaluated[run_id]["reports"]) == partners
    aggregates = [e.payload for e in entries if e.event is LedgerEvent.AGGREGATE_APPLIED]
    assert sorted((a["run_id"], a["contributors"]) for a in aggregates) == sorted(run_ids.items())
    prefect_server.drain_client()
    left = processes.stop_all()
    assert not left, f"processes left running: {left}"
    print(
        f"distributed contribution study: {time.perf_counter() - t0:.1f} s (partners serving "
        f"after {t_served - t0:.1f} s, study {t_studied - t_served:.1f} s)"
    )
