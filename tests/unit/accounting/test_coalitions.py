"""A contribution study's coalitions: its config, run ids and plans, study ids, which
coalitions an estimator needs."""

from __future__ import annotations

import itertools
import re

import pytest
from pydantic import ValidationError

from pharmafl.accounting import (
    StudyConfig,
    coalition_plan,
    coalition_run_id,
    needed_coalitions,
    study_id,
)
from pharmafl.contract import RUN_ID_PATTERN, FederationPlan, LocalTrainingSpec, format_round_id

TRUNK = {"kind": "sparse", "hidden_sizes": [16], "dropouts": [0.1], "input_size": 64}
PLAYERS = ("alpha", "bravo", "charlie", "delta")
BASE = FederationPlan(
    rounds=12,
    patience=3,
    threshold=3,
    trunk=TRUNK,
    local=LocalTrainingSpec(epochs=1.0, learning_rate=2e-3, batch_size=64, head_finetune_epochs=5),
    stage_timeout_s=300,
)


def _sid(plan: FederationPlan = BASE, study: StudyConfig | None = None, **kw: object) -> str:
    args: dict[str, object] = {
        "players": PLAYERS,
        "consortium_hash": "c" * 64,
        "initial_trunk_sha256": "a" * 64,
        "plan": plan,
        "study": study or StudyConfig(),
    }
    return study_id(**(args | kw))  # type: ignore[arg-type]


def test_study_config_defaults_and_bounds() -> None:
    cfg = StudyConfig()
    assert cfg.rounds is None and cfg.method == "auto" and cfg.prune  # the main run's budget
    assert StudyConfig.model_validate_json(cfg.model_dump_json()) == cfg
    for bad in ({"rounds": 0}, {"method": "loo"}, {"samples": 1}, {"parallel": 0}, {"x": 1}):
        with pytest.raises(ValidationError):
            StudyConfig.model_validate(bad)


def test_recorded_parameters_leave_out_operational_settings() -> None:
    a = StudyConfig(rounds=3, seed=4).parameters()
    b = StudyConfig(rounds=3, seed=4, parallel=2, prune=False, stage_timeout_s=5).parameters()
    assert a == b and a["rounds"] == 3 and a["seed"] == 4 and "parallel" not in a


def test_the_coalitions_each_estimator_needs_in_advance() -> None:
    exact = needed_coalitions("exact", PLAYERS)
    assert len(exact) == len(set(exact)) == 15 and all(exact)  # every non-empty one
    loo = needed_coalitions("leave_one_out", PLAYERS)
    grand = frozenset(PLAYERS)
    assert set(loo) == {grand} | {grand - {p} for p in PLAYERS}
    two = needed_coalitions("leave_one_out", PLAYERS[:2])
    assert two == [frozenset(PLAYERS[:2]), frozenset(PLAYERS[1:2]), frozenset(PLAYERS[:1])]
    assert needed_coalitions("permutation", PLAYERS) == []


def test_the_study_values_the_policys_groups_only() -> None:
    from pharmafl.accounting import study_groups
    from pharmafl.common.errors import AccountingError
    from pharmafl.secure import SecurityPolicy

    for policy in (SecurityPolicy(), SecurityPolicy(valuation_groups=(("a", "b", "c"),))):
        with pytest.raises(AccountingError, match="valuation group") as err:
            study_groups(policy)
        assert "--valuation-group" in str(err.value.fix)
    groups = SecurityPolicy(valuation_groups=(("d", "e", "f"), ("a", "b", "c")))
    assert study_groups(groups) == {"a+b+c": ("a", "b", "c"), "d+e+f": ("d", "e", "f")}


def test_every_coalition_gets_its_own_valid_run_id() -> None:
    coalitions = [frozenset(c) for k in range(2, 5) for c in itertools.combinations(PLAYERS, k)]
    assert len(coalitions) == 11  # 6 pairs, 4 triples, the grand coalition
    ids = [coalition_run_id("0123456789ab", PLAYERS, c) for c in coalitions]
    assert len(set(ids)) == 11
    for rid in ids:
        assert re.match(RUN_ID_PATTERN, rid)
        assert len(format_round_id(rid, 9999, 99, final=True)) <= 128
    assert coalition_run_id("0123456789ab", PLAYERS, frozenset(PLAYERS)) == "cs-0123456789ab-f"
    assert coalition_run_id("x", PLAYERS, frozenset({"alpha", "charlie"})) == "cs-x-5"
    many = tuple(f"p{i:02d}" for i in range(7))
    assert coalition_run_id("x", many, frozenset(many)) == "cs-x-7f"


