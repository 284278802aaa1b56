"""Attack: contribution-study differencing (issue 12, finding 1).

Every coalition run of the old study started from the main plan's initial trunk and seed,
and local training is deterministic, so a partner's round-0 update was bit-identical in
every coalition it joined: the operator subtracted the aggregates of S and S ∖ {i} (exactly
the coalitions leave-one-out and exact Shapley train) and got i's update (cosine 1.000000);
so did every member of S ∖ {i}, from the trunks it is sent.

Now (pharmafl.secure.policy, pharmafl.partner.reveals):

- a partner never reveals twice from one global trunk for different contributor sets, in
  any run, unless the signed policy declares valuation groups and both sets are whole groups:
  the operator's second coalition aborts with nothing released;
- with valuation groups (each ≥ max(3, c + 2) partners), rounds invite and aggregates sum whole
  groups only — partners refuse any other invitation or survivor set, and the operator drops
  the rest of a group that lost a member — so what the study's differences give is a sum over
  a whole group, never one partner's update (the test shows it is exactly that sum).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pharmafl.common.errors import FederationError
from pharmafl.contract import FederationPlan
from pharmafl.secure import SecurityPolicy
from pharmafl.server import run_training, write_run_plan

from .conftest import PARTNERS, MiniConsortium, library_launcher, ready_to_train

pytestmark = pytest.mark.slow

#: Every aggregate the operator decoded: round id → (Σ w_u x_u, Σ n_u).
_AGGREGATES: dict[str, tuple[np.ndarray, int]] = {}
#: Every update a partner fed to secure aggregation: (round id, partner) → (x_u, n_u).
_UPDATES: dict[tuple[str, str], tuple[np.ndarray, int]] = {}


@pytest.fixture(autouse=True)
def _spy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every aggregate the operator decodes (as a curious operator would) and every
    true update (to score what the attacker recovers)."""
    import pharmafl.server.rounds as rounds_module
    from pharmafl.secure.client import SecAggClient

    real_save, real_input = rounds_module.save_aggregate, SecAggClient.provide_input
    _AGGREGATES.clear()
    _UPDATES.clear()

    def save(state_dir: Any, spec: Any, result: Any) -> None:
        _AGGREGATES[spec.round_id] = (result.weighted_sum.copy(), result.report.total_examples)
        real_save(state_dir, spec, result)

    def provide(self: SecAggClient, update: np.ndarray, num_examples: int) -> None:
        _UPDATES[(self.round_id, self.me)] = (np.array(update, copy=True), int(num_examples))
        real_input(self, update, num_examples)

    monkeypatch.setattr(rounds_module, "save_aggregate", save)
    monkeypatch.setattr(SecAggClient, "provide_input", provide)


def _coalition(mc: MiniConsortium, run_id: str, members: tuple[str, ...]) -> Any:
    """The operator trains ``members`` alone from the main plan's initial trunk and seed,
    as the old study did (its own run id, the plan restricted to the coalition)."""
    op = mc.layout.operator
    base = FederationPlan.model_validate_json(op.plan.read_text())
    plan = base.model_copy(update={"run_id": run_id, "participants": tuple(sorted(members))})
    write_run_plan(op.root, plan)
    with library_launcher(mc) as launcher:
        return run_training(op.root, mc.url, launcher, poll_s=0.05, run_id=run_id)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _round0(run_id: str) -> np.ndarray:
    return _AGGREGATES[f"{run_id}-r0000-a0"][0]


