"""Attacks on who takes part in a round (issue 12, findings 3 and 4), and the policy that
stops them: a collusion bound c signed with the roster every partner pins.

- Finding 4, the operator picks the participants: a round naming {victim, colluder} out of a
  10-partner roster was accepted (t = 2 of 2), and aggregate − colluder's own input is the
  victim's update. Under a policy with c = 1 every round needs c + 2 = 3 participants: the
  victim refuses before it sends anything.
- Finding 3, survivor-set split: colluders sign both of two survivor sets shown to disjoint
  honest groups, one group reveals the victim's mask-key shares, the other its self-mask
  shares. That needs 2(t − c) + c ≤ n; the policy's threshold floor ⌊(n + c)/2⌋ + 1 (and
  t ≥ c + 1) makes it impossible, and partners refuse lower thresholds (n = 4, t = 3 falls to
  2 colluders: refused under c = 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from pharmafl.common.errors import PolicyViolationError
from pharmafl.secure import SecurityPolicy, run_secagg_round
from pharmafl.server import load_operator

from .conftest import MiniConsortium

ROSTER = tuple(f"p{i}" for i in range(10))
VICTIM, COLLUDER = "p0", "p1"


def _two_partner_round(policy: SecurityPolicy | None) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(3)
    updates = {VICTIM: rng.normal(0, 0.01, 32), COLLUDER: rng.normal(0, 0.01, 32)}
    counts = {VICTIM: 400, COLLUDER: 100}
    out = run_secagg_round(
        updates, counts, threshold=2, policy=policy, bystanders=ROSTER[2:]
    ).result
    # The colluder knows its own weighted input; the rest of the sum is the victim's.
    weighted = out.weighted_sum - updates[COLLUDER] * (counts[COLLUDER] / out.max_examples)
    recovered = weighted * out.max_examples / counts[VICTIM]
    cos = float(recovered @ updates[VICTIM]) / (
        np.linalg.norm(recovered) * np.linalg.norm(updates[VICTIM])
    )
    return recovered, updates[VICTIM], cos


def test_without_a_collusion_bound_two_of_ten_gave_the_victims_update() -> None:
    recovered, true, cos = _two_partner_round(None)
    assert cos > 0.99999 and np.allclose(recovered, true, atol=1e-4)  # quantization only


def test_the_victim_refuses_a_round_too_small_for_the_collusion_bound() -> None:
    with pytest.raises(PolicyViolationError, match="needs at least 3"):
        _two_partner_round(SecurityPolicy(collusion_bound=1))


def test_a_threshold_that_allows_a_survivor_split_is_refused() -> None:
    rng = np.random.default_rng(4)
    partners = ("a", "b", "c", "d")
    updates = {p: rng.normal(0, 0.01, 16) for p in partners}
    counts = dict.fromkeys(partners, 10)
    # n = 4, t = 3 with 2 colluders: 2(3 − 2) + 2 = 4 ≤ 4, the split works; refused.
    with pytest.raises(PolicyViolationError, match="threshold 3 for 4 participants"):
        run_secagg_round(updates, counts, threshold=3, policy=SecurityPolicy(collusion_bound=2))
    # The policy's own default threshold (4 of 4) is accepted.
    ok = run_secagg_round(updates, counts, policy=SecurityPolicy(collusion_bound=2)).result
    assert ok.report.threshold == 4


@pytest.mark.parametrize("n", range(2, 13))
def test_the_policy_floor_is_exactly_where_the_split_and_the_shares_fail(n: int) -> None:
    for c, t in itertools.product(range(n), range(1, n + 1)):
        policy = SecurityPolicy(collusion_bound=c)
        split_possible = 2 * (t - c) + c <= n and t > c
        shares_open = t <= c
        if n < c + 2:
            continue  # refused for too few participants, whatever t
        allowed = policy.violation(n, t) is None
        assert allowed == (not split_possible and not shares_open), (n, c, t)


def test_the_operator_refuses_to_start_a_run_that_breaks_the_policy(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = mini_consortium(policy=SecurityPolicy(collusion_bound=2))  # 3 partners: c + 2 = 4
    with pytest.raises(PolicyViolationError, match="needs at least 4"):
        load_operator(mc.layout.operator.root, mc.url)


def test_too_few_contributors_are_refused_even_when_enough_were_invited() -> None:
    rng = np.random.default_rng(5)
    partners = tuple(f"q{i}" for i in range(5))
    updates = {p: rng.normal(0, 0.01, 16) for p in partners}
    counts = dict.fromkeys(partners, 10)
    policy = SecurityPolicy(min_participants=5)
    # t = 3 of 5 is allowed, but two partners drop before submitting: 3 inputs < 5.
    with pytest.raises(PolicyViolationError, match="3 contributors"):
        run_secagg_round(
            updates,
            counts,
            threshold=3,
            policy=policy,
            dropouts={"q3": "submit", "q4": "submit"},
        )
