"""Coalition utilities: the consortium utility, and a cache that evaluates each coalition once.

A *coalition* is a set of partner names; its *utility* v(S) comes from the operator's
contribution study, which trains the coalition federatedly (still securely aggregated) and
asks every partner in it for its gain on its own tasks (and the gain's standard error).
Nothing here ever sees a model update, let alone an individual partner's update in the
clear: only those scalars.

Each v(S) is a full federated training, so :class:`CachedUtility` evaluates every coalition
at most once, reuses it across estimators (leave-one-out, exact and sampled Shapley), and can
persist its values to JSON after each evaluation, so an interrupted study resumes where it
stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pharmafl.common.errors import AccountingError
from pharmafl.common.io import atomic_write_text, read_model

logger = logging.getLogger(__name__)

#: A coalition of partners.
Coalition = frozenset[str]


class UtilityEstimate(NamedTuple):
    """v(S) and its standard error (the members' evaluation error over their tasks; None
    when a member could not give one)."""

    value: float
    se: float | None = None


#: A utility function over coalitions (a plain value, or a value with its standard error).
UtilityFn = Callable[[Coalition], "float | UtilityEstimate"]
#: Description of the default consortium utility.
DEFAULT_UTILITY = "mean over partners of the AUC-PR gain over local-only (test fold)"


class CoalitionValue(BaseModel):
    """The utility of one coalition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coalition: list[str] = Field(description="Partner names, sorted.")
    value: float = Field(allow_inf_nan=False, description="v(coalition).")
    se: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="Standard error of v (the members' errors over their test tasks).",
    )


