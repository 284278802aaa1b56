"""Contribution values carry intervals: each member's standard error over its test tasks,
carried through v(S) = Σ gains / n and through the (linear) estimators."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from pharmafl.accounting import (
    CachedUtility,
    UtilityEstimate,
    coalition_utility,
    estimate_contributions,
    exact_shapley,
    leave_one_out,
    mean_gain_estimate,
    permutation_shapley,
)

Z95 = 1.959963984540054
#: v(S) ± se(S) of a two-player game (a: a genuine group, b: a free rider that adds noise).
GAME = {
    frozenset(): UtilityEstimate(0.0, 0.0),
    frozenset({"a"}): UtilityEstimate(0.030, 0.004),
    frozenset({"b"}): UtilityEstimate(-0.002, 0.003),
    frozenset({"a", "b"}): UtilityEstimate(0.024, 0.005),
}


def _v(cache: Path | None = None) -> CachedUtility:
    return CachedUtility(("a", "b"), lambda s: GAME[s], cache_path=cache)


def test_mean_gain_estimate_adds_member_errors_in_quadrature() -> None:
    gains = {"p": UtilityEstimate(0.04, 0.03), "q": UtilityEstimate(0.02, 0.04)}
    est = mean_gain_estimate(gains, ["p", "q", "r", "s"])
    assert est.value == pytest.approx(0.015)
    assert est.se == pytest.approx(0.05 / 4)
    # a member without an error (a plain gain, or one task) leaves v(S) without one
    assert mean_gain_estimate({"p": 0.04, "q": gains["q"]}, ["p", "q"]).se is None


def test_exact_shapley_intervals_follow_the_linear_estimator() -> None:
    res = exact_shapley(["a", "b"], _v())
    assert res.shapley is not None and res.shapley_ci is not None and res.confidence == 0.95
    # φ_b = ½ (v(b) − v(∅) + v(ab) − v(a)): variance ¼ (se_b² + se_ab² + se_a²)
    sd = 0.5 * math.sqrt(0.003**2 + 0.005**2 + 0.004**2)
    lo, hi = res.shapley_ci["b"]
    assert res.shapley["b"] == pytest.approx(0.5 * (-0.002 + 0.024 - 0.030))
    assert (hi - lo) / 2 == pytest.approx(Z95 * sd)
    assert lo < res.shapley["b"] < hi
    # the free rider comes out last, its interval reaches 0; the genuine group's stays above
    assert res.shapley["b"] < res.shapley["a"] and lo <= 0.0 < res.shapley_ci["a"][0]
    assert res.grand_coalition_ci == pytest.approx((0.024 - Z95 * 0.005, 0.024 + Z95 * 0.005))
    assert res.leave_one_out_ci is not None
    loo_sd = math.hypot(0.005, 0.004)  # LOO_b = v(ab) − v(a)
    lo, hi = res.leave_one_out_ci["a"]
    assert (hi - lo) / 2 == pytest.approx(Z95 * math.hypot(0.005, 0.003))
    lo, hi = res.leave_one_out_ci["b"]
    assert (hi - lo) / 2 == pytest.approx(Z95 * loo_sd)


def test_permutation_intervals_add_evaluation_and_sampling_error() -> None:
    exact = exact_shapley(["a", "b"], _v())
    # two players, antithetic orderings: every sample is exact, no sampling error left
    res = permutation_shapley(["a", "b"], _v(), rng=0, n_permutations=8)
    assert res.shapley_ci is not None and exact.shapley_ci is not None
    for p in ("a", "b"):
        assert res.shapley_ci[p] == pytest.approx(exact.shapley_ci[p])
    # without antithetic pairs the orderings differ: a's estimate weighs v(a) by the share
    # k/m of orderings that put it first, v(ab) − v(b) by the rest; its interval adds that
    # weighting's evaluation error to the sampling error in quadrature
    m = 20
    plain = permutation_shapley(["a", "b"], _v(), rng=0, n_permutations=m, antithetic=False)
    gen = np.random.default_rng(0)
    first = sum(int(gen.permutation(2)[0] == 0) for _ in range(m))
    marginals = np.array([0.030] * first + [0.024 - (-0.002)] * (m - first))
    sampled = Z95 * marginals.std(ddof=1) / math.sqrt(m)
    k = first / m
    evaluation = Z95 * math.sqrt((k * 0.004) ** 2 + (1 - k) ** 2 * (0.005**2 + 0.003**2))
    assert plain.shapley is not None and plain.shapley_ci is not None
    assert plain.shapley["a"] == pytest.approx(marginals.mean())
    lo, hi = plain.shapley_ci["a"]
    assert (hi - lo) / 2 == pytest.approx(math.hypot(sampled, evaluation))
    assert 0 < sampled < (hi - lo) / 2 and 0 < first < m


def test_without_errors_there_are_no_evaluation_intervals() -> None:
    v = CachedUtility(("a", "b"), lambda s: GAME[s].value)
    res = exact_shapley(["a", "b"], v)
    assert res.shapley_ci is None and res.leave_one_out_ci is None
    assert res.grand_coalition_ci is None
    loo = estimate_contributions(["a", "b"], v, method="leave_one_out")
    assert loo.leave_one_out == leave_one_out(["a", "b"], v) and loo.leave_one_out_ci is None


def test_errors_survive_the_resume_file(tmp_path: Path) -> None:
    cache = tmp_path / "utilities.json"
    exact_shapley(["a", "b"], _v(cache))
    reloaded = CachedUtility.load(cache)  # read-only: every value from the file
    assert reloaded.se(frozenset({"a", "b"})) == 0.005
    assert (
        exact_shapley(["a", "b"], reloaded).shapley_ci == exact_shapley(["a", "b"], _v()).shapley_ci
    )


def test_coalition_utility_carries_the_members_errors() -> None:
    reports = {
        frozenset({"p", "q"}): {"p": UtilityEstimate(0.02, 0.01), "q": UtilityEstimate(0.0, 0.02)}
    }
    v = coalition_utility(lambda m: reports[m], {"g": ("p", "q"), "h": ("r", "s", "t")})
    est = v(frozenset({"g"}))
    assert est == UtilityEstimate(pytest.approx(0.004), pytest.approx(math.hypot(0.01, 0.02) / 5))


def test_the_empty_coalition_has_no_error_whatever_the_function_says() -> None:
    v = CachedUtility(
        ("a", "b"), lambda s: UtilityEstimate(GAME[s].value, None) if not s else GAME[s]
    )
    assert v.se(frozenset()) == 0.0
    assert exact_shapley(["a", "b"], v).shapley_ci == exact_shapley(["a", "b"], _v()).shapley_ci
