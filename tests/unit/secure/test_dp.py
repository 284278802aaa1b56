"""Differential privacy: ε behaves as theory says, clipping and noise are really applied."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import DPConfig, QuantizationConfig, clip_l2, dp_epsilon, run_secagg_round


def test_epsilon_falls_with_noise_and_grows_with_rounds() -> None:
    eps = {z: dp_epsilon(z, 50, 1e-6) for z in (0.8, 1.0, 2.0, 4.0)}
    assert eps[0.8] > eps[1.0] > eps[2.0] > eps[4.0] > 0
    by_rounds = [dp_epsilon(1.0, r, 1e-6) for r in (1, 10, 100)]
    assert by_rounds[0] < by_rounds[1] < by_rounds[2]
    assert dp_epsilon(1.0, 100, 1e-6, sampling_rate=0.1) < by_rounds[2]  # amplification
    assert dp_epsilon(0.0, 1, 1e-6) == math.inf
    assert dp_epsilon(1.0, 0, 1e-6) == 0.0
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=1.0, delta=1e-6)
    assert cfg.epsilon(10) == pytest.approx(dp_epsilon(cfg.noise_multiplier / 2, 10, 1e-6))
    with pytest.raises(SecureAggregationError):
        dp_epsilon(1.0, 1, 0.0)


def test_round_refuses_a_clamp_that_would_cut_the_noise() -> None:
    ids = ["a", "b", "c"]
    ups = {p: np.zeros(10) for p in ids}
    with pytest.raises(SecureAggregationError, match="noise is"):
        run_secagg_round(
            ups,
            dict.fromkeys(ids, 1),
            quantization=QuantizationConfig(clip=1.0),
            dp=DPConfig(clip_norm=1.0, noise_multiplier=1.0),
        )


def test_gaussian_epsilon_matches_a_known_value() -> None:
    # One Gaussian mechanism, z = 1, δ = 1e-5: RDP gives ε ≈ 4.4-5 (tighter analyses give 4.4).
    assert 4.0 < dp_epsilon(1.0, 1, 1e-5) < 5.5


def test_clip_l2() -> None:
    x = np.array([3.0, 4.0])
    assert clip_l2(x, 1.0) == pytest.approx(5.0)
    assert np.linalg.norm(x) == pytest.approx(1.0)
    y = np.array([0.3, 0.4])
    clip_l2(y, 1.0)
    assert np.allclose(y, [0.3, 0.4])


def test_noise_is_applied_in_the_protocol_with_the_configured_std() -> None:
    n, size = 4, 20_000
    rng = np.random.default_rng(3)
    ids = [f"p{i}" for i in range(n)]
    big = {p: rng.normal(0, 1.0, size) for p in ids}  # norm ≈ 141: clipped to C
    counts = dict.fromkeys(ids, 1024)
    q = QuantizationConfig(clip=80.0, max_examples=1024)  # >= C + 6σ, so noise is not clamped
    dp = DPConfig(clip_norm=10.0, noise_multiplier=1.5, min_contributors=2)
    sim = run_secagg_round(big, counts, quantization=q, dp=dp, seed=11)
    clipped = sum(big[p] * (10.0 / np.linalg.norm(big[p])) for p in ids)
    resid = sim.result.weighted_sum - clipped
    expected_std = dp.partner_noise_std * math.sqrt(n)  # n partners each add z·C/√m
    assert resid.std() == pytest.approx(expected_std, rel=0.05)
    assert abs(resid.mean()) < 5 * expected_std / math.sqrt(size)
    # Without DP the same round is exact: the residual above is the noise, not an error.
    plain = run_secagg_round(big, counts, quantization=q)
    exact = sum(big[p] for p in ids)
    assert np.max(np.abs(plain.result.weighted_sum - exact)) <= q.sum_error_bound(n)


def _exact_gaussian_epsilon(sigma: float, rounds: int, delta: float) -> float:
    """An independent accountant: R Gaussian mechanisms of noise multiplier σ compose exactly
    to one with μ = √R / σ, whose δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2) (Balle & Wang,
    ICML 2018); solved for ε by bisection."""
    from scipy.stats import norm

    mu = math.sqrt(rounds) / sigma

    def delta_of(eps: float) -> float:
        return float(norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2))

    lo, hi = 0.0, 1000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if delta_of(mid) > delta else (lo, mid)
    return hi


@pytest.mark.parametrize(("z", "rounds"), [(1.0, 1), (2.0, 10), (4.0, 50), (8.0, 100)])
def test_epsilon_uses_replace_one_sensitivity_and_matches_an_independent_accountant(
    z: float, rounds: int
) -> None:
    cfg = DPConfig(clip_norm=1.0, noise_multiplier=z, delta=1e-6)
    eps = cfg.epsilon(rounds)
    exact = _exact_gaussian_epsilon(z / 2, rounds, 1e-6)  # sensitivity 2C: multiplier z/2
    rho = rounds / (2 * (z / 2) ** 2)  # zCDP upper bound (Bun & Steinke 2016)
    zcdp = rho + 2 * math.sqrt(rho * math.log(1 / 1e-6))
    assert exact <= eps <= zcdp
    assert eps <= 1.5 * exact  # RDP is an upper bound, close to the exact value
    # The add/remove accounting (the old one) understated ε: it was below the exact value.
    assert dp_epsilon(z, rounds, 1e-6) < exact


@pytest.mark.parametrize("weight", [0.0, -0.5, 1.5])
def test_a_weight_outside_0_1_never_reaches_the_clip(weight: float) -> None:
    """The clip bound is C·w: a weight above 1 would let one partner's update move the sum by
    more than the sensitivity the noise was sized for (the DP guarantee would not hold), and
    one of 0 or below is no partner at all. Refused before anything is clipped or noised."""
    from pharmafl.secure.dp import privatize

    x = np.ones(10)
    with pytest.raises(SecureAggregationError, match=r"DP weight must be in \(0, 1\]"):
        privatize(
            x, weight, DPConfig(noise_multiplier=1.0, clip_norm=1.0), np.random.default_rng(0)
        )
    assert np.all(x == 1.0)
