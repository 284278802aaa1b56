"""Attack: differencing two runs whose starting trunks only look different (adversarial review
of issue 12, finding A).

The record of aggregated starting trunks (pharmafl.partner.reveals.StartRecord) was keyed on
the SHA-256 of the trunk *file*: an operator that re-encoded the same trunk (float64, a
compressed npz) or moved one weight by one float32 step made partners see a "new" trunk,
train bit-identical (or nearly) updates, and the two runs' sums differenced into the left-out
partner's update (cosine 0.99998). A run that repeated another's round 0 with the same
contributors was "no news", but it synchronised every private head, so a nudged round 1
differenced too (cosine 0.99987).

Now: a trunk has one canonical encoding (float32, np.savez, sorted names; anything else is
refused); a round 0 must start from the initial trunk of the run's own trunk config and seed,
which every partner rebuilds; and a partner reveals from a trunk in one run only (a resumed run
excepted), unless both contributor sets are whole valuation groups.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pharmafl.common.errors import FederationError
from pharmafl.contract import FederationPlan, trunk_to_bytes
from pharmafl.server import run_training, write_run_plan

from .conftest import PARTNERS, MiniConsortium, library_launcher, ready_to_train

pytestmark = pytest.mark.slow

_AGGREGATES: dict[str, np.ndarray] = {}


@pytest.fixture(autouse=True)
def _spy(monkeypatch: pytest.MonkeyPatch) -> None:
    import pharmafl.server.rounds as rounds_module

    real_save = rounds_module.save_aggregate
    _AGGREGATES.clear()

    def save(state_dir: Any, spec: Any, result: Any) -> None:
        _AGGREGATES[spec.round_id] = result.weighted_sum.copy()
        real_save(state_dir, spec, result)

    monkeypatch.setattr(rounds_module, "save_aggregate", save)


def _run(mc: MiniConsortium, run_id: str, members: tuple[str, ...], **plan: Any) -> Any:
    op = mc.layout.operator
    base = FederationPlan.model_validate_json(op.plan.read_text())
    update = {"run_id": run_id, "participants": tuple(sorted(members)), **plan}
    write_run_plan(op.root, base.model_copy(update=update))
    with library_launcher(mc) as launcher:
        return run_training(op.root, mc.url, launcher, poll_s=0.05, run_id=run_id)


def _float64(state: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{n: np.asarray(state[n], dtype=np.float64) for n in sorted(state)})  # type: ignore[arg-type]
    return buf.getvalue()


def _compressed(state: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{n: np.asarray(state[n], np.float32) for n in sorted(state)})  # type: ignore[arg-type]
    return buf.getvalue()


def _one_ulp(state: dict[str, np.ndarray]) -> bytes:
    s = {n: np.asarray(state[n], dtype=np.float32).copy() for n in sorted(state)}
    last = sorted(s)[-1]
    s[last].flat[0] = np.nextafter(s[last].flat[0], np.float32(np.inf))
    return trunk_to_bytes(s)


@pytest.mark.parametrize("encode", [_float64, _compressed, _one_ulp], ids=["f64", "zip", "ulp"])
def test_a_second_run_from_a_re_encoded_or_nudged_trunk_gets_no_aggregate(
    mini_consortium: Callable[..., MiniConsortium],
    monkeypatch: pytest.MonkeyPatch,
    encode: Callable[[dict[str, np.ndarray]], bytes],
) -> None:
    import pharmafl.server.operator as operator_module

    mc = mini_consortium(rounds=1)
    ready_to_train(mc)
    _run(mc, "all", PARTNERS)
    # The deviating operator's only change: how it writes the trunk it publishes.
    monkeypatch.setattr(operator_module, "trunk_to_bytes", encode)
    with pytest.raises(FederationError, match="aborted"):
        _run(mc, "ab", ("alpha", "bravo"))
    assert not [r for r in _AGGREGATES if r.startswith("ab-")], "nothing released"


def test_a_run_that_replays_another_runs_round_zero_is_refused(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """The replay that would synchronise every private head for a nudged round 1."""
    mc = mini_consortium(rounds=2)
    ready_to_train(mc)
    _run(mc, "first", PARTNERS)
    with pytest.raises(FederationError, match="aborted"):
        _run(mc, "replay", PARTNERS)
    assert not [r for r in _AGGREGATES if r.startswith("replay-")]


def test_a_second_run_with_its_own_seed_and_initial_trunk_trains(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """The honest way to train again: a new seed, so a new initial trunk and new heads."""
    from pharmafl.common.io import atomic_write_bytes
    from pharmafl.model import initial_trunk
    from pharmafl.server.runs import run_dir

    mc = mini_consortium(rounds=1)
    plan = ready_to_train(mc)
    _run(mc, "first", PARTNERS)
    op = mc.layout.operator
    fresh = plan.model_copy(update={"seed": plan.seed + 1})
    # A run's own initial trunk (the operator's `federation init-trunk` of its plan).
    atomic_write_bytes(
        run_dir(op.root, "second") / "initial_trunk.npz",
        trunk_to_bytes(initial_trunk(fresh.trunk, fresh.seed)),
    )
    _run(mc, "second", ("alpha", "bravo"), seed=fresh.seed)
    assert "second-r0000-a0" in _AGGREGATES
