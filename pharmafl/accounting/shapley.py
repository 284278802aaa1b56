"""What each partner gave: leave-one-out and Shapley values of the consortium utility.

Compatible with secure aggregation by construction: every estimator sees only coalition
utilities v(S) (a value and its standard error per coalition, from partners' own evaluations
of the coalition's securely aggregated model), never a model update, so no partner's update
is ever needed in the clear. This differs from reconstruction-based methods (per-round
Shapley, GTG-Shapley, FedCE) that rebuild coalition models from individual plaintext
updates.

- Shapley value (Shapley, "A value for n-person games", 1953):
  φ_i = Σ_{S ⊆ N∖{i}} |S|! (n − |S| − 1)! / n! · (v(S ∪ {i}) − v(S)).
  :func:`exact_shapley` evaluates all 2^n coalitions (default limit n ≤ 6, i.e. 64 coalition
  trainings) and sums in exact rational arithmetic, so Σ_i φ_i = v(N) − v(∅) holds exactly
  before the final rounding to floats.
- :func:`permutation_shapley`: the Monte-Carlo estimate of Castro, Gómez & Tejada
  ("Polynomial calculation of the Shapley value based on sampling", Computers & Operations
  Research 36(5), 2009), averaging marginal contributions along random orderings, with
  antithetic (reversed) orderings (Mitchell et al., "Sampling permutations for Shapley value
  estimation", JMLR 23, 2022) and a normal-approximation confidence interval
  φ̂_i ± z·s_i/√m. Every ordering telescopes to v(N) − v(∅), so the estimates keep the
  efficiency property too.
- :func:`leave_one_out`: v(N) − v(N ∖ {i}) (n + 1 coalitions).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable
from fractions import Fraction
from statistics import NormalDist
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pharmafl.accounting.utility import (
    DEFAULT_UTILITY,
    CachedUtility,
    UtilityFn,
    _players,
    as_cached,
)
from pharmafl.common.errors import AccountingError

logger = logging.getLogger(__name__)

#: Largest consortium for which exact Shapley is the default (2^6 = 64 coalitions).
EXACT_MAX_PLAYERS = 6
Method = Literal["exact", "permutation", "leave_one_out"]


class ContributionResult(BaseModel):
    """Contributions of every partner to the consortium utility (utilities only, no updates)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(description="How Shapley values were obtained (or LOO only).")
    utility: str = Field(DEFAULT_UTILITY, description="What v(S) measures.")
    players: list[str] = Field(min_length=1, description="Partners, sorted.")
    grand_coalition_utility: float = Field(allow_inf_nan=False, description="v(N).")
    empty_coalition_utility: float = Field(allow_inf_nan=False, description="v(∅).")
    shapley: dict[str, float] | None = Field(None, description="Shapley value per partner.")
    shapley_ci: dict[str, tuple[float, float]] | None = Field(
        None,
        description="Confidence interval per partner: the members' evaluation error over "
        "their test tasks carried through the (linear) estimator, coalitions treated as "
        "independent (they share the members' test tasks, so this is conservative for "
        "differences such as leave-one-out), plus the sampling error of a permutation "
        "estimate — its sampling error alone when a member gave no standard error. None "
        "when neither is known.",
    )
    confidence: float | None = Field(None, gt=0, lt=1, description="Level of the intervals.")
    leave_one_out: dict[str, float] = Field(description="v(N) − v(N ∖ {i}) per partner.")
    leave_one_out_ci: dict[str, tuple[float, float]] | None = Field(
        None, description="Interval of each leave-one-out value (evaluation error)."
    )
    grand_coalition_ci: tuple[float, float] | None = Field(
        None, description="Interval of v(N) (evaluation error)."
    )
    n_coalitions: int = Field(ge=0, description="Distinct coalitions evaluated.")
    n_permutations: int | None = Field(None, ge=1, description="Orderings sampled.")
    groups: dict[str, list[str]] | None = Field(
        None,
        description="When the players are valuation groups: group → its partners (every "
        "partner of a group shares the group's values).",
    )

    def player_of(self, partner: str) -> str:
        """The player whose values ``partner`` has: its group, or itself."""
        for label, members in (self.groups or {}).items():
            if partner in members:
                return label
        return partner

    @model_validator(mode="after")
    def _consistent(self) -> ContributionResult:
        names = set(self.players)
        if self.groups is not None and set(self.groups) != names:
            raise ValueError(f"groups must name exactly the players {sorted(names)}")
        for label, d in (("shapley", self.shapley), ("leave_one_out", self.leave_one_out)):
            if d is not None and set(d) != names:
                raise ValueError(f"{label} must hold exactly the players {sorted(names)}")
        if self.shapley is not None:
            total = math.fsum(self.shapley.values())
            target = self.grand_coalition_utility - self.empty_coalition_utility
            scale = max(1.0, abs(self.grand_coalition_utility), abs(self.empty_coalition_utility))
            if abs(total - target) > 1e-9 * scale * len(names):
                raise ValueError(
                    f"Shapley values sum to {total!r}, not v(N) − v(∅) = {target!r} (efficiency)"
                )
        return self


