"""Coalition utilities: the default consortium utility, caching, persistence and resuming."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pharmafl.accounting import (
    AccountingError,
    CachedUtility,
    UtilityCache,
    coalition_utility,
    exact_shapley,
    mean_gain_utility,
)

PARTNERS = ("alpha", "beta", "gamma", "delta")
# AUC-PR gain each member reports for the federated model of a coalition (made-up numbers
# with diminishing returns; delta's data help the others most).
HELP = {"alpha": 0.01, "beta": 0.02, "gamma": 0.015, "delta": 0.04}


def fake_study(calls: Counter[frozenset[str]]):
    def train_and_report(coalition: frozenset[str]) -> dict[str, float]:
        calls[coalition] += 1
        others = lambda p: sum(HELP[q] for q in coalition if q != p)  # noqa: E731
        return {p: round(others(p) ** 0.8, 6) for p in coalition}

    return train_and_report


def test_mean_gain_utility_is_over_all_partners() -> None:
    assert mean_gain_utility({"alpha": 0.04, "beta": 0.02}, PARTNERS) == pytest.approx(0.015)
    assert mean_gain_utility({}, PARTNERS) == 0.0
    with pytest.raises(AccountingError, match="unknown partner"):
        mean_gain_utility({"omega": 0.1}, PARTNERS)


def test_coalition_utility_trains_every_non_empty_coalition() -> None:
    calls: Counter[frozenset[str]] = Counter()
    v = coalition_utility(fake_study(calls), PARTNERS)
    assert v(frozenset()) == (0.0, 0.0) and not calls
    pair = frozenset({"alpha", "delta"})
    gains = fake_study(Counter())(pair)
    assert v(pair).value == pytest.approx(sum(gains.values()) / 4)
    calls.clear()
    result = exact_shapley(PARTNERS, v)
    assert len(calls) == 16 - 1  # every coalition but ∅, once
    assert max(calls.values()) == 1
    assert max(result.shapley, key=result.shapley.__getitem__) == "delta"


def test_players_can_be_valuation_groups() -> None:
    groups = {"g1": ("alpha", "beta"), "g2": ("delta", "gamma")}
    calls: Counter[frozenset[str]] = Counter()
    v = coalition_utility(fake_study(calls), groups)
    gains = fake_study(Counter())(frozenset({"alpha", "beta"}))
    assert v(frozenset({"g1"})).value == pytest.approx(sum(gains.values()) / 4)  # over all partners
    assert list(calls) == [frozenset({"alpha", "beta"})]  # the group's partners trained
    v(frozenset({"g1", "g2"}))
    assert frozenset(PARTNERS) in calls


def test_gains_from_outside_the_coalition_are_refused() -> None:
    v = coalition_utility(lambda s: {"alpha": 0.1, "beta": 0.2}, PARTNERS)
    with pytest.raises(AccountingError, match="not part of"):
        v(frozenset({"alpha", "gamma"}))


def test_study_resumes_from_its_cache(tmp_path: Path) -> None:
    cache_file = tmp_path / "contribution" / "utilities.json"
    calls: Counter[frozenset[str]] = Counter()
    study = fake_study(calls)
    budget = {"left": 5}

    def crashing(coalition: frozenset[str]) -> dict[str, float]:
        if budget["left"] == 0:
            raise RuntimeError("operator crashed")
        budget["left"] -= 1
        return study(coalition)

    first = CachedUtility(PARTNERS, coalition_utility(crashing, PARTNERS), cache_path=cache_file)
    with pytest.raises(RuntimeError, match="operator crashed"):
        exact_shapley(PARTNERS, first)
    saved = UtilityCache.model_validate_json(cache_file.read_bytes())
    assert saved.players == sorted(PARTNERS)
    assert len(saved.values) == first.evaluated == 1 + 5  # ∅ and the 5 trained
    assert [len(v.coalition) for v in saved.values] == sorted(
        len(v.coalition) for v in saved.values
    )

    resumed = CachedUtility.load(cache_file, coalition_utility(study, PARTNERS))
    result = exact_shapley(PARTNERS, resumed)
    assert max(calls.values()) == 1 and len(calls) == 15  # nothing trained twice
    fresh = exact_shapley(PARTNERS, coalition_utility(fake_study(Counter()), PARTNERS))
    assert result == fresh
    # A finished cache answers everything without a utility function.
    assert exact_shapley(PARTNERS, CachedUtility.load(cache_file)) == fresh


def test_cache_checks(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    CachedUtility(PARTNERS, lambda s: 0.5, cache_path=path)(frozenset({"alpha"}))
    with pytest.raises(AccountingError, match="is for partners"):
        CachedUtility(["alpha", "beta"], lambda s: 0.0, cache_path=path)
    with pytest.raises(AccountingError, match="measures"):
        CachedUtility(PARTNERS, lambda s: 0.0, cache_path=path, description="ROC-AUC gain")
    doc = json.loads(path.read_text())
    doc["values"][0]["value"] = "NaN"
    path.write_text(json.dumps(doc))
    with pytest.raises(AccountingError, match=r"invalid at values\.0\.value"):
        CachedUtility.load(path)
    with pytest.raises(AccountingError, match="not found"):
        CachedUtility.load(tmp_path / "missing.json")
    v = CachedUtility(PARTNERS, lambda s: float("nan"))
    with pytest.raises(AccountingError, match="must be finite"):
        v(frozenset({"alpha"}))
    with pytest.raises(AccountingError, match="unknown partner"):
        v(frozenset({"omega"}))
    with pytest.raises(AccountingError, match="no utility function"):
        CachedUtility(PARTNERS, None)(frozenset())
    assert "evaluated=0" in repr(CachedUtility(PARTNERS, None))


def test_inconsistent_players_or_settings_are_refused_before_any_coalition_trains() -> None:
    """An empty or repeated partner list, a cache of another consortium's players, a cache
    file whose players are not sorted and unique, or a confidence outside (0, 1): each is
    refused with what is wrong, and no coalition is evaluated."""
    from pydantic import ValidationError

    from pharmafl.accounting.utility import as_cached

    calls: list[frozenset[str]] = []

    def fn(c: frozenset[str]) -> float:
        calls.append(c)
        return 0.0

    with pytest.raises(AccountingError, match="needs at least one partner"):
        exact_shapley([], fn)
    with pytest.raises(AccountingError, match="partner names must be unique"):
        exact_shapley(["alpha", "alpha", "beta"], fn)
    with pytest.raises(AccountingError, match="the cached utility is for"):
        as_cached(PARTNERS, CachedUtility(("alpha", "beta"), fn))
    with pytest.raises(ValidationError, match="players must be sorted and unique"):
        UtilityCache.model_validate({"players": ["beta", "alpha"], "values": []})
    with pytest.raises(AccountingError, match=r"confidence must be in \(0, 1\)"):
        exact_shapley(PARTNERS, fn, confidence=1.5)
    assert calls == []


def test_a_result_whose_groups_are_not_its_players_does_not_load() -> None:
    """contribution.json names each valuation group once, as its players; one edited to name
    other groups (e.g. to split a group into its members) is refused when read."""
    from pydantic import ValidationError

    from pharmafl.accounting import ContributionResult

    res = exact_shapley(PARTNERS, lambda c: 0.01 * len(c))
    doc = res.model_dump(mode="json") | {"groups": {p: [p] for p in PARTNERS}}
    ContributionResult.model_validate(doc)  # groups naming exactly the players load
    doc["groups"] = {"alpha+beta": ["alpha", "beta"], "gamma": ["gamma"], "delta": ["delta"]}
    with pytest.raises(ValidationError, match="groups must name exactly the players"):
        ContributionResult.model_validate(doc)
