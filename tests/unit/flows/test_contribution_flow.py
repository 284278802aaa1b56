"""The contribution study end to end under a real (temporary) Prefect API.

Six simulated FS-Mol partners (≈400 compounds each, an evaluation quorum of 3 actives and
3 inactives per fold so that every partner has scorable test tasks at this size) in two
valuation groups of three (the simulator's default policy for six partners), with
local-only baselines and a 1-round main run; then a study (1 round per coalition) that is
interrupted after two coalitions and resumed: every non-empty coalition of groups trained
once, federatedly, through secure aggregation, as its own run; exact Shapley values per
group that add up to v(N) − v(∅); leave-one-out from the cached utilities; a second call
that retrains nothing and writes nothing new; the main run's files untouched; and the
Prefect artifacts of the training and study flow runs read back through the API.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from pharmafl.accounting import (
    CONTRIBUTION_FILE,
    CoalitionRun,
    ContributionResult,
    StudyConfig,
    UtilityCache,
    coalition_run_id,
)
from pharmafl.contract import GAIN_SE_MIN_TASKS, FederationPlan, LocalTrainingSpec
from pharmafl.ledger import LedgerEntry, LedgerEvent, read_entries, verify_ledger
from pharmafl.secure import load_roster

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PARTNERS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
GROUPS = {"alpha+bravo+charlie": PARTNERS[:3], "delta+echo+foxtrot": PARTNERS[3:]}
PLAYERS = tuple(GROUPS)
COALITIONS = [frozenset(c) for k in (1, 2) for c in itertools.combinations(PLAYERS, k)]
# What `pharmafl contribution --rounds 1 --parallel 2` asks for (the CLI test runs it without
# --parallel: the same study, recorded once).
STUDY = StudyConfig(rounds=1, parallel=2)
TRUNK = {"kind": "sparse", "hidden_sizes": [32], "dropouts": [0.1]}


class _InterruptedError(Exception):
    """Stands for the operator's process dying in the middle of a study."""


