"""Operator checkpoints (TrainingState), early stopping, round ids, and the plan models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pharmafl.contract import FederationPlan, LocalTrainingSpec, PartnerRoundReport, TrainSpec
from pharmafl.server import RoundResult, TrainingState
from pharmafl.server.optimizers import make_server_optimizer
from pharmafl.server.rounds import _round_id

TRUNK = {"kind": "sparse", "hidden_sizes": [8], "dropouts": [0.1]}


def _state(next_round: int) -> TrainingState:
    rng = np.random.default_rng(next_round)
    opt = make_server_optimizer("fedadam")
    w = rng.normal(size=6)
    opt.step(w, rng.normal(size=6))
    return TrainingState(
        next_round=next_round,
        trunk={
            "trunk.a": rng.normal(size=(2, 2)).astype(np.float32),
            "trunk.b": rng.normal(size=2).astype(np.float32),
        },
        optimizer=opt.state_dict(),
        best_auc_pr=0.625,
        rounds_without_improvement=1,
        clip=0.0123,
        history=[
            RoundResult(
                round=0,
                round_id="train-r0000-a0",
                contributors=["a", "b"],
                dropped=[],
                trunk_sha256="0" * 64,
                mean_validation_auc_pr=0.625,
                validation={"a": {"auc_pr": 0.625}},
            )
        ],
    )


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    state = _state(3)
    state.save(tmp_path)
    back = TrainingState.load(tmp_path)
    assert back is not None
    assert back.next_round == 3
    assert back.best_auc_pr == 0.625 and back.rounds_without_improvement == 1
    assert back.history == state.history
    assert not back.finished and back.stop_reason == ""
    assert back.clip == 0.0123  # a compressed ring's next clip survives a restart
    assert set(back.trunk) == set(state.trunk) and set(back.optimizer) == set(state.optimizer)
    for k, v in state.trunk.items():
        np.testing.assert_array_equal(back.trunk[k], v)
    for k, v in state.optimizer.items():
        np.testing.assert_array_equal(back.optimizer[k], v)
    # The restored optimizer continues exactly like the original.
    a, b = make_server_optimizer("fedadam"), make_server_optimizer("fedadam")
    a.load_state_dict(state.optimizer)
    b.load_state_dict(back.optimizer)
    d = np.linspace(-1, 1, 6)
    np.testing.assert_array_equal(a.step(np.zeros(6), d), b.step(np.zeros(6), d))


def test_checkpoint_without_a_best_score_and_finished(tmp_path: Path) -> None:
    state = TrainingState(trunk={"trunk.w": np.ones(3, np.float32)})
    state.finished, state.stop_reason = True, "round budget"
    state.save(tmp_path)
    doc = json.loads((tmp_path / "checkpoint.json").read_text())
    assert doc["best_auc_pr"] is None  # -inf is not JSON
    back = TrainingState.load(tmp_path)
    assert back is not None and back.best_auc_pr == -math.inf
    assert back.finished and back.stop_reason == "round budget"


def test_a_new_checkpoint_replaces_the_old_one_without_leftovers(tmp_path: Path) -> None:
    _state(1).save(tmp_path)
    _state(2).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0002.npz", "checkpoint.json"]
    back = TrainingState.load(tmp_path)
    assert back is not None and back.next_round == 2
    np.testing.assert_array_equal(back.trunk["trunk.b"], _state(2).trunk["trunk.b"])


def test_no_checkpoint_loads_as_none(tmp_path: Path) -> None:
    assert TrainingState.load(tmp_path) is None


def test_early_stopping_counts_rounds_without_improvement() -> None:
    state = TrainingState()
    for score in (0.5, 0.6, 0.6, 0.59):
        state.observe(score, patience=2)
    assert state.best_auc_pr == 0.6
    assert state.finished and state.stop_reason == "early stopping"


def test_the_best_round_is_tracked_and_checkpointed(tmp_path: Path) -> None:
    state = TrainingState(trunk={"trunk.w": np.ones(3, np.float32)})
    for i, score in enumerate((0.5, 0.62, math.nan, 0.61, 0.62)):
        state.observe(score, patience=10, round_index=i)
    assert state.best_round == 1 and state.best_auc_pr == 0.62  # ties keep the earlier round
    state.save(tmp_path)
    back = TrainingState.load(tmp_path)
    assert back is not None and back.best_round == 1
    assert TrainingState().best_round is None


def test_rounds_without_validation_scores_do_not_stop_training() -> None:
    """No partner shared a score: nothing says training stopped improving."""
    state = TrainingState()
    for _ in range(5):
        state.observe(math.nan, patience=1)
    assert not state.finished and state.rounds_without_improvement == 0
    state.observe(0.4, patience=1)
    state.observe(math.nan, patience=1)
    assert not state.finished and state.best_auc_pr == 0.4


def test_round_ids_are_distinct_per_attempt_also_for_the_final_evaluation() -> None:
    plan = FederationPlan(trunk=TRUNK)
    ids = {_round_id(plan, i, a, final) for i in range(3) for a in range(3) for final in (0, 1)}
    assert len(ids) == 18
    assert _round_id(plan, 2, 0) == "train-r0002-a0"
    assert _round_id(plan, 2, 0, final=True) == "train-r0002-final"


def test_plan_defaults_and_round_trip() -> None:
    plan = FederationPlan(trunk=TRUNK, local=LocalTrainingSpec(epochs=0.5, batch_size=64))
    assert plan.secure_aggregation is True and plan.server_optimizer.name == "fedavg"
    assert FederationPlan.model_validate_json(plan.model_dump_json()) == plan


@pytest.mark.parametrize(
    "update",
    [
        {"run_id": "bad id"},
        {"run_id": "-leading-dash"},
        {"rounds": 0},
        {"threshold": 1},
        {"secure_aggregation": False},
        {"stage_timeout_s": 0},
        {"max_round_attempts": 0},
        {"unknown_field": 1},
    ],
)
def test_plan_rejects_invalid_values(update: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        FederationPlan.model_validate({"trunk": TRUNK, **update})


@pytest.mark.parametrize(
    "update",
    [
        {"epochs": 0},
        {"learning_rate": -1.0},
        {"batch_size": 0},
        {"prox_mu": -0.1},
        {"weight_cap": 99},  # the 32-bit ring's mean error grows as weights shrink
    ],
)
def test_local_spec_rejects_invalid_values(update: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LocalTrainingSpec.model_validate(update)


def test_the_weight_cap_bounds_a_partners_fedavg_weight() -> None:
    assert LocalTrainingSpec().fedavg_weight(13_100) == 13_100  # FedAvg: the rows
    capped = LocalTrainingSpec(weight_cap=3_000)
    assert capped.fedavg_weight(13_100) == 3_000
    assert capped.fedavg_weight(2_500) == 2_500


def test_train_spec_requires_a_sha256_and_forbids_extras() -> None:
    good = {
        "run_id": "train",
        "round_index": 0,
        "attempt": 0,
        "round_id": "train-r0000-a0",
        "participants": ["a", "b"],
        "global_trunk_sha256": "0" * 64,
        "trunk": TRUNK,
        "local": {},
        "seed": 0,
        "previous_round_completed": False,
        "ledger_head": {"entries": 0, "head_hash": "0" * 64},
    }
    assert TrainSpec.model_validate(good).final is False
    with pytest.raises(ValidationError):
        TrainSpec.model_validate(good | {"global_trunk_sha256": "abc"})
    with pytest.raises(ValidationError):
        TrainSpec.model_validate(good | {"heads": {}})
    with pytest.raises(ValidationError):  # no spec without the operator's ledger head
        TrainSpec.model_validate({k: v for k, v in good.items() if k != "ledger_head"})


def test_partner_report_holds_scalars_only() -> None:
    rep = PartnerRoundReport(
        partner="a", round_index=0, examples=10, validation={"auc_pr": 0.5}, compute_seconds=1
    )
    assert rep.validation == {"auc_pr": 0.5}
    with pytest.raises(ValidationError):  # no per-task numbers
        PartnerRoundReport.model_validate(rep.model_dump() | {"per_task": {"t1": 0.5}})
    with pytest.raises(ValidationError):
        PartnerRoundReport.model_validate(rep.model_dump() | {"validation": {"auc_pr": [0.5]}})