def _coalition(names: tuple[str, ...], members: Iterable[int]) -> frozenset[str]:
    return frozenset(names[i] for i in members)


def _eval_sd(coefs: dict[frozenset[str], float], v: CachedUtility) -> float | None:
    """Standard deviation of Σ_S c_S · v(S) from the coalitions' standard errors, treated as
    independent (each coalition is trained on its own, but scored on the same members' test
    tasks: their errors correlate positively, so for a difference of coalitions this is
    conservative); None when one of them has no standard error."""
    total = 0.0
    for coalition, c in coefs.items():
        if c == 0.0:
            continue
        se = v.se(coalition)
        if se is None:
            return None
        total += (c * se) ** 2
    return math.sqrt(total)


def _interval(
    value: float, sd: float | None, z: float, extra: float = 0.0
) -> tuple[float, float] | None:
    if sd is None:
        return None
    half = math.hypot(z * sd, extra)
    return (value - half, value + half)


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise AccountingError(f"confidence must be in (0, 1), got {confidence}.")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _intervals(
    values: dict[str, float],
    coefs: dict[str, dict[frozenset[str], float]],
    v: CachedUtility,
    z: float,
    extra: dict[str, float] | None = None,
) -> dict[str, tuple[float, float]] | None:
    """value ± z·sd per player (combined with an ``extra`` half-width in quadrature); None
    unless every player has one."""
    out = {}
    for p, value in values.items():
        ci = _interval(value, _eval_sd(coefs[p], v), z, (extra or {}).get(p, 0.0))
        if ci is None:
            return None
        out[p] = ci
    return out


def _loo_fields(names: tuple[str, ...], v: CachedUtility, z: float) -> dict[str, object]:
    """leave_one_out, its intervals and v(N)'s interval (ContributionResult fields)."""
    grand = frozenset(names)
    loo = leave_one_out(names, v)
    coefs = {p: {grand: 1.0, grand - {p}: -1.0} for p in names}
    return {
        "grand_coalition_utility": v(grand),
        "empty_coalition_utility": v(frozenset()),
        "grand_coalition_ci": _interval(v(grand), v.se(grand), z),
        "leave_one_out": loo,
        "leave_one_out_ci": _intervals(loo, coefs, v, z),
    }


def _shapley_coefficients(names: tuple[str, ...]) -> dict[str, dict[frozenset[str], float]]:
    """φ_i = Σ_S c_{i,S} v(S): each coalition's weight in each exact Shapley value."""
    n = len(names)
    fact = [math.factorial(k) for k in range(n + 1)]
    out: dict[str, dict[frozenset[str], float]] = {}
    for i, name in enumerate(names):
        coefs: dict[frozenset[str], float] = {}
        for m in range(1 << n):
            if m & (1 << i):
                continue
            w = fact[m.bit_count()] * fact[n - m.bit_count() - 1] / fact[n]
            without = _coalition(names, (j for j in range(n) if m >> j & 1))
            coefs[without | {name}] = coefs.get(without | {name}, 0.0) + w
            coefs[without] = coefs.get(without, 0.0) - w
        out[name] = coefs
    return out


def exact_shapley_fractions(
    players: Iterable[str],
    utility: UtilityFn | CachedUtility,
    *,
    max_players: int = EXACT_MAX_PLAYERS,
) -> dict[str, Fraction]:
    """Exact Shapley values as fractions (each float utility is an exact rational).

    Coalitions are evaluated once each, smallest first. Σ φ_i = v(N) − v(∅) exactly.

    Raises
    ------
    AccountingError
        With more than ``max_players`` partners (use :func:`permutation_shapley`).
    """
    names = _players(players)
    n = len(names)
    if n > max_players:
        raise AccountingError(
            f"exact Shapley needs 2^{n} = {2**n} coalition trainings for {n} partners "
            f"(limit {max_players}).",
            fix="use method='permutation' (sampled estimate with a confidence interval), or "
            "raise max_players if the coalition utilities are cheap.",
        )
    v = as_cached(names, utility)
    values: list[Fraction] = [Fraction(0)] * (1 << n)
    for size in range(n + 1):
        for members in itertools.combinations(range(n), size):
            mask = sum(1 << i for i in members)
            values[mask] = Fraction(v(_coalition(names, members)))
    fact = [math.factorial(k) for k in range(n + 1)]
    weight = [Fraction(fact[s] * fact[n - s - 1], fact[n]) for s in range(n)]
    out: dict[str, Fraction] = {}
    for i, name in enumerate(names):
        bit = 1 << i
        out[name] = sum(
            (
                weight[m.bit_count()] * (values[m | bit] - values[m])
                for m in range(1 << n)
                if not m & bit
            ),
            Fraction(0),
        )
    return out


