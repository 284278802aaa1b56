"""Attack: retry differencing (issue 12, finding 2).

A round that actually completed is "retried" (an operator crash and resume, or a deliberate
retry that leaves partner i out): partners retrain bit-identically from the same state and
contribute again, and the difference of the two aggregates is i's update. Before the fix the
operator recovered every partner's exact weighted update this way (the three recovered
updates add up to the first aggregate). Now a partner records, before revealing its shares,
that the operator may hold an aggregate of that round, and refuses any later attempt of it:
the retry aborts with no masked input submitted. An honest operator that crashed after
aggregating resumes from the aggregate it kept (tests/integration/test_federation_faults.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import pharmafl.partner.federated as partner_module
from pharmafl.common.errors import FederationError
from pharmafl.partner.reveals import FRESH_STATE, state_key
from pharmafl.server import load_operator, run_training, secure_round

from .conftest import PARTNERS, MiniConsortium, library_launcher, ready_to_train

pytestmark = pytest.mark.slow


def _trained(make: Callable[..., MiniConsortium]) -> tuple[MiniConsortium, np.ndarray, int]:
    """A consortium whose round 0 completed: its aggregate (weighted sum) and Σ n_u."""
    mc = make(rounds=1)
    ready_to_train(mc)
    with library_launcher(mc) as launcher:
        result = run_training(mc.layout.operator.root, mc.url, launcher, poll_s=0.05)
    first = result.history[0]
    assert first.contributors == list(PARTNERS)
    total, examples = _AGGREGATES[first.round_id]
    return mc, total, examples


#: Every aggregate the operator decoded in a test: round id → (Σ w_u x_u, Σ n_u).
_AGGREGATES: dict[str, tuple[np.ndarray, int]] = {}


@pytest.fixture(autouse=True)
def _spy_on_aggregates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every aggregate the operator decodes, as a curious operator would."""
    import pharmafl.server.rounds as rounds_module

    real = rounds_module.save_aggregate
    _AGGREGATES.clear()

    def spy(state_dir: Any, spec: Any, result: Any) -> None:
        _AGGREGATES[spec.round_id] = (result.weighted_sum.copy(), result.report.total_examples)
        real(state_dir, spec, result)

    monkeypatch.setattr(rounds_module, "save_aggregate", spy)


def _retry_without(mc: MiniConsortium, left_out: str) -> str:
    """The operator retries round 0 with every partner but ``left_out``; its round id."""
    ctx = load_operator(mc.layout.operator.root, mc.url)
    ctx = dataclasses.replace(ctx, members=tuple(p for p in PARTNERS if p != left_out))
    trunk = ctx.layout.initial_trunk.read_bytes()
    with library_launcher(mc) as launcher:
        size = sum(int(np.prod(v.shape)) for v in _trunk_arrays(trunk))
        done = secure_round(ctx, launcher, trunk, 0, size=size, poll_s=0.05)
    return done.spec.round_id


def _trunk_arrays(data: bytes) -> list[np.ndarray]:
    from pharmafl.contract import trunk_from_bytes

    return list(trunk_from_bytes(data).values())


