"""Run scoping: plan participants, per-run folders and plans, round ids, pruning a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pharmafl.common.errors import FederationError
from pharmafl.contract import MAIN_RUN_ID, FederationPlan, format_round_id
from pharmafl.layout import FINAL_TRUNK_FILE, PLAN_FILE, STATE_DIR
from pharmafl.secure import ExchangeStore, Identity, publish
from pharmafl.server import TrainingState, prune_run, run_dir, run_round_ids, write_run_plan
from pharmafl.server.runs import release_vectors

TRUNK = {"kind": "sparse", "hidden_sizes": [8], "dropouts": [0.1]}
ROSTER = ("alpha", "bravo", "charlie", "delta")


def _plan(**update: object) -> FederationPlan:
    return FederationPlan.model_validate({"trunk": TRUNK, **update})


def test_participants_are_sorted_and_default_to_the_roster() -> None:
    plan = _plan(run_id="c1", participants=["charlie", "alpha"])
    assert plan.participants == ("alpha", "charlie")
    assert plan.members(ROSTER) == ("alpha", "charlie")
    assert _plan().participants is None
    assert _plan().members(reversed(ROSTER)) == ROSTER
    assert FederationPlan.model_validate_json(plan.model_dump_json()) == plan


@pytest.mark.parametrize(
    "update",
    [
        {"participants": ["alpha"]},  # one partner alone is local training
        {"participants": []},
        {"participants": ["alpha", "alpha"]},
        {"participants": ["alpha", "bravo"], "threshold": 3},
    ],
)
def test_invalid_participants_are_rejected(update: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _plan(**update)


def test_participants_must_be_roster_partners() -> None:
    with pytest.raises(FederationError, match=r"\['zulu'\]"):
        _plan(participants=["alpha", "zulu"]).members(ROSTER)
    with pytest.raises(FederationError, match="threshold 3 exceeds"):
        _plan(threshold=3).members(("alpha", "bravo"))


def test_a_two_member_coalition_gets_a_valid_default_threshold() -> None:
    from pharmafl.secure.messages import default_threshold, min_threshold

    plan = _plan(participants=["alpha", "bravo"])
    assert plan.threshold is None  # the operator uses the default for the members
    assert min_threshold(2) <= default_threshold(2) <= 2


def test_main_run_keeps_its_paths_other_runs_get_their_own(tmp_path: Path) -> None:
    assert run_dir(tmp_path) == tmp_path
    assert run_dir(tmp_path, "cs-1") == tmp_path / "runs" / "cs-1"
    assert MAIN_RUN_ID == _plan().run_id == "train"


def test_write_run_plan(tmp_path: Path) -> None:
    (tmp_path / PLAN_FILE).write_text(_plan().model_dump_json())
    plan = _plan(run_id="cs-1", participants=["alpha", "bravo"])
    path = write_run_plan(tmp_path, plan)
    assert path == tmp_path / "runs" / "cs-1" / PLAN_FILE
    assert FederationPlan.model_validate_json(path.read_text()) == plan
    assert write_run_plan(tmp_path, plan) == path  # the same plan again: fine
    other = plan.model_copy(update={"rounds": 3})
    write_run_plan(tmp_path, other)  # not started yet: may change
    TrainingState().save(path.parent / STATE_DIR)
    with pytest.raises(FederationError, match="already started"):
        write_run_plan(tmp_path, plan)
    with pytest.raises(FederationError, match="main run"):
        write_run_plan(tmp_path, _plan())
    assert FederationPlan.model_validate_json((tmp_path / PLAN_FILE).read_text()) == _plan()


def test_round_ids_start_with_the_run_id() -> None:
    assert format_round_id("cs-1", 0, 0) == "cs-1-r0000-a0"
    assert format_round_id("cs-1", 2, 1, final=True) == "cs-1-r0002-final-a1"


def _spec(store: ExchangeStore, operator: Identity, rid: str) -> None:
    publish(store, operator, round_id=rid, kind="train_spec", payload=b"{}")
    publish(store, operator, round_id=rid, kind="global_trunk", payload=b"x" * 100)


def test_prune_run_deletes_only_that_runs_rounds_and_trunks(tmp_path: Path) -> None:
    operator = Identity.generate("operator", "operator")
    store = ExchangeStore(tmp_path / "exchange")
    odir = tmp_path / "operator"
    odir.mkdir()
    (odir / PLAN_FILE).write_text(_plan().model_dump_json())
    rounds = ["cs-1-r0000-a0", "cs-1-r0000-a1", "cs-1-r0001-a0", "cs-1-r0002-final"]
    rounds.append("cs-1-r0002-final-a1")
    for rid in [*rounds, "train-r0000-a0", "cs-10-r0000-a0"]:
        _spec(store, operator, rid)
    assert run_round_ids(store, "cs-1") == sorted(rounds)
    rdir = run_dir(odir, "cs-1")
    write_run_plan(odir, _plan(run_id="cs-1", participants=["alpha", "bravo"]))
    state = TrainingState(trunk={"trunk.w": np.ones(3, np.float32)}, next_round=2)
    state.save(rdir / STATE_DIR)
    with pytest.raises(FederationError, match="has not finished"):
        prune_run(odir, str(store.url), "cs-1")
    state.finished = True
    state.save(rdir / STATE_DIR)
    (rdir / FINAL_TRUNK_FILE).write_bytes(b"trunk")

    assert prune_run(odir, str(tmp_path / "exchange"), "cs-1") == len(rounds)
    assert run_round_ids(store, "cs-1") == []
    assert run_round_ids(store, "train") == ["train-r0000-a0"]  # other runs untouched
    assert run_round_ids(store, "cs-10") == ["cs-10-r0000-a0"]
    assert sorted(p.name for p in rdir.iterdir()) == [PLAN_FILE]
    with pytest.raises(FederationError, match="never pruned"):
        prune_run(odir, str(tmp_path / "exchange"), "train")


def test_release_vectors_drops_every_attempts_trunk_and_keeps_the_specs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    operator = Identity.generate("operator", "operator")
    store = ExchangeStore(tmp_path / "exchange")
    for rid in ("cs-1-r0000-a0", "cs-1-r0000-a1", "cs-1-r0001-a0", "cs-1-r0001-final"):
        _spec(store, operator, rid)
    assert release_vectors(store, "cs-1", 0) == 2
    for rid in ("cs-1-r0000-a0", "cs-1-r0000-a1"):
        assert store.keys(rid, "global_trunk", "consortium") == []
        assert len(store.keys(rid, "train_spec", "consortium")) == 1
    assert len(store.keys("cs-1-r0001-a0", "global_trunk", "consortium")) == 1
    assert release_vectors(store, "cs-1", 1) == 1
    assert len(store.keys("cs-1-r0001-final", "global_trunk", "consortium")) == 1  # never
    assert run_round_ids(store, "cs-1") == [
        "cs-1-r0000-a0", "cs-1-r0000-a1", "cs-1-r0001-a0", "cs-1-r0001-final"
    ]  # fmt: skip

    # A store that refuses deletes keeps them: one warning, and training goes on.
    _spec(store, operator, "cs-2-r0000-a0")

    def refuse(path: str) -> None:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setenv("PHARMAFL_RETRY_WINDOW_S", "0.2")
    refusing = ExchangeStore(tmp_path / "exchange")
    monkeypatch.setattr(refusing, "_rm", refuse)
    with caplog.at_level("WARNING"):
        assert release_vectors(refusing, "cs-2", 0) == 0
    assert "stay in the store" in caplog.text
    assert len(store.keys("cs-2-r0000-a0", "global_trunk", "consortium")) == 1