def leave_one_out(players: Iterable[str], utility: UtilityFn | CachedUtility) -> dict[str, float]:
    """Leave-one-out values v(N) − v(N ∖ {i}) (n + 1 coalitions; utilities only)."""
    names = _players(players)
    v = as_cached(names, utility)
    grand = v(frozenset(names))
    return {p: grand - v(frozenset(names).difference([p])) for p in names}


def exact_shapley(
    players: Iterable[str],
    utility: UtilityFn | CachedUtility,
    *,
    max_players: int = EXACT_MAX_PLAYERS,
    confidence: float = 0.95,
) -> ContributionResult:
    """Exact Shapley values (2^n coalitions, each evaluated once) plus leave-one-out, with
    intervals when the utilities carry standard errors.

    Parameters
    ----------
    players
        Partner names.
    utility
        v(S) for a coalition ``frozenset``; wrap it in a
        :class:`~pharmafl.accounting.CachedUtility` with a ``cache_path`` to persist and
        resume a study. Only scalar utilities are used, never model updates.
    max_players
        Refuse larger consortia (2^n trainings).
    confidence
        Level of the intervals: each value is linear in the utilities, so its variance is
        Σ_S c_S² se(S)² (coalitions evaluated independently).
    """
    names = _players(players)
    v = as_cached(names, utility)
    z = _z(confidence)
    phi = exact_shapley_fractions(names, v, max_players=max_players)
    shapley = {p: float(x) for p, x in phi.items()}
    ci = _intervals(shapley, _shapley_coefficients(names), v, z)
    loo = _loo_fields(names, v, z)
    return ContributionResult(
        method="exact",
        utility=v.description,
        players=list(names),
        shapley=shapley,
        shapley_ci=ci,
        confidence=confidence,
        n_coalitions=v.evaluated,
        **loo,  # type: ignore[arg-type]
    )


def _marginals(
    order: np.ndarray,
    names: tuple[str, ...],
    v: CachedUtility,
    coefs: dict[str, dict[frozenset[str], float]],
    weight: float,
) -> np.ndarray:
    """Each player's marginal contribution along ``order``; adds ``weight`` × (+1 on the
    coalition with it, −1 on the one without) to ``coefs`` (the estimate's weights)."""
    out = np.empty(len(names))
    members: list[int] = []
    prev_set: frozenset[str] = frozenset()
    prev = v(prev_set)
    for idx in order:
        members.append(int(idx))
        cur_set = _coalition(names, members)
        cur = v(cur_set)
        out[idx] = cur - prev
        mine = coefs[names[idx]]
        mine[cur_set] = mine.get(cur_set, 0.0) + weight
        mine[prev_set] = mine.get(prev_set, 0.0) - weight
        prev, prev_set = cur, cur_set
    return out


