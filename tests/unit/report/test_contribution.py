"""The contribution result's two renderers: table rows and the Markdown summary."""

from __future__ import annotations

import pytest

from pharmafl.accounting import (
    ContributionResult,
    StudyConfig,
    coalition_utility,
    exact_shapley,
    permutation_shapley,
)
from pharmafl.report import contribution_rows, contribution_study_markdown

PLAYERS = ("alpha", "bravo", "charlie")
HELP = {"alpha": 0.02, "bravo": 0.01, "charlie": 0.004}


def _game(coalition: frozenset[str]) -> dict[str, float]:
    return {p: sum(HELP[q] for q in coalition if q != p) ** 0.8 for p in coalition}


def _exact() -> ContributionResult:
    return exact_shapley(PLAYERS, coalition_utility(_game, PLAYERS))


def test_rows_hold_each_partners_values() -> None:
    result = _exact()
    rows = contribution_rows(result)
    assert [r["partner"] for r in rows] == list(PLAYERS)
    assert result.shapley is not None
    for r in rows:
        name = str(r["partner"])
        assert list(r) == ["partner", "shapley", "leave-one-out"]  # no interval: exact values
        assert r["shapley"] == pytest.approx(result.shapley[name], abs=1e-6)
        assert r["leave-one-out"] == pytest.approx(result.leave_one_out[name], abs=1e-6)


def test_sampled_values_carry_their_interval() -> None:
    result = permutation_shapley(
        PLAYERS, coalition_utility(_game, PLAYERS), rng=1, n_permutations=8
    )
    assert result.shapley_ci is not None
    rows = contribution_rows(result)
    for r in rows:
        lo, hi = result.shapley_ci[str(r["partner"])]
        assert r["shapley interval"] == f"[{lo:.4f}, {hi:.4f}]"


def test_markdown_summary_states_method_utilities_and_efficiency() -> None:
    result = _exact()
    text = contribution_study_markdown(result, StudyConfig(rounds=3))
    assert "| method | exact |" in text
    assert f"| v(N) (grand coalition) | {result.grand_coalition_utility:.6f} |" in text
    assert f"| coalitions evaluated | {result.n_coalitions} |" in text
    assert "| rounds per coalition | 3 |" in text
    total = result.grand_coalition_utility - result.empty_coalition_utility
    assert f"| Σ Shapley (= v(N) − v(∅)) | {total:.6f} |" in text
    assert "rounds per coalition" not in contribution_study_markdown(result)