def test_coalition_plan_restricts_the_main_plan_under_the_study_budget() -> None:
    study = StudyConfig(rounds=3, local_epochs=0.5, head_finetune_epochs=1, stage_timeout_s=60)
    plan = coalition_plan(BASE, study, "cs-x-3", frozenset({"bravo", "alpha"}))
    assert plan.run_id == "cs-x-3"
    assert plan.participants == ("alpha", "bravo")
    assert plan.threshold is None  # the default for two members, not the main run's 3
    assert plan.rounds == plan.patience == 3  # a fixed budget: no early stopping
    assert plan.report_test_gain
    assert plan.local.epochs == 0.5 and plan.local.head_finetune_epochs == 1
    assert plan.local.learning_rate == 2e-3 and plan.local.batch_size == 64
    assert plan.trunk == BASE.trunk and plan.seed == BASE.seed
    assert plan.stage_timeout_s == 60
    same = coalition_plan(BASE, StudyConfig(rounds=3), "cs-x-3", frozenset({"alpha", "bravo"}))
    assert same.local == BASE.local and same.stage_timeout_s == 300
    # by default a coalition trains as the main run did: its budget and its patience
    main = coalition_plan(BASE, StudyConfig(), "cs-x-3", frozenset({"alpha", "bravo"}))
    assert (main.rounds, main.patience) == (BASE.rounds, BASE.patience) == (12, 3)


def test_study_id_follows_what_shapes_the_coalition_models() -> None:
    sid = _sid()
    assert re.fullmatch(r"[0-9a-f]{12}", sid) and _sid() == sid
    # The estimator, its seed and pruning do not change any coalition's model …
    assert _sid(study=StudyConfig(method="permutation", seed=5, samples=8, prune=False)) == sid
    # … nor the main run's run id, nor its budget when the study sets its own …
    assert _sid(plan=BASE.model_copy(update={"run_id": "m"})) == sid
    fixed = _sid(study=StudyConfig(rounds=3))
    longer = BASE.model_copy(update={"rounds": 40, "patience": 9})
    assert _sid(plan=longer, study=StudyConfig(rounds=3)) == fixed
    changed = [
        fixed,
        _sid(plan=longer),  # … but by default the coalitions train on the main run's budget
        _sid(study=StudyConfig(rounds=12)),  # a fixed 12 is not 12 with patience 3
        _sid(study=StudyConfig(local_epochs=2.0)),
        _sid(study=StudyConfig(head_finetune_epochs=0)),
        _sid(players=PLAYERS[:3]),
        _sid(consortium_hash="d" * 64),
        _sid(initial_trunk_sha256="b" * 64),
        _sid(plan=BASE.model_copy(update={"seed": 1})),
        _sid(
            plan=BASE.model_copy(
                update={"trunk": BASE.trunk.model_copy(update={"hidden_sizes": (32,)})}
            )
        ),
    ]
    assert sid not in changed and len(set(changed)) == len(changed)


@pytest.mark.parametrize("groups", [None, (("alpha", "bravo", "charlie"),)], ids=["none", "one"])
def test_a_study_without_two_valuation_groups_is_refused_with_the_fix(groups) -> None:
    """Coalitions of single partners would hand the operator S and S ∖ {i}, whose difference
    is i's update; with one group there is nothing to compare. The operator's study refuses
    both before training anything, and says how to sign groups."""
    from pharmafl.accounting.coalitions import study_groups
    from pharmafl.common.errors import AccountingError
    from pharmafl.secure import SecurityPolicy

    with pytest.raises(AccountingError, match="contribution study values at least two") as err:
        study_groups(SecurityPolicy(valuation_groups=groups))
    assert "--valuation-group" in (err.value.fix or "")