def permutation_shapley(
    players: Iterable[str],
    utility: UtilityFn | CachedUtility,
    *,
    rng: np.random.Generator | int,
    n_permutations: int = 200,
    antithetic: bool = True,
    confidence: float = 0.95,
    tolerance: float | None = None,
    max_coalitions: int | None = None,
) -> ContributionResult:
    """Permutation-sampling Shapley estimate with a confidence interval (plus leave-one-out).

    Parameters
    ----------
    players, utility
        As in :func:`exact_shapley`; only scalar coalition utilities are used.
    rng
        A numpy Generator or a seed.
    n_permutations
        Orderings to walk at most (each costs up to n new coalitions; the cache reuses
        the rest). With ``antithetic`` they are taken in (ordering, reversed ordering) pairs,
        and a pair's mean is one sample.
    antithetic
        Pair each ordering with its reverse (variance reduction, Mitchell et al. 2022).
    confidence
        Level of the normal-approximation interval φ̂_i ± z·s_i/√m over the m samples.
    tolerance
        Stop early once every interval's half-width is below this (after ≥ 2 samples).
    max_coalitions
        Stop early once this many distinct coalitions have been evaluated (a training budget).
    """
    names = _players(players)
    if n_permutations < 2:
        raise AccountingError("n_permutations must be at least 2 (an interval needs 2 samples).")
    z = _z(confidence)
    v = as_cached(names, utility)
    gen = np.random.default_rng(rng)
    per_sample = 2 if antithetic else 1
    max_samples = max(2, n_permutations // per_sample)
    samples: list[np.ndarray] = []
    coefs: dict[str, dict[frozenset[str], float]] = {p: {} for p in names}
    for _ in range(max_samples):
        order = gen.permutation(len(names))
        marginal = _marginals(order, names, v, coefs, 1.0 / per_sample)
        if antithetic:
            marginal = (marginal + _marginals(order[::-1], names, v, coefs, 0.5)) / 2.0
        samples.append(marginal)
        if len(samples) < 2:
            continue
        if tolerance is not None:
            half = z * np.std(samples, axis=0, ddof=1) / math.sqrt(len(samples))
            if float(np.max(half)) < tolerance:
                break
        if max_coalitions is not None and v.evaluated >= max_coalitions:
            break
    arr = np.asarray(samples)
    mean = arr.mean(axis=0)
    half = z * arr.std(axis=0, ddof=1) / math.sqrt(len(arr))
    logger.info(
        "permutation Shapley: %d samples, %d coalitions, max half-width %.3g",
        len(arr),
        v.evaluated,
        float(half.max()),
    )
    shapley = {p: float(mean[i]) for i, p in enumerate(names)}
    sampled = {p: float(half[i]) for i, p in enumerate(names)}
    m = len(arr)
    weights = {p: {c: w / m for c, w in coefs[p].items()} for p in names}
    ci = _intervals(shapley, weights, v, z, extra=sampled) or {
        p: (x - sampled[p], x + sampled[p]) for p, x in shapley.items()
    }
    loo = _loo_fields(names, v, z)
    return ContributionResult(
        method="permutation",
        utility=v.description,
        players=list(names),
        shapley=shapley,
        shapley_ci=ci,
        confidence=confidence,
        n_coalitions=v.evaluated,
        n_permutations=len(arr) * per_sample,
        **loo,  # type: ignore[arg-type]
    )


def _loo_only(
    players: Iterable[str], utility: UtilityFn | CachedUtility, *, confidence: float = 0.95
) -> ContributionResult:
    names = _players(players)
    v = as_cached(names, utility)
    loo = _loo_fields(names, v, _z(confidence))
    return ContributionResult(
        method="leave_one_out",
        utility=v.description,
        players=list(names),
        confidence=confidence,
        n_coalitions=v.evaluated,
        **loo,  # type: ignore[arg-type]
    )


#: Contribution estimators (a registry; "auto" picks exact for ≤ 6 partners, else permutation).
CONTRIBUTION_METHODS: dict[str, Callable[..., ContributionResult]] = {
    "exact": exact_shapley,
    "leave_one_out": _loo_only,
    "permutation": permutation_shapley,
}


def estimate_contributions(
    players: Iterable[str],
    utility: UtilityFn | CachedUtility,
    *,
    method: str = "auto",
    rng: np.random.Generator | int | None = None,
    exact_max_players: int = EXACT_MAX_PLAYERS,
    **options: object,
) -> ContributionResult:
    """Leave-one-out and Shapley values with the chosen (or automatic) estimator.

    Parameters
    ----------
    players, utility
        Partners and v(S) (see :class:`~pharmafl.accounting.CachedUtility`).
    method
        ``"auto"`` (exact for ≤ ``exact_max_players`` partners, else permutation sampling),
        or a key of :data:`CONTRIBUTION_METHODS`.
    rng
        Generator or seed; required for permutation sampling.
    options
        Passed to the estimator (e.g. ``n_permutations``, ``confidence``).

    Raises
    ------
    AccountingError
        Unknown method (the message lists the valid ones) or no ``rng`` for sampling.
    """
    names = _players(players)
    if method == "auto":
        method = "exact" if len(names) <= exact_max_players else "permutation"
    if method not in CONTRIBUTION_METHODS:
        raise AccountingError(
            f"unknown contribution method {method!r}.",
            fix=f"use 'auto' or one of: {', '.join(sorted(CONTRIBUTION_METHODS))}.",
        )
    if method == "permutation":
        if rng is None:
            raise AccountingError(
                "permutation sampling needs a seed or numpy Generator (rng=...).",
                fix="pass rng=<int seed> so the estimate is reproducible.",
            )
        options["rng"] = rng
    if method == "exact":
        options.setdefault("max_players", exact_max_players)
    return CONTRIBUTION_METHODS[method](names, utility, **options)


__all__ = [
    "CONTRIBUTION_METHODS",
    "ContributionResult",
    "EXACT_MAX_PLAYERS",
    "estimate_contributions",
    "exact_shapley",
    "exact_shapley_fractions",
    "leave_one_out",
    "permutation_shapley",
]
