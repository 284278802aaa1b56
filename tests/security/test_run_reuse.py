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


def test_the_operator_refuses_a_run_whose_folder_does_not_hold_together(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """Before any round, the operator's context refuses, naming the file: a run without its
    plan, a plan in one run's folder that names another run (its ids would reach the
    partners' paths), a roster signed by another operator, and a roster whose encryption
    key for the operator is not this operator's (no partner report would open)."""
    from pharmafl.contract import FederationPlan
    from pharmafl.secure import Identity, build_roster, write_roster
    from pharmafl.server import load_operator, write_run_plan

    mc = mini_consortium()
    op = mc.layout.operator
    with pytest.raises(FederationError, match="no federation plan for run 'cs-x'") as err:
        load_operator(op.root, mc.url, run_id="cs-x")
    assert "plan.json" in str(err.value)

    main = FederationPlan.model_validate_json(op.plan.read_text())
    path = write_run_plan(op.root, main.model_copy(update={"run_id": "cs-y"}))
    (op.root / "runs" / "cs-x").mkdir(parents=True)
    shutil.copy(path, op.root / "runs" / "cs-x" / "plan.json")
    with pytest.raises(FederationError, match=r"the plan in runs/cs-x/ is for run 'cs-y'"):
        load_operator(op.root, mc.url, run_id="cs-x")

    genuine = op.roster.read_bytes()
    other = Identity.generate("someone-else", "operator")
    write_roster(build_roster(other, list(mc.roster.members), consortium="x"), op.roster)
    with pytest.raises(FederationError, match="the roster was signed by another operator"):
        load_operator(op.root, mc.url)

    me = mc.roster.member(mc.operator.id)
    stale = me.model_copy(update={"encryption_key": Identity.generate("x").public.encryption_key})
    members = tuple(stale if m.id == me.id else m for m in mc.roster.members)
    unsigned = mc.roster.model_copy(update={"members": members, "signature": None})
    signed = unsigned.model_copy(
        update={"signature": mc.operator.sign(unsigned.signed_bytes()).hex()}
    )
    op.roster.write_bytes(genuine)
    write_roster(signed, op.roster)
    with pytest.raises(FederationError, match="another encryption key for the operator"):
        load_operator(op.root, mc.url)


def test_a_run_without_its_initial_trunk_is_not_started(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """Without the initial trunk of its plan the operator starts nothing (partners would
    refuse any other round-0 trunk anyway), and says how to make it."""
    mc = mini_consortium(rounds=1)
    ready_to_train(mc)
    mc.layout.operator.initial_trunk.unlink()
    with pytest.raises(FederationError, match="no initial trunk") as err:
        _train(mc)
    assert "init-trunk" in str(err.value)
    assert not list(mc.store.fs.glob(f"{mc.store.root}/*"))  # no round was opened