def test_before_the_fix_retries_gave_every_partners_exact_update(
    mini_consortium: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pharmafl.partner.reveals import RevealRecord, StartRecord

    monkeypatch.setattr(RevealRecord, "refuse", lambda *a: None)
    monkeypatch.setattr(RevealRecord, "claim", lambda *a: None)
    monkeypatch.setattr(StartRecord, "claim", lambda *a: None)  # the check across runs
    mc, total, _ = _trained(mini_consortium)
    recovered = {}
    for p in PARTNERS:
        rest, _ = _AGGREGATES[_retry_without(mc, p)]
        recovered[p] = total - rest  # p's weighted update w_p·x_p, exactly
    rebuilt = sum(recovered.values())
    assert np.linalg.norm(rebuilt - total) <= 1e-4 * np.linalg.norm(total)
    assert all(np.linalg.norm(v) > 0 for v in recovered.values())


def test_a_retried_round_gets_no_second_aggregate(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc, _, _ = _trained(mini_consortium)
    before = set(_AGGREGATES)
    with pytest.raises(FederationError, match="aborted"):
        _retry_without(mc, "alpha")
    assert set(_AGGREGATES) == before  # nothing new was aggregated
    masked = [p for p in mc.layout.exchange.glob("train-r0000-a[1-9]/masked/*/*.env")]
    assert masked == []  # bravo and charlie submitted nothing to the retries
    with pytest.raises(FederationError, match="already aggregated"):
        partner_module.partner_round(mc.partner_dir("bravo"), mc.url, "train-r0000-a1", timeout_s=2)


# --- the ways round a per-round-number record (review findings) ------------------------------


def _spec(round_index: int, attempt: int = 0, *, previous: bool = True) -> Any:
    from pharmafl.contract import LocalTrainingSpec, TrainSpec, format_round_id
    from pharmafl.contract.heads import LedgerHead

    return TrainSpec(
        run_id="train",
        round_index=round_index,
        attempt=attempt,
        round_id=format_round_id("train", round_index, attempt),
        participants=PARTNERS,
        global_trunk_sha256="0" * 64,
        trunk={"kind": "sparse", "input_size": 8, "hidden_sizes": [4]},
        local=LocalTrainingSpec(),
        seed=0,
        previous_round_completed=previous,
        ledger_head=LedgerHead(entries=1, head_hash="1" * 64),
    )


def test_a_state_is_revealed_from_once_whatever_the_round_number(tmp_path: Any) -> None:
    # Round 1 revealed from the head committed after round 0; round 3 "after round 2" (nothing
    # of round 2 to commit) would train from the same bytes: refused, as is any round id.
    state = partner_module._State(tmp_path, "train")
    state.dir.mkdir(parents=True)
    head = state_key(b"the head committed after round 0")
    state.reveals.claim(head, _spec(1))
    for spec in (_spec(3), _spec(1, 1), _spec(1)):
        with pytest.raises(FederationError, match="already aggregated"):
            state.reveals.refuse(head, spec)
    state.reveals.refuse(state_key(b"the head committed after round 1"), _spec(2))


def test_two_attempts_at_once_reveal_only_once(tmp_path: Any) -> None:
    state = partner_module._State(tmp_path, "train")
    state.dir.mkdir(parents=True)
    state.reveals.refuse(FRESH_STATE, _spec(0, 0))
    state.reveals.refuse(FRESH_STATE, _spec(0, 1))  # both passed the check after training
    state.reveals.claim(FRESH_STATE, _spec(0, 0))
    with pytest.raises(FederationError, match="already aggregated"):
        state.reveals.claim(FRESH_STATE, _spec(0, 1))  # checked again, under the lock
    with (
        state.reveals.exclusive(_spec(1, 0)),
        pytest.raises(FederationError, match="another round of run"),
        state.reveals.exclusive(_spec(1, 1)),  # a second round of the run at the same time
    ):
        pass


def test_a_final_evaluation_cannot_reset_a_partners_state(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    # An operator publishes a "final evaluation" of index 0, hoping it drops the committed
    # head so that the next round retrains round 0's exact update from a fresh head.
    mc, _, _ = _trained(mini_consortium)
    ctx = load_operator(mc.layout.operator.root, mc.url)
    from pharmafl.server import publish_round

    trunk = ctx.layout.initial_trunk.read_bytes()
    fin = publish_round(ctx, trunk, 0, previous_completed=True, final=True)
    state = partner_module._State(mc.partner_dir("alpha"), "train")
    before = state.committed.read_bytes()
    with pytest.raises(FederationError, match="comes before rounds this partner already"):
        partner_module.partner_finish(mc.partner_dir("alpha"), mc.url, fin.round_id, timeout_s=2)
    assert state.committed.read_bytes() == before


def test_a_spec_that_skips_an_aggregation_is_refused(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc, _, _ = _trained(mini_consortium)
    ctx = load_operator(mc.layout.operator.root, mc.url)
    from pharmafl.server import publish_round

    trunk = ctx.layout.initial_trunk.read_bytes()
    spec = publish_round(ctx, trunk, 1, previous_completed=False, final=False)
    with pytest.raises(FederationError, match="says round 0 was not aggregated"):
        partner_module.partner_round(mc.partner_dir("alpha"), mc.url, spec.round_id, timeout_s=2)


def test_an_unreadable_record_refuses_every_round(tmp_path: Any) -> None:
    state = partner_module._State(tmp_path, "train")
    state.dir.mkdir(parents=True)
    state.reveals.path.write_text("")  # e.g. left empty by a power loss
    with pytest.raises(FederationError, match="unreadable"):
        state.reveals.refuse(FRESH_STATE, _spec(0))


def test_a_round_that_fails_after_unmask_requests_is_never_retried(
    mini_consortium: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two partners die right before revealing (after the operator asked them to): the round
    # fails below t reveals. Partners may have revealed, so the operator must not retry it
    # (they would refuse anyway); the release is on the ledger and in every partner's ε.
    from pharmafl.accounting import partner_privacy
    from pharmafl.ledger import read_entries
    from pharmafl.partner.reveals import RevealRecord

    real_claim = RevealRecord.claim

    def dying_claim(self: RevealRecord, key: str, spec: Any) -> None:
        if "alpha" not in str(self.path):
            raise RuntimeError("partner process killed")
        real_claim(self, key, spec)

    monkeypatch.setattr(RevealRecord, "claim", dying_claim)
    mc = mini_consortium(rounds=1)
    ready_to_train(mc)
    with (
        library_launcher(mc) as launcher,
        pytest.raises(FederationError, match="aborted while revealing"),
    ):
        run_training(mc.layout.operator.root, mc.url, launcher, poll_s=0.05)
    entries = read_entries(mc.layout.operator.ledger)
    events = [e.event.value for e in entries]
    assert events.count("round_started") == 1  # no second attempt
    aborted = [e.payload for e in entries if e.event.value == "round_aborted"]
    assert len(aborted) == 1 and aborted[0]["released"] is True
    privacy = {r.partner: r.aggregates for r in partner_privacy(entries)}
    assert privacy == dict.fromkeys(PARTNERS, 1)
