"""Issue 16, item 1: compressed updates keep secure aggregation exact.

A federated run on an 8-bit ring sends one byte per trunk parameter (0.25× the float32
update) and nothing else about a partner: every parameter is masked, there is no sparsity
pattern, and the only per-round public number that changes is the clip, which the operator
derives from the aggregate it already learned and signs into the round spec for everyone.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pharmafl.contract import trunk_from_bytes
from pharmafl.layout import FINAL_TRUNK_FILE, STATE_DIR
from pharmafl.ledger import LedgerEvent, read_entries, verify_ledger
from pharmafl.secure import QuantizationConfig, RoundSpec
from pharmafl.server import TrainingState, load_operator, run_training
from pharmafl.server.runs import run_round_ids

from .conftest import PARTNERS, MiniConsortium, library_launcher, ready_to_train

ROUNDS = 3


@pytest.mark.slow
def test_an_8_bit_run_sends_a_quarter_and_adapts_its_public_clip(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = mini_consortium(rounds=ROUNDS)
    q = QuantizationConfig.for_ring(8)
    plan = ready_to_train(mc, quantization=q, patience=ROUNDS)
    with library_launcher(mc) as launcher:
        result = run_training(mc.layout.operator.root, mc.url, launcher, poll_s=0.05)
    assert [r.contributors for r in result.history] == [list(PARTNERS)] * ROUNDS

    store, op = mc.store, load_operator(mc.layout.operator.root, mc.url)
    specs = [  # every training round's secure-aggregation spec, in order (final: none)
        RoundSpec.from_payload(store.get(keys[0]).payload)
        for rid in run_round_ids(store, plan.run_id)
        if (keys := store.keys(rid, "round_spec", PARTNERS[0]))
    ]
    assert len(specs) == ROUNDS
    clips = [s.quantization.clip for s in specs]
    assert clips[0] == q.clip  # round 0: the plan's
    assert all(c != q.clip and c > 0 for c in clips[1:])  # then set from each aggregate
    assert all(s.quantization.ring_bits == 8 for s in specs)
    state = TrainingState.load(op.run_dir / STATE_DIR)
    assert state is not None and state.clip is not None and state.clip > 0

    # One byte per parameter (plus the count's digits) in every masked update still stored.
    size = sum(
        v.size for v in trunk_from_bytes(mc.layout.operator.initial_trunk.read_bytes()).values()
    )
    masked = [
        store.get(k)
        for rid in run_round_ids(store, plan.run_id)
        for k in store.keys(rid, "masked", mc.operator.id)
    ]
    assert masked, "the last round's masked updates are kept"
    for env in masked:
        assert env.headers["dtype"] == "|u1"
        assert len(env.payload) == size + q.count_entries(len(PARTNERS))
        assert len(env.payload) <= 0.25 * 4 * size + 8

    trunk = trunk_from_bytes((op.run_dir / FINAL_TRUNK_FILE).read_bytes())
    assert all(np.isfinite(v).all() for v in trunk.values())
    verify_ledger(mc.layout.operator.ledger)
    started = [  # the ledger records the clip every round used
        e.payload["quantization"]["clip"]  # type: ignore[index]
        for e in read_entries(mc.layout.operator.ledger)
        if e.event is LedgerEvent.ROUND_STARTED
    ]
    assert started == clips


def test_a_partner_refuses_a_clip_that_turns_its_update_into_signs() -> None:
    """Review of issue 16: with a clip far below the entries every partner sends ±L, and the
    operator reads each partner's sign wherever they agree (52 % of coordinates in the
    review's run). A partner now refuses to send when the clip clamps more than 5 % of its
    nonzero entries; the honest adaptive clip clamps far fewer."""
    from pharmafl.common.errors import PolicyViolationError
    from pharmafl.secure import run_secagg_round
    from pharmafl.secure.quantize import MAX_CLAMPED_FRACTION, quantize

    rng = np.random.default_rng(0)
    updates = {p: rng.normal(0, 0.01, 2000) for p in PARTNERS}
    counts = dict.fromkeys(PARTNERS, 100)
    tiny = QuantizationConfig(clip=1e-9, ring_bits=8)
    with pytest.raises(PolicyViolationError, match="reveals which way each partner moved"):
        run_secagg_round(updates, counts, quantization=tiny)  # before any masked input leaves
    with pytest.raises(PolicyViolationError, match="would clamp 2000 of this partner's 2000"):
        quantize(updates[PARTNERS[0]], 100, tiny, 3, max_clamped=MAX_CLAMPED_FRACTION)
    fair = QuantizationConfig(clip=0.04, ring_bits=8)  # 4 σ: clamps ~0.006 %
    assert run_secagg_round(updates, counts, quantization=fair).result.report.survivors == PARTNERS


def test_a_consortium_can_forbid_compressed_rings(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """Review of issue 16: the operator could move a consortium that agreed on exact FedAvg
    (32 bits, example weights) to an 8-bit ring (equal weights) for any round. A policy with
    ``min_ring_bits`` makes partners refuse such a round spec, and the operator such a plan."""
    from pharmafl.common.errors import PolicyViolationError
    from pharmafl.secure import SecurityPolicy, run_secagg_round

    rng = np.random.default_rng(1)
    updates = {p: rng.normal(0, 0.01, 100) for p in PARTNERS}
    counts = dict.fromkeys(PARTNERS, 100)
    policy = SecurityPolicy(min_ring_bits=32)
    with pytest.raises(PolicyViolationError, match="requires at least 32 bits"):
        run_secagg_round(
            updates, counts, quantization=QuantizationConfig.for_ring(8), policy=policy
        )
    wide = QuantizationConfig.for_ring(32)
    assert run_secagg_round(updates, counts, quantization=wide, policy=policy).result is not None
    assert SecurityPolicy().ring_violation(8) is None  # unset: any ring

    mc = mini_consortium(policy=policy)
    ready_to_train(mc, quantization=QuantizationConfig.for_ring(8))
    with pytest.raises(PolicyViolationError, match="requires at least 32 bits"):
        load_operator(mc.layout.operator.root, mc.url)  # the operator refuses to start it


@pytest.mark.slow
def test_the_adaptive_clip_never_drops_below_what_dp_noise_needs(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """With DP, partners refuse a round spec whose clip would clamp the noise (C + 6σ); the
    operator's adaptive clip, which shrinks towards the updates, must stop at that floor or
    the second round is refused by every partner."""
    from pharmafl.secure import DPConfig

    dp = DPConfig(clip_norm=0.1, noise_multiplier=1.0, min_contributors=2)
    need = dp.clip_norm + 6 * dp.partner_noise_std
    mc = mini_consortium(rounds=2)
    q = QuantizationConfig.for_ring(8, clip=round(need * 1.01, 4))
    plan = ready_to_train(mc, quantization=q, dp=dp, patience=2)
    with library_launcher(mc) as launcher:
        result = run_training(mc.layout.operator.root, mc.url, launcher, poll_s=0.05)
    assert [r.contributors for r in result.history] == [list(PARTNERS)] * 2
    store = mc.store
    clips = [
        RoundSpec.from_payload(store.get(keys[0]).payload).quantization.clip
        for rid in run_round_ids(store, plan.run_id)
        if (keys := store.keys(rid, "round_spec", PARTNERS[0]))
    ]
    assert len(clips) == 2 and clips[1] >= need  # the aggregate alone would set it lower