def test_before_the_fix_coalitions_gave_a_partners_exact_update(
    mini_consortium: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pharmafl.partner.reveals import StartRecord

    monkeypatch.setattr(StartRecord, "claim", lambda *a: None)
    mc = mini_consortium(rounds=1)
    ready_to_train(mc)
    _coalition(mc, "cs-all", PARTNERS)
    _coalition(mc, "cs-ab", ("alpha", "bravo"))
    recovered = _round0("cs-all") - _round0("cs-ab")
    truth, _ = _UPDATES[("cs-all-r0000-a0", "charlie")]
    assert _cosine(recovered, truth) > 0.9999  # charlie's update, exactly (up to quantization)


def test_a_second_coalition_from_the_same_trunk_gets_no_aggregate(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = mini_consortium(rounds=1)
    ready_to_train(mc)
    _coalition(mc, "cs-all", PARTNERS)
    with pytest.raises(FederationError, match="aborted"):
        _coalition(mc, "cs-ab", ("alpha", "bravo"))
    assert not [r for r in _AGGREGATES if r.startswith("cs-ab")]  # nothing released
    starts = mc.layout.partner("alpha").aggregated_starts.read_text()
    assert '"alpha", "bravo", "charlie"' in starts


# --- the record across runs, on its own ------------------------------------------------------


def _spec(run_id: str, trunk: str = "0" * 64) -> Any:
    from pharmafl.contract import LocalTrainingSpec, TrainSpec, format_round_id
    from pharmafl.contract.heads import LedgerHead

    return TrainSpec(
        run_id=run_id,
        round_index=0,
        attempt=0,
        round_id=format_round_id(run_id, 0, 0),
        participants=PARTNERS,
        global_trunk_sha256=trunk,
        trunk={"kind": "sparse", "input_size": 8, "hidden_sizes": [4]},
        local=LocalTrainingSpec(),
        seed=0,
        previous_round_completed=False,
        ledger_head=LedgerHead(entries=1, head_hash="1" * 64),
    )


SIX = ("a1", "a2", "a3", "b1", "b2", "b3")
GROUPS = SecurityPolicy(valuation_groups=(("a1", "a2", "a3"), ("b1", "b2", "b3")))


FP = "f" * 64  # the partner's identity fingerprint the record is bound to


def _record(path: Path) -> Any:
    from pharmafl.partner.reveals import StartRecord

    record = StartRecord(path)
    record.create(FP)
    return record


def test_the_record_allows_a_resumed_run_and_other_trunks_only(tmp_path: Path) -> None:
    record = _record(tmp_path / "aggregated_starts.json")
    record.claim(_spec("one"), PARTNERS, SecurityPolicy(), FP)
    record.claim(_spec("one"), PARTNERS, SecurityPolicy(), FP)  # the run resumed: no news
    record.claim(_spec("three", "2" * 64), ("alpha", "bravo"), SecurityPolicy(), FP)
    with pytest.raises(FederationError, match="difference"):
        record.claim(_spec("four"), ("alpha", "bravo"), SecurityPolicy(), FP)
    with pytest.raises(FederationError, match="difference"):  # a superset too
        record.claim(_spec("five", "2" * 64), PARTNERS, SecurityPolicy(), FP)
    # The same contributors in another run: its heads would match this run's, so a later,
    # nudged round could difference (adversarial review of issue 12, "replay then nudge").
    with pytest.raises(FederationError, match="difference"):
        record.claim(_spec("two"), PARTNERS, SecurityPolicy(), FP)


def test_the_record_allows_whole_valuation_groups_only(tmp_path: Path) -> None:
    record = _record(tmp_path / "aggregated_starts.json")
    record.claim(_spec("all"), SIX, GROUPS, FP)
    record.claim(_spec("a"), SIX[:3], GROUPS, FP)  # a study's coalitions: whole groups
    record.claim(_spec("b"), SIX[3:], GROUPS, FP)
    with pytest.raises(FederationError, match="difference"):
        record.claim(_spec("split"), SIX[:5], GROUPS, FP)
    other = _record(tmp_path / "other.json")
    with pytest.raises(FederationError, match="difference"):  # groups are not declared
        other.claim(_spec("x"), SIX[:3], SecurityPolicy(), FP)
        other.claim(_spec("y"), SIX, SecurityPolicy(), FP)


def test_an_unreadable_missing_or_foreign_record_refuses_to_reveal(tmp_path: Path) -> None:
    from pharmafl.partner.reveals import StartRecord

    path = tmp_path / "aggregated_starts.json"
    with pytest.raises(FederationError, match="missing"):
        StartRecord(path).claim(_spec("one"), PARTNERS, SecurityPolicy(), FP)
    path.write_text("{not json")
    with pytest.raises(FederationError, match="unreadable"):
        StartRecord(path).claim(_spec("one"), PARTNERS, SecurityPolicy(), FP)
    path.unlink()
    _record(path)
    with pytest.raises(FederationError, match="another identity"):
        StartRecord(path).claim(_spec("one"), PARTNERS, SecurityPolicy(), "e" * 64)


# --- valuation groups: the policy, and rounds under it ---------------------------------------


def test_groups_must_be_large_enough_and_cover_the_roster() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        SecurityPolicy(valuation_groups=(("a", "b"), ("c", "d", "e")))
    with pytest.raises(ValueError, match="at least 4"):  # c = 2: a member and a colluder
        SecurityPolicy(collusion_bound=2, valuation_groups=(("a", "b", "c"), ("d", "e", "f")))
    with pytest.raises(ValueError, match="more than one"):
        SecurityPolicy(valuation_groups=(("a", "b", "c"), ("c", "d", "e")))
    assert GROUPS.check_roster(SIX) is None
    assert "in no group: ['c1']" in str(GROUPS.check_roster((*SIX, "c1")))
    assert GROUPS.groups_violation(SIX[:3], "x") is None
    assert "missing ['a3']" in str(GROUPS.groups_violation(("a1", "a2", "b1", "b2", "b3"), "x"))


def test_a_roster_whose_groups_miss_a_partner_is_refused(tmp_path: Path) -> None:
    from .conftest import build_consortium

    with pytest.raises(Exception, match="in no group"):
        build_consortium(tmp_path, policy=GROUPS, names=(*SIX, "c1"))


def _six(make: Callable[..., MiniConsortium], rounds: int = 1) -> MiniConsortium:
    mc = make(rounds=rounds, policy=GROUPS, names=SIX)
    ready_to_train(mc)
    return mc


def test_a_coalition_that_splits_a_group_is_refused_at_every_partner(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = _six(mini_consortium)
    with pytest.raises(FederationError, match="aborted"):
        _coalition(mc, "cs-split", ("a1", "a2", "a3", "b1"))
    assert _AGGREGATES == {}
    assert _UPDATES == {}  # refused at the invitation: nobody even trained


def test_differences_of_group_coalitions_give_whole_group_sums_only(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = _six(mini_consortium)
    _coalition(mc, "cs-all", SIX)
    _coalition(mc, "cs-b", SIX[3:])
    recovered = _round0("cs-all") - _round0("cs-b")  # the operator's best difference
    max_examples = FederationPlan.model_validate_json(
        mc.layout.operator.plan.read_text()
    ).quantization.max_examples
    sent = {p: _UPDATES[("cs-all-r0000-a0", p)] for p in SIX[:3]}
    # w_u·x_u with w_u = n_u / max_examples, as secure aggregation sums them
    weighted = {p: x * (n / max_examples) for p, (x, n) in sent.items()}
    # The first group's sum (up to quantization: these updates are tiny), no single update...
    assert _cosine(recovered, sum(weighted.values())) > 0.99
    # ...and for a1, colluding with the operator, the sum of its two honest group-mates.
    rest = recovered - weighted["a1"]
    assert _cosine(rest, weighted["a2"] + weighted["a3"]) > 0.99
    for p in ("a2", "a3"):  # what that sum tells about one of them (see docs/security.md)
        print(f"cosine(recovered − a1's, {p}'s update) = {_cosine(rest, weighted[p]):.3f}")


NINE = (*SIX, "c1", "c2", "c3")


def _nine_without_b1(
    make: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch, **plan_fields: Any
) -> MiniConsortium:
    """Three groups of three; b1 fails before its masked input leaves."""
    from pharmafl.secure.client import SecAggClient

    groups = SecurityPolicy(valuation_groups=(NINE[:3], NINE[3:6], NINE[6:]))
    mc = make(rounds=1, policy=groups, names=NINE)
    ready_to_train(mc, stage_timeout_s=4, **plan_fields)  # the masked stage waits for b1
    spied = SecAggClient.provide_input

    def b1_fails_before_its_masked_input(self: SecAggClient, *args: Any) -> None:
        if self.me == "b1":
            raise FederationError("b1 is gone")
        spied(self, *args)

    monkeypatch.setattr(SecAggClient, "provide_input", b1_fails_before_its_masked_input)
    return mc


def test_survivors_that_split_a_group_are_refused_at_every_partner(
    mini_consortium: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pharmafl.secure.server import SecAggServer

    mc = _nine_without_b1(mini_consortium, monkeypatch, max_round_attempts=1)
    # An operator that does not take b2's and b3's inputs out again: U3 splits group b.
    monkeypatch.setattr(SecAggServer, "_whole_groups", lambda self, received: received)
    with pytest.raises(FederationError, match="aborted"):
        _coalition(mc, "cs-all", NINE)
    assert _AGGREGATES == {}


def test_a_group_that_loses_a_member_is_left_out_whole(
    mini_consortium: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch
) -> None:
    mc = _nine_without_b1(mini_consortium, monkeypatch)
    result = _coalition(mc, "cs-all", NINE)
    first = result.history[0]
    assert first.contributors == [*NINE[:3], *NINE[6:]]  # b2 and b3 were taken out with b1
    assert first.dropped == list(NINE[3:6])
    # The sum is exactly the two whole groups' (b2's and b3's inputs were subtracted again).
    agg = _round0("cs-all")
    max_examples = FederationPlan.model_validate_json(
        mc.layout.operator.plan.read_text()
    ).quantization.max_examples
    expected = sum(
        x * (n / max_examples) for (r, p), (x, n) in _UPDATES.items() if p in first.contributors
    )
    assert _cosine(agg, expected) > 0.99
