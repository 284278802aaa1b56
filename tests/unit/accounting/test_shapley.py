"""Shapley and leave-one-out: hand values, the Shapley axioms, sampling convergence, caching."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest

from pharmafl.accounting import (
    AccountingError,
    CachedUtility,
    ContributionResult,
    estimate_contributions,
    exact_shapley,
    exact_shapley_fractions,
    leave_one_out,
    permutation_shapley,
)

Game = Callable[[frozenset[str]], float]

# v(∅)=0, A=1, B=2, C=3, AB=4, AC=6, BC=7, ABC=10. By hand (weights 1/3, 1/6, 1/6, 1/3):
# φ_A = 1/3·1 + 1/6·(4−2) + 1/6·(6−3) + 1/3·(10−7) = 13/6
# φ_B = 1/3·2 + 1/6·(4−1) + 1/6·(7−3) + 1/3·(10−6) = 19/6
# φ_C = 1/3·3 + 1/6·(6−1) + 1/6·(7−2) + 1/3·(10−4) = 14/3;   13/6 + 19/6 + 28/6 = 10.
HAND = {"": 0, "A": 1, "B": 2, "C": 3, "AB": 4, "AC": 6, "BC": 7, "ABC": 10}


def hand_game(s: frozenset[str]) -> float:
    return float(HAND["".join(sorted(s))])


def table_game(players: str, values: dict[frozenset[str], float]) -> Game:
    return lambda s: values[s]


def random_game(players: str, seed: int) -> dict[frozenset[str], float]:
    """Random utilities on a 1/1024 grid (so sums of two games are exact in floats)."""
    rng = np.random.default_rng(seed)
    return {
        frozenset(c): round(float(rng.normal()) * 1024) / 1024
        for k in range(len(players) + 1)
        for c in itertools.combinations(players, k)
    }


def seven_player_game(s: frozenset[str]) -> float:
    """A non-additive game: concave in total weight, one complementary pair, one hub."""
    w = {"a": 1.0, "b": 2.0, "c": 0.5, "d": 3.0, "e": 1.5, "f": 0.1, "g": 2.5}
    base = sum(w[p] for p in s) ** 0.7
    pair = 0.8 if {"a", "b"} <= s else 0.0
    hub = 0.2 * len(s) if "g" in s else 0.0
    return base + pair + hub


def test_hand_computed_three_player_example() -> None:
    phi = exact_shapley_fractions("ABC", hand_game)
    assert phi == {"A": Fraction(13, 6), "B": Fraction(19, 6), "C": Fraction(14, 3)}
    result = exact_shapley("ABC", hand_game)
    assert result.shapley == pytest.approx({"A": 13 / 6, "B": 19 / 6, "C": 14 / 3}, abs=1e-15)
    assert result.leave_one_out == {"A": 3.0, "B": 4.0, "C": 6.0}
    assert (result.grand_coalition_utility, result.empty_coalition_utility) == (10.0, 0.0)
    assert result.method == "exact" and result.n_coalitions == 8


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_efficiency_is_exact(n: int) -> None:
    players = "ABCDEF"[:n]
    values = random_game(players, seed=n)
    phi = exact_shapley_fractions(players, table_game(players, values))
    grand, empty = values[frozenset(players)], values[frozenset()]
    assert sum(phi.values()) == Fraction(grand) - Fraction(empty)  # exactly, in rationals
    result = exact_shapley(players, table_game(players, values))
    assert math.fsum(result.shapley.values()) == pytest.approx(grand - empty, abs=1e-12)


def test_symmetry() -> None:
    # B and C are interchangeable: v(S ∪ {B}) = v(S ∪ {C}) for every S without both.
    base = {"": 0.0, "A": 1.0, "B": 2.0, "C": 2.0, "AB": 5.0, "AC": 5.0, "BC": 3.0, "ABC": 9.0}
    phi = exact_shapley_fractions("ABC", lambda s: base["".join(sorted(s))])
    assert phi["B"] == phi["C"]


def test_null_player_and_dummy() -> None:
    players = "ABCD"
    values = random_game("ABC", seed=11)
    null = {**values, **{s | {"D"}: v for s, v in values.items()}}  # D adds nothing
    phi = exact_shapley_fractions(players, table_game(players, null))
    assert phi["D"] == 0
    assert exact_shapley(players, table_game(players, null)).leave_one_out["D"] == 0.0
    dummy = {**values, **{s | {"D"}: v + 0.75 for s, v in values.items()}}  # D adds v({D})
    phi = exact_shapley_fractions(players, table_game(players, dummy))
    assert phi["D"] == Fraction(0.75)
    # The others are unaffected by a dummy.
    assert {p: phi[p] for p in "ABC"} == exact_shapley_fractions("ABC", table_game("ABC", values))


def test_additivity() -> None:
    players = "ABCD"
    v, w = random_game(players, 1), random_game(players, 2)
    both = {s: v[s] + w[s] for s in v}
    phi_v = exact_shapley_fractions(players, table_game(players, v))
    phi_w = exact_shapley_fractions(players, table_game(players, w))
    phi_sum = exact_shapley_fractions(players, table_game(players, both))
    assert phi_sum == {p: phi_v[p] + phi_w[p] for p in players}
    floats = exact_shapley(players, table_game(players, both)).shapley
    assert floats == pytest.approx({p: float(phi_v[p] + phi_w[p]) for p in players}, abs=1e-12)


def test_each_coalition_is_evaluated_exactly_once() -> None:
    calls: Counter[frozenset[str]] = Counter()

    def counted(s: frozenset[str]) -> float:
        calls[s] += 1
        return seven_player_game(frozenset(p.lower() for p in s))

    players = "ABCDE"
    result = estimate_contributions(players, counted)  # exact + leave-one-out
    assert result.method == "exact"
    assert len(calls) == 2**5 and max(calls.values()) == 1
    assert result.n_coalitions == 32

    calls.clear()
    cached = CachedUtility("ABCDEFG", counted)
    sampled = permutation_shapley("ABCDEFG", cached, rng=3, n_permutations=60)
    assert max(calls.values()) == 1 and cached.calls == len(calls) == sampled.n_coalitions
    # A second estimator on the same cache trains nothing new.
    before = cached.calls
    leave_one_out("ABCDEFG", cached)
    permutation_shapley("ABCDEFG", cached, rng=3, n_permutations=60)
    assert cached.calls == before


def test_leave_one_out_uses_n_plus_one_coalitions() -> None:
    cached = CachedUtility("ABC", hand_game)
    assert leave_one_out("ABC", cached) == {"A": 3.0, "B": 4.0, "C": 6.0}
    assert cached.calls == 4
    loo_only = estimate_contributions("ABC", hand_game, method="leave_one_out")
    assert loo_only.shapley is None and loo_only.n_coalitions == 5  # and v(∅), free


def test_sampling_converges_to_exact_within_its_interval() -> None:
    players = "abcdefg"
    exact = exact_shapley(players, seven_player_game, max_players=7).shapley
    assert exact is not None
    est = permutation_shapley(players, seven_player_game, rng=2024, n_permutations=400)
    assert est.shapley is not None and est.shapley_ci is not None
    for p in players:
        lo, hi = est.shapley_ci[p]
        assert lo <= exact[p] <= hi, (p, exact[p], (lo, hi))
    total = math.fsum(est.shapley.values())
    assert total == pytest.approx(seven_player_game(frozenset(players)), abs=1e-12)
    # More permutations, smaller error and narrower intervals.
    small = permutation_shapley(players, seven_player_game, rng=2024, n_permutations=20)
    err = lambda r: max(abs(r.shapley[p] - exact[p]) for p in players)  # noqa: E731
    width = lambda r: max(hi - lo for lo, hi in r.shapley_ci.values())  # noqa: E731
    assert err(est) < err(small) and width(est) < width(small) / 3


def test_interval_coverage_over_seeds() -> None:
    players = "abcdefg"
    exact = exact_shapley(players, seven_player_game, max_players=7).shapley
    assert exact is not None
    cache = CachedUtility(players, seven_player_game)
    hits = total = 0
    for seed in range(60):
        est = permutation_shapley(players, cache, rng=seed, n_permutations=60, confidence=0.9)
        assert est.shapley_ci is not None
        for p in players:
            lo, hi = est.shapley_ci[p]
            hits += lo <= exact[p] <= hi
            total += 1
    # Nominal 90 % (the normal approximation over 30 antithetic pairs is close to it).
    assert 0.84 <= hits / total <= 0.96


def test_antithetic_sampling_reduces_variance() -> None:
    players = "abcdefg"
    cache = CachedUtility(players, seven_player_game)
    widths = {}
    for anti in (True, False):
        est = permutation_shapley(players, cache, rng=5, n_permutations=200, antithetic=anti)
        assert est.shapley_ci is not None
        widths[anti] = np.mean([hi - lo for lo, hi in est.shapley_ci.values()])
    assert widths[True] < widths[False]


def test_sampling_is_reproducible_and_stops_early() -> None:
    players = "abcdefg"
    a = permutation_shapley(players, seven_player_game, rng=7, n_permutations=40)
    b = permutation_shapley(
        players, seven_player_game, rng=np.random.default_rng(7), n_permutations=40
    )
    assert a == b and a.n_permutations == 40
    loose = permutation_shapley(
        players, seven_player_game, rng=7, n_permutations=1000, tolerance=0.5
    )
    assert loose.n_permutations is not None and loose.n_permutations < 1000
    assert loose.shapley_ci is not None
    assert all(hi - lo < 1.0 for lo, hi in loose.shapley_ci.values())
    budget = permutation_shapley(
        players, seven_player_game, rng=7, n_permutations=1000, max_coalitions=40
    )
    assert budget.n_permutations is not None and budget.n_permutations < 1000
    assert budget.n_coalitions < 60


def test_auto_method_and_errors() -> None:
    assert estimate_contributions("abcdefg", seven_player_game, rng=1).method == "permutation"
    with pytest.raises(AccountingError, match="needs a seed"):
        estimate_contributions("abcdefg", seven_player_game)
    with pytest.raises(AccountingError, match="exact, leave_one_out, permutation"):
        estimate_contributions("abc", hand_game, method="banzhaf")
    with pytest.raises(AccountingError, match="2\\^7 = 128 coalition trainings"):
        exact_shapley("abcdefg", seven_player_game)
    with pytest.raises(AccountingError, match="unique"):
        exact_shapley(["a", "a"], hand_game)
    with pytest.raises(AccountingError, match="at least 2"):
        permutation_shapley("abc", hand_game, rng=0, n_permutations=1)


def test_result_model_enforces_efficiency() -> None:
    with pytest.raises(ValueError, match="efficiency"):
        ContributionResult(
            method="exact",
            players=["a", "b"],
            grand_coalition_utility=1.0,
            empty_coalition_utility=0.0,
            shapley={"a": 0.5, "b": 0.4},
            leave_one_out={"a": 0.5, "b": 0.5},
            n_coalitions=4,
        )
    with pytest.raises(ValueError, match="exactly the players"):
        ContributionResult(
            method="leave_one_out",
            players=["a", "b"],
            grand_coalition_utility=1.0,
            empty_coalition_utility=0.0,
            leave_one_out={"a": 0.5},
            n_coalitions=3,
        )