def _snapshot(cdir: Path) -> dict[str, str]:
    """SHA-256 of every file of the main run (operator and partners)."""
    paths = [cdir / "operator" / n for n in ("plan.json", "final_trunk.npz")]
    paths += sorted((cdir / "operator" / "state").rglob("*"))
    paths += sorted(cdir.glob("partners/*/models/federated/**/*"))
    paths += sorted(cdir.glob("partners/*/models/local/*"))
    return {
        str(p.relative_to(cdir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in paths
        if p.is_file()
    }


def _artifacts(flow_run_id: UUID) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in arts}


def _consortium(cdir: Path, key_file: Path) -> None:
    """Simulate and prepare the six partners (the shared fixture's quorum of 10 leaves
    them without any scorable test task, and every gain would be 0)."""
    from pharmafl.common.params import ConsortiumParameters, EvaluationQuorum, TaskParams
    from pharmafl.partner import PrepareOptions, prepare_partner
    from pharmafl.simulate import SimulationSpec, simulate_consortium

    quorum = EvaluationQuorum(num_active_fold_min=3, num_inactive_fold_min=3)
    simulate_consortium(
        cdir,
        SimulationSpec(dataset="fsmol", partners=6, max_compounds=400, seed=7),
        workers=1,
        key_file=key_file,
        parameters=ConsortiumParameters(
            consortium_name="study-test", tasks=TaskParams(evaluation_quorum=quorum)
        ),
    )
    for p in sorted((cdir / "partners").iterdir()):
        prepare_partner(p, PrepareOptions(workers=1))


@pytest.fixture(scope="module")
def studied(
    prefect_harness: None, tmp_path_factory: pytest.TempPathFactory, consortium_key_file: Path
) -> dict[str, Any]:
    from flows.contribution import contribution_flow
    from flows.launchers import EmbeddedLauncher
    from flows.train import train_flow
    from pharmafl.accounting import contribution_study
    from pharmafl.model import TrainConfig, run_baseline
    from pharmafl.model.config import SparseTrunkConfig
    from pharmafl.simulate.federation import setup_federation

    cdir = tmp_path_factory.mktemp("study") / "c"
    _consortium(cdir, consortium_key_file)
    for p in sorted((cdir / "partners").iterdir()):
        run_baseline(
            p,
            SparseTrunkConfig(hidden_sizes=(32,), dropouts=(0.1,)),
            TrainConfig(epochs=2, batch_size=128, lr_steps=(), selection_metric="auc_pr"),
            checkpoint=False,
        )
    plan = FederationPlan(
        rounds=1,
        trunk=TRUNK,
        local=LocalTrainingSpec(
            epochs=1, batch_size=128, head_finetune_epochs=1, keep_optimizer=True
        ),
        stage_timeout_s=60,
    )
    setup_federation(cdir, plan)
    train_state = train_flow(str(cdir), return_state=True)
    assert train_state.is_completed(), train_state.message
    main_before = _snapshot(cdir)
    main_rounds = sorted(p.name for p in (cdir / "exchange").iterdir())

    # A study (one coalition after another) that dies after its second coalition was
    # trained, before it was recorded; then resumed by the flow, two coalitions at a time.
    url = str(cdir / "exchange")
    seen: list[CoalitionRun] = []

    def interrupt_after_two(run: CoalitionRun) -> None:
        seen.append(run)
        if len(seen) == 2:
            raise _InterruptedError

    dirs = {p.name: p for p in sorted((cdir / "partners").iterdir())}
    launcher = EmbeddedLauncher(dirs, url, 60)
    try:
        with pytest.raises(_InterruptedError):
            contribution_study(
                cdir / "operator",
                url,
                launcher,
                STUDY.model_copy(update={"parallel": 1}),
                on_coalition=interrupt_after_two,
            )
    finally:
        launcher.close()

    state = contribution_flow(str(cdir), study=STUDY, return_state=True)
    assert state.is_completed(), state.message
    result = ContributionResult.model_validate(state.result())
    ledger_after_study = (cdir / "operator" / "ledger.jsonl").read_bytes()
    return {
        "cdir": cdir,
        "result": result,
        "interrupted": seen,
        "main_before": main_before,
        "main_rounds": main_rounds,
        "train_run": train_state.state_details.flow_run_id,
        "study_run": state.state_details.flow_run_id,
        "ledger_after_study": ledger_after_study,
    }


def _entries(cdir: Path) -> list[LedgerEntry]:
    return read_entries(cdir / "operator" / "ledger.jsonl")


def _of(entries: list[LedgerEntry], event: LedgerEvent, run_id: str) -> list[LedgerEntry]:
    return [e for e in entries if e.event is event and e.payload.get("run_id") == run_id]


def _run_ids(studied: dict[str, Any]) -> dict[frozenset[str], str]:
    cache = next((studied["cdir"] / "operator" / "contribution").glob("*/utilities.json"))
    sid = cache.parent.name
    return {c: coalition_run_id(sid, PLAYERS, c) for c in COALITIONS}


def _members(coalition: frozenset[str]) -> list[str]:
    return sorted(p for g in coalition for p in GROUPS[g])


def test_exact_shapley_is_efficient_and_loo_matches_the_cache(studied: dict[str, Any]) -> None:
    res: ContributionResult = studied["result"]
    assert res.method == "exact" and res.players == list(PLAYERS)
    assert res.groups == {g: list(m) for g, m in GROUPS.items()}
    assert res.n_coalitions == 2 ** len(PLAYERS)
    assert res.shapley is not None and res.empty_coalition_utility == 0.0
    total = math.fsum(res.shapley.values())
    assert total == pytest.approx(
        res.grand_coalition_utility - res.empty_coalition_utility, abs=1e-12
    )

    cache_file = next((studied["cdir"] / "operator" / "contribution").glob("*/utilities.json"))
    cache = UtilityCache.model_validate_json(cache_file.read_text())
    v = {frozenset(c.coalition): c.value for c in cache.values}
    assert len(v) == 4 and v[frozenset()] == 0.0  # a single group is trained, not 0
    grand = frozenset(PLAYERS)
    assert res.grand_coalition_utility == v[grand]
    for p in PLAYERS:
        assert res.leave_one_out[p] == pytest.approx(v[grand] - v[grand - {p}], abs=1e-15)
    written = ContributionResult.model_validate_json(
        (studied["cdir"] / "operator" / CONTRIBUTION_FILE).read_text()
    )
    assert written == res


def test_utilities_are_the_partners_own_gains_over_local_only(studied: dict[str, Any]) -> None:
    """v(S) = Σ_members (test AUC-PR of S's model − local-only) / n, from the partners' files."""
    cdir = studied["cdir"]
    cache_file = next((cdir / "operator" / "contribution").glob("*/utilities.json"))
    cached = UtilityCache.model_validate_json(cache_file.read_text()).values
    v = {frozenset(c.coalition): c.value for c in cached}
    se = {frozenset(c.coalition): c.se for c in cached}

    def test_auc_pr(path: Path) -> float:
        doc = json.loads(path.read_text())
        return float(doc["test"]["classification"]["aggregate"].get("auc_pr") or math.nan)

    def per_task(path: Path) -> dict[int, float]:
        rows = json.loads(path.read_text())["test"]["classification"]["per_task"]
        return {
            r["task_id"]: r["auc_pr"]
            for r in rows
            if r["aggregation_weight"] and r["auc_pr"] is not None and math.isfinite(r["auc_pr"])
        }

    errors = 0
    for coalition, run_id in _run_ids(studied).items():
        gains, ses = [], []
        for p in _members(coalition):
            fed = cdir / "partners" / p / "models" / "runs" / run_id / "metrics.json"
            assert not (fed.parent / "model").exists()  # a measurement keeps no weights
            local = cdir / "partners" / p / "models/local/metrics.json"
            g = test_auc_pr(fed) - test_auc_pr(local)
            gains.append(g)
            a, b = per_task(local), per_task(fed)
            d = [b[t] - a[t] for t in sorted(set(a) & set(b))]
            if math.isnan(g):
                ses.append(0.0)  # no scorable task: counted as 0 ± 0
            elif len(d) < GAIN_SE_MIN_TASKS:
                ses.append(math.nan)  # too few tasks: no standard error (it would reveal them)
            else:
                ses.append(statistics.stdev(d) / len(d) ** 0.5)
        # v's standard error: the members' errors over their own tasks, in quadrature, / n
        if any(math.isnan(e) for e in ses):
            assert se[coalition] is None
        else:
            errors += 1
            expected_se = math.sqrt(sum(round(e, 6) ** 2 for e in ses)) / len(PARTNERS)
            assert se[coalition] == pytest.approx(expected_se, abs=1e-6)
        # A partner without a scorable test task reports no gain, counted as 0; in every
        # coalition at least one member has one, so no utility here is trivially 0.
        assert not all(math.isnan(g) for g in gains)
        expected = sum(0.0 if math.isnan(g) else round(g, 6) for g in gains) / len(PARTNERS)
        assert v[coalition] == pytest.approx(expected, abs=1e-12)
        assert v[coalition] != 0.0
        for p in set(PARTNERS) - set(_members(coalition)):
            assert not (cdir / "partners" / p / "models" / "runs" / run_id).exists()
    assert errors  # at least one coalition's utility has an error (and the values intervals)


def test_every_coalition_trained_once_through_secure_aggregation(studied: dict[str, Any]) -> None:
    cdir = studied["cdir"]
    roster = load_roster(cdir / "operator" / "roster.json")
    check = verify_ledger(cdir / "operator" / "ledger.jsonl", roster)
    assert check.ok and check.signatures_checked, check.message
    entries = _entries(cdir)
    by_run = Counter((e.event, e.payload.get("run_id")) for e in entries)
    interrupted = {r.run_id for r in studied["interrupted"]}
    assert len(interrupted) == 2
    for coalition, run_id in _run_ids(studied).items():
        members = _members(coalition)
        (started,) = _of(entries, LedgerEvent.TRAINING_STARTED, run_id)  # never retrained
        assert started.payload["participants"] == members
        assert started.payload["secure_aggregation"] is True
        aggregates = _of(entries, LedgerEvent.AGGREGATE_APPLIED, run_id)
        assert len(aggregates) == STUDY.rounds
        assert all(a.payload["contributors"] == members for a in aggregates)
        assert by_run[(LedgerEvent.UPDATE_SUBMITTED, run_id)] == len(members) * STUDY.rounds
        # The coalition interrupted after its training repeated only its final evaluation
        # (with the same outcome: the head fine-tuning is seeded).
        again = 2 if run_id == studied["interrupted"][-1].run_id else 1
        assert by_run[(LedgerEvent.TRAINING_FINISHED, run_id)] == again
        evaluated = _of(entries, LedgerEvent.COALITION_EVALUATED, run_id)
        assert len(evaluated) == again
        assert len({e.payload["utility"] for e in evaluated}) == 1
        for e in evaluated:
            assert e.payload["coalition"] == members
            assert sorted(e.payload["reports"]) == members  # hashes, not gains
    done = [e for e in entries if e.event is LedgerEvent.CONTRIBUTION_STUDY_FINISHED]
    assert len(done) == 1
    res: ContributionResult = studied["result"]
    assert done[0].payload["shapley"] == res.shapley
    assert done[0].payload["leave_one_out"] == res.leave_one_out
    assert done[0].payload["method"] == "exact"


def test_the_main_run_is_untouched_and_coalition_runs_are_pruned(studied: dict[str, Any]) -> None:
    cdir = studied["cdir"]
    assert _snapshot(cdir) == studied["main_before"]
    assert studied["main_before"]  # the snapshot did see the main run's files
    assert sorted(p.name for p in (cdir / "exchange").iterdir()) == studied["main_rounds"]
    for run_id in _run_ids(studied).values():
        rdir = cdir / "operator" / "runs" / run_id
        assert sorted(p.name for p in rdir.iterdir()) == ["plan.json"]
        plan = FederationPlan.model_validate_json((rdir / "plan.json").read_text())
        assert plan.run_id == run_id and plan.report_test_gain and plan.rounds == STUDY.rounds


def test_coalition_runs_keep_no_optimizer_moments(studied: dict[str, Any]) -> None:
    """keep_optimizer: the main run's partners keep their Adam moments; a finished coalition
    run (a measurement) keeps only its head and scores, not two trunk-sized arrays."""
    import torch

    cdir = studied["cdir"]
    states = list((cdir / "partners").glob("*/models/federated/committed.pt"))
    main = len(states)
    states += (cdir / "partners").glob("*/models/runs/*/committed.pt")
    assert main and len(states) > main
    for path in states:
        doc = torch.load(path, weights_only=True)
        assert ("optimizer" in doc) == (path.parent.name == "federated"), path
        assert any(k.startswith("heads.") for k in doc["heads"])


def test_a_second_call_retrains_nothing_and_records_nothing_new(studied: dict[str, Any]) -> None:
    from flows.contribution import run_contribution_study

    cdir = studied["cdir"]
    again = run_contribution_study(cdir, STUDY)
    assert again == studied["result"]
    assert (cdir / "operator" / "ledger.jsonl").read_bytes() == studied["ledger_after_study"]


def test_parallel_training_needs_a_launcher_per_coalition(studied: dict[str, Any]) -> None:
    from flows.launchers import EmbeddedLauncher
    from pharmafl.accounting import contribution_study
    from pharmafl.common.errors import AccountingError

    cdir = studied["cdir"]
    url = str(cdir / "exchange")
    launcher = EmbeddedLauncher({}, url, 60)
    with pytest.raises(AccountingError, match="launcher per coalition"):
        contribution_study(cdir / "operator", url, launcher, STUDY)
    assert (cdir / "operator" / "ledger.jsonl").read_bytes() == studied["ledger_after_study"]


def test_the_cli_prints_the_study(studied: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from pharmafl.cli.main import app

    cdir = studied["cdir"]
    out = CliRunner().invoke(
        app, ["contribution", str(cdir), "--rounds", "1"], catch_exceptions=False
    )
    assert out.exit_code == 0, out.output
    assert (cdir / "operator" / "ledger.jsonl").read_bytes() == studied["ledger_after_study"]
    for g in PLAYERS:
        assert g in out.output
    assert "v(N)" in out.output and CONTRIBUTION_FILE in out.output


def test_artifacts_on_the_operator_runs(studied: dict[str, Any]) -> None:
    train = _artifacts(studied["train_run"])
    assert {"pharmafl-training-rounds", "pharmafl-training-summary"} <= set(train)
    rows = json.loads(train["pharmafl-training-rounds"].data)
    assert [r["round"] for r in rows] == [0]
    assert rows[0]["contributors"] == ", ".join(PARTNERS) and rows[0]["dropped"] == "-"
    assert "final trunk SHA-256" in train["pharmafl-training-summary"].data

    study = _artifacts(studied["study_run"])
    assert {"pharmafl-contributions", "pharmafl-contribution-summary"} <= set(study)
    table = json.loads(study["pharmafl-contributions"].data)
    res: ContributionResult = studied["result"]
    assert [r["group"] for r in table] == list(PLAYERS)
    assert res.shapley is not None
    for r in table:
        assert r["shapley"] == pytest.approx(res.shapley[r["group"]], abs=1e-6)
        assert r["leave-one-out"] == pytest.approx(res.leave_one_out[r["group"]], abs=1e-6)
    assert "exact" in study["pharmafl-contribution-summary"].data
