"""A run id is used once: a fresh start that would reuse an earlier run's rounds is refused.

The operator re-running a plan with the same run id against a store that already holds that
run's rounds (a second operator folder, or one whose state was lost) would publish round ids
the partners already answered, mixing two runs' envelopes; it is refused with a fix. The
distributed launcher's side (Prefect idempotency keys) is in
``tests/integration/test_partner_serve.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest

from pharmafl.common.errors import FederationError
from pharmafl.layout import STATE_DIR
from pharmafl.server import run_training

from .conftest import MiniConsortium, library_launcher, ready_to_train


def _train(mc: MiniConsortium, **kw: object) -> object:
    with library_launcher(mc) as launcher:
        return run_training(mc.layout.operator.root, mc.url, launcher, **kw)  # type: ignore[arg-type]


def test_a_run_id_with_rounds_in_the_store_is_not_started_again(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    mc = mini_consortium(rounds=1)
    ready_to_train(mc)
    _train(mc)
    state = mc.layout.operator.root / STATE_DIR

    # the same operator folder: it holds the run
    with pytest.raises(FederationError, match="already holds training run 'train'") as held:
        _train(mc)
    assert "--resume" in str(held.value) and "new run" in str(held.value)

    # state lost (or another operator folder) but the store has the run's rounds
    shutil.rmtree(state)
    before = sorted(p.name for p in mc.layout.exchange.iterdir())
    with pytest.raises(FederationError, match="already has rounds in the exchange store") as fresh:
        _train(mc)
    assert "--resume" in str(fresh.value) and "new run_id" in str(fresh.value)
    with pytest.raises(FederationError, match="restore") as resumed:
        _train(mc, resume=True)
    assert "--resume" not in str(resumed.value)
    assert sorted(p.name for p in mc.layout.exchange.iterdir()) == before  # nothing published
    assert not state.exists()