class UtilityCache(BaseModel):
    """Persisted coalition utilities of one contribution study (resume file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    players: list[str] = Field(min_length=1, description="All partners, sorted.")
    utility: str = Field(DEFAULT_UTILITY, description="What v(S) measures.")
    values: list[CoalitionValue] = Field(default_factory=list, description="Evaluated so far.")

    @field_validator("players")
    @classmethod
    def _sorted_unique(cls, v: list[str]) -> list[str]:
        if v != sorted(set(v)):
            raise ValueError("players must be sorted and unique")
        return v


def _players(players: Iterable[str]) -> tuple[str, ...]:
    out = tuple(sorted(players))
    if not out:
        raise AccountingError("a contribution study needs at least one partner.")
    if len(set(out)) != len(out):
        raise AccountingError(f"partner names must be unique, got {list(out)}.")
    return out


def _read_cache(path: Path) -> UtilityCache:
    return read_model(
        path,
        UtilityCache,
        what="utility cache",
        error=AccountingError,
        fix="delete it to start the contribution study afresh.",
    )


class CachedUtility:
    """Wrap a utility function so each coalition is evaluated at most once.

    Parameters
    ----------
    players
        All partners of the consortium.
    fn
        ``fn(coalition) -> float``; called once per distinct coalition (``frozenset``).
        ``None`` makes a read-only view of a loaded cache (a missing coalition raises).
    cache_path
        Optional JSON file (:class:`UtilityCache`). Values already in it are reused; each new
        value is written to it atomically right away.
    description
        What the utility measures (recorded in the cache and the results).

    Attributes
    ----------
    calls : int
        How many times ``fn`` was called by this object.
    """

    def __init__(
        self,
        players: Iterable[str],
        fn: UtilityFn | None,
        *,
        cache_path: str | Path | None = None,
        description: str = DEFAULT_UTILITY,
    ) -> None:
        self.players = _players(players)
        self.fn = fn
        self.description = description
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.calls = 0
        self._values: dict[Coalition, float] = {}
        self._ses: dict[Coalition, float | None] = {frozenset(): 0.0}
        if self.cache_path is not None and self.cache_path.exists():
            self._load(self.cache_path)

    def __repr__(self) -> str:
        return f"CachedUtility(players={list(self.players)}, evaluated={len(self._values)})"

    def _load(self, path: Path) -> None:
        doc = _read_cache(path)
        if tuple(doc.players) != self.players:
            raise AccountingError(
                f"utility cache is for partners {doc.players}, not {list(self.players)}.",
                file=path,
                fix="use a separate cache file per consortium membership.",
            )
        if doc.utility != self.description:
            raise AccountingError(
                f"utility cache measures {doc.utility!r}, not {self.description!r}.",
                file=path,
                fix="use a separate cache file per utility.",
            )
        for item in doc.values:
            self._values[self._key(item.coalition)] = item.value
            self._ses[self._key(item.coalition)] = item.se
        self._ses[frozenset()] = 0.0  # v(∅) is a definition, not a measurement
        logger.info("reusing %d coalition utilities from %s", len(self._values), path)

    def _key(self, coalition: Iterable[str]) -> Coalition:
        key = frozenset(coalition)
        unknown = key.difference(self.players)
        if unknown:
            raise AccountingError(
                f"coalition names unknown partner(s) {sorted(unknown)}; "
                f"partners are {list(self.players)}."
            )
        return key

    def __call__(self, coalition: Iterable[str]) -> float:
        """v(coalition), evaluated on first use only."""
        key = self._key(coalition)
        if key in self._values:
            return self._values[key]
        if self.fn is None:
            raise AccountingError(
                f"coalition {sorted(key)} has no cached utility and no utility function."
            )
        out = self.fn(key)
        value, se = (out.value, out.se) if isinstance(out, UtilityEstimate) else (out, None)
        value = float(value)
        self.calls += 1
        if not math.isfinite(value):
            raise AccountingError(
                f"utility of coalition {sorted(key)} is {value}; it must be finite.",
                fix="make the utility return a number for every coalition (0 for no gain).",
            )
        self._values[key] = value
        if not key:
            se = 0.0  # v(∅) is a definition, not a measurement
        self._ses[key] = None if se is None or not math.isfinite(se) else float(se)
        if self.cache_path is not None:
            self.save(self.cache_path)
        return value

    def __contains__(self, coalition: Iterable[str]) -> bool:
        return frozenset(coalition) in self._values

    def se(self, coalition: Iterable[str]) -> float | None:
        """The standard error of v(coalition) (evaluating it first if needed); 0 for the
        empty coalition, None when unknown."""
        key = self._key(coalition)
        self(key)
        return self._ses.get(key)

    @property
    def evaluated(self) -> int:
        """Number of distinct coalitions whose utility is known."""
        return len(self._values)

    def values(self) -> dict[Coalition, float]:
        """A copy of every known coalition utility."""
        return dict(self._values)

    def to_cache(self) -> UtilityCache:
        """The known utilities as a :class:`UtilityCache` document (sorted)."""
        items = sorted((len(k), sorted(k), v, self._ses.get(k)) for k, v in self._values.items())
        return UtilityCache(
            players=list(self.players),
            utility=self.description,
            values=[CoalitionValue(coalition=c, value=v, se=e) for _, c, v, e in items],
        )

    def save(self, path: str | Path) -> Path:
        """Write the known utilities atomically as JSON."""
        return atomic_write_text(path, self.to_cache().model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, fn: UtilityFn | None = None) -> CachedUtility:
        """Open a saved cache (its partners come from the file); ``fn`` fills in the rest."""
        p = Path(path)
        doc = _read_cache(p)
        return cls(doc.players, fn, cache_path=p, description=doc.utility)


def as_cached(players: Iterable[str], utility: UtilityFn | CachedUtility) -> CachedUtility:
    """``utility`` itself if it is a :class:`CachedUtility` for ``players``, else wrapped."""
    names = _players(players)
    if isinstance(utility, CachedUtility):
        if utility.players != names:
            raise AccountingError(
                f"the cached utility is for {list(utility.players)}, not {list(names)}."
            )
        return utility
    return CachedUtility(names, utility)


def _value(gain: float | UtilityEstimate) -> float:
    return float(gain.value if isinstance(gain, UtilityEstimate) else gain)


def mean_gain_utility(
    gains: Mapping[str, float | UtilityEstimate], players: Sequence[str]
) -> float:
    """Consortium utility of a coalition: mean over *all* partners of their reported gain.

    Partners outside the coalition keep their local-only model, so their gain is 0; the mean
    is over the whole consortium, so v(S) grows when S helps more partners or helps them more.
    With gains measured as test AUC-PR of the coalition's federated model minus local-only,
    this is the default utility (issue 6).

    Parameters
    ----------
    gains
        Partner → scalar gain it reported for this coalition's model on its own tasks (or
        the gain with its standard error).
    players
        All partners of the consortium.
    """
    names = _players(players)
    unknown = set(gains).difference(names)
    if unknown:
        raise AccountingError(f"gains reported by unknown partner(s) {sorted(unknown)}.")
    return math.fsum(_value(gains.get(p, 0.0)) for p in names) / len(names)


def mean_gain_estimate(
    gains: Mapping[str, float | UtilityEstimate], players: Sequence[str]
) -> UtilityEstimate:
    """:func:`mean_gain_utility` with its standard error √(Σ se_i²) / n (the members'
    evaluations are independent: each scores its own tasks); the error is None when a
    member reported a gain without one (a plain float, or fewer than two tasks)."""
    value = mean_gain_utility(gains, players)
    ses = [g.se if isinstance(g, UtilityEstimate) else None for g in gains.values()]
    if any(e is None for e in ses):
        return UtilityEstimate(value, None)
    n = len(_players(players))
    return UtilityEstimate(value, math.sqrt(math.fsum(e * e for e in ses if e is not None)) / n)


def coalition_utility(
    train_and_report: Callable[[Coalition], Mapping[str, float | UtilityEstimate]],
    groups: Mapping[str, Sequence[str]] | Sequence[str],
) -> UtilityFn:
    """Build v(S) over valuation groups from a function that trains partners together and
    returns the gains they reported.

    Parameters
    ----------
    train_and_report
        ``f(M) -> {partner: gain}``: run a securely aggregated federated training among the
        partners ``M`` (the members of a coalition's groups) and collect each one's scalar
        gain over its local-only model. Never called for the empty coalition.
    groups
        The players: group label → its partners (the consortium's valuation groups,
        :class:`~pharmafl.secure.SecurityPolicy`), or partner names, each its own player
        (games and tests; the study never values single partners). A coalition is a set of
        players.

    Returns
    -------
    callable
        ``v(S) = mean_gain_estimate(f(members of S), all partners)`` (the value and its
        standard error), with v(∅) = 0 ± 0. Every other coalition is trained, a single group
        too (a group is a federation).
    """
    players = groups if isinstance(groups, Mapping) else {p: (p,) for p in groups}
    _players(players)
    partners = _players(p for members in players.values() for p in members)

    def utility(coalition: Coalition) -> UtilityEstimate:
        if not coalition:
            return UtilityEstimate(0.0, 0.0)
        members = frozenset(p for g in coalition for p in players[g])
        gains = train_and_report(members)
        outside = set(gains).difference(members)
        if outside:
            raise AccountingError(
                f"partners {sorted(outside)} reported a gain for coalition {sorted(members)} "
                "they are not part of.",
                fix="collect reports only from the coalition's members.",
            )
        return mean_gain_estimate(gains, partners)

    return utility


__all__ = [
    "CachedUtility",
    "Coalition",
    "CoalitionValue",
    "DEFAULT_UTILITY",
    "UtilityCache",
    "UtilityEstimate",
    "UtilityFn",
    "as_cached",
    "coalition_utility",
    "mean_gain_estimate",
    "mean_gain_utility",
]
