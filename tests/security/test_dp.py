"""Finding 9 of issue 12: differential privacy could not be used.

Before: partner rounds built their secure-aggregation client without a random generator, so
a DP round failed at every partner; the federation plan had no DP field; partners accepted a
round without DP (or with z = 0) whatever the consortium agreed; and ε was accounted with
add/remove sensitivity C where participation and Σ n_u are public (replace-one: 2C; see
tests/unit/secure/test_dp.py for the accountant against an exact one). Now the plan carries
DP into every round, partners draw the noise from fresh OS entropy, and the consortium's
signed policy can require a noise multiplier that partners and the operator enforce.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pharmafl.accounting import partner_privacy
from pharmafl.common.errors import PolicyViolationError
from pharmafl.ledger import read_entries
from pharmafl.secure import DPConfig, SecurityPolicy, run_secagg_round
from pharmafl.server import load_operator, run_training

from .conftest import PARTNERS, MiniConsortium, library_launcher, ready_to_train

DP = DPConfig(clip_norm=0.1, noise_multiplier=1.0, min_contributors=2)


@pytest.mark.slow
def test_a_federated_round_with_dp_completes_and_its_noise_is_in_the_trunk(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    results = []
    for dp in (None, DP):
        mc = mini_consortium(rounds=1)
        ready_to_train(mc, dp=dp)
        with library_launcher(mc) as launcher:
            result = run_training(mc.layout.operator.root, mc.url, launcher, poll_s=0.05)
        assert result.history[0].contributors == list(PARTNERS)
        results.append(result.history[0].trunk_sha256)
        privacy = partner_privacy(read_entries(mc.layout.operator.ledger))
        expected = None if dp is None else dp.epsilon(1)
        assert [(r.partner, r.aggregates) for r in privacy] == [(p, 1) for p in PARTNERS]
        assert all(r.epsilon == expected for r in privacy)
    # Same data, seed and partners: only the DP clipping and noise differ.
    assert results[0] != results[1]


def test_the_policy_makes_partners_refuse_a_round_without_enough_noise() -> None:
    rng = np.random.default_rng(6)
    updates = {p: rng.normal(0, 0.01, 16) for p in PARTNERS}
    counts = dict.fromkeys(PARTNERS, 10)
    policy = SecurityPolicy(min_noise_multiplier=1.0)
    with pytest.raises(PolicyViolationError, match="no differential privacy"):
        run_secagg_round(updates, counts, policy=policy)
    weak = DP.model_copy(update={"noise_multiplier": 0.5})
    with pytest.raises(PolicyViolationError, match=r"noise multiplier 0\.5"):
        run_secagg_round(updates, counts, policy=policy, dp=weak, seed=1)
    ok = run_secagg_round(updates, counts, policy=policy, dp=DP, seed=1).result
    assert ok.report.survivors == PARTNERS


def test_the_operator_refuses_to_start_a_run_without_the_required_dp(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = mini_consortium(policy=SecurityPolicy(min_noise_multiplier=1.0))
    with pytest.raises(PolicyViolationError, match="no differential privacy"):
        load_operator(mc.layout.operator.root, mc.url)


def test_noise_split_over_more_partners_than_can_be_counted_on_is_refused() -> None:
    # An operator could keep z at the policy's floor but split the noise over m = 10,000
    # partners: 3 contributors then add 0.017·z·C, while ε is accounted at z.
    rng = np.random.default_rng(7)
    updates = {p: rng.normal(0, 0.01, 16) for p in PARTNERS}
    counts = dict.fromkeys(PARTNERS, 10)
    policy = SecurityPolicy(min_noise_multiplier=1.0)
    diluted = DP.model_copy(update={"min_contributors": 10_000})
    with pytest.raises(PolicyViolationError, match="less noise than promised"):
        run_secagg_round(updates, counts, policy=policy, dp=diluted, seed=1)
    # m = 3 of 3 is fine until a partner drops: then 2 contributors cannot carry it.
    full = DP.model_copy(update={"min_contributors": 3})
    with pytest.raises(PolicyViolationError, match="only 2 of 2"):
        run_secagg_round(
            updates,
            counts,
            policy=policy,
            dp=full,
            seed=1,
            dropouts={"charlie": "submit"},
            threshold=2,
        )
