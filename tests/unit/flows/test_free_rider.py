"""The contribution study catches free riders (issue 15, item 3).

Six simulated Tox21 partners (1,000 compounds each, the same twelve assays at each) in the
simulator's two valuation groups of three; the second group, delta, echo and foxtrot, joins
with real compounds and shuffled results (`consortium simulate --free-rider`). Every partner
trains its local-only baseline; then a study (exact Shapley over the two groups; every
coalition on the main plan's budget, 8 rounds of 2 local epochs, two coalitions at a time;
secure aggregation on; the study's Prefect flow with embedded partners) values the groups
from the members' signed gains and their standard errors over their test tasks.

A second study has the same six partners, all with real results, and the second group
sends a zero trunk update every round (a modified partner: it takes the trunk, gives
nothing).

The free riders must come out last, with a value whose interval reaches 0 or lies below it;
the genuine group's value and its interval must stay above 0; and leaving the free riders
out must not cost the genuine partners anything. The key is fixed, so the folds and the
result are reproducible; 60–115 s per study on 2 cores (two coalitions at a time; the
first also prepares the partners from scratch).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmafl.accounting import ContributionResult, StudyConfig, UtilityCache

pytestmark = [pytest.mark.slow, pytest.mark.integration]

GENUINE = "alpha+bravo+charlie"
RIDERS = "delta+echo+foxtrot"
RIDER_NAMES = ("delta", "echo", "foxtrot")
HIDDEN = 128


def _study(
    tmp_path_factory: pytest.TempPathFactory,
    consortium_key_file: Path,
    shuffled: tuple[str, ...],
    caches: Path,
) -> Path:
    """Simulate, prepare and baseline the six partners (``shuffled``: those whose results
    are shuffled), then run the study. Both studies hold the same compounds under the same
    key and parameters, so the second prepares from the first's describe caches (``caches``,
    a partner's own incremental cache: byte-identical outputs, tested in
    ``test_prepare_cache``)."""
    import shutil

    from flows.contribution import contribution_flow
    from pharmafl.common.params import ConsortiumParameters, EvaluationQuorum, TaskParams
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.layout import PartnerLayout
    from pharmafl.model import TrainConfig, run_baseline
    from pharmafl.model.config import SparseTrunkConfig
    from pharmafl.partner import PrepareOptions, prepare_partner
    from pharmafl.simulate import SimulationSpec, simulate_consortium
    from pharmafl.simulate.federation import setup_federation

    cdir = tmp_path_factory.mktemp("free-rider") / "c"
    quorum = EvaluationQuorum(num_active_fold_min=3, num_inactive_fold_min=3)
    simulate_consortium(
        cdir,
        SimulationSpec(
            dataset="tox21",
            partners=6,
            max_compounds=1000,
            seed=3,
            overlap=0.0,
            free_riders=shuffled,
        ),
        workers=1,
        key_file=consortium_key_file,
        parameters=ConsortiumParameters(
            consortium_name="free-rider-test", tasks=TaskParams(evaluation_quorum=quorum)
        ),
    )
    dirs = {p.name: p for p in sorted((cdir / "partners").iterdir())}
    for pdir in dirs.values():
        own, shared = PartnerLayout(pdir).prepare_cache, caches / pdir.name
        if shared.is_dir():
            shutil.copytree(shared, own, dirs_exist_ok=True)
        prepare_partner(pdir, PrepareOptions(workers=1))
        shutil.copytree(own, shared, dirs_exist_ok=True)
        run_baseline(  # early-stopped on validation AUC-PR: a fair local reference
            pdir,
            SparseTrunkConfig(hidden_sizes=(HIDDEN,), dropouts=(0.2,)),
            TrainConfig(epochs=30, batch_size=64, lr_steps=(), selection_metric="auc_pr"),
            checkpoint=False,
        )
    plan = FederationPlan(
        rounds=8,
        patience=8,
        trunk={"kind": "sparse", "hidden_sizes": [HIDDEN], "dropouts": [0.2]},
        local=LocalTrainingSpec(
            epochs=2, batch_size=64, head_finetune_epochs=3, keep_optimizer=True
        ),
        stage_timeout_s=60,
    )
    setup_federation(cdir, plan)
    state = contribution_flow(str(cdir), study=StudyConfig(parallel=2), return_state=True)
    assert state.is_completed(), state.message  # every coalition on the main plan's budget
    return cdir


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The partners' describe caches, shared by the two studies."""
    return tmp_path_factory.mktemp("describe-caches")


@pytest.fixture(scope="module")
def studied(
    prefect_harness: None,
    tmp_path_factory: pytest.TempPathFactory,
    consortium_key_file: Path,
    caches: Path,
) -> Path:
    """The second group joins with real compounds and shuffled results."""
    return _study(tmp_path_factory, consortium_key_file, RIDER_NAMES, caches)


@pytest.fixture(scope="module")
def silent(
    prefect_harness: None,
    tmp_path_factory: pytest.TempPathFactory,
    consortium_key_file: Path,
    caches: Path,
) -> Path:
    """The second group holds real data and trains its own heads, but sends a zero trunk
    update every round: it contributes nothing and takes the trunk the others train (the
    free rider of Fraboni et al., AISTATS 2021). It runs its own, modified, partner code;
    under secure aggregation nobody sees its update."""
    from pharmafl.partner import federated

    honest = federated._train

    def zero_update(pdir, state, spec, me, global_state):  # type: ignore[no-untyped-def]
        trainer, update, validation = honest(pdir, state, spec, me, global_state)
        return trainer, (update * 0 if me in RIDER_NAMES else update), validation

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(federated, "_train", zero_update)
        return _study(tmp_path_factory, consortium_key_file, (), caches)


def _result(cdir: Path) -> ContributionResult:
    return ContributionResult.model_validate_json((cdir / "operator/contribution.json").read_text())


def test_the_free_riders_come_out_last_at_or_below_zero(studied: Path) -> None:
    res = _result(studied)
    assert (
        res.method == "exact"
        and res.groups is not None
        and set(res.groups)
        == {
            GENUINE,
            RIDERS,
        }
    )
    assert res.shapley is not None and res.shapley_ci is not None
    assert min(res.shapley, key=res.shapley.__getitem__) == RIDERS
    lo, hi = res.shapley_ci[RIDERS]
    assert lo < res.shapley[RIDERS] < hi and lo <= 0.0
    assert res.shapley[RIDERS] < 0.0  # they cost the consortium more than they bring
    print(f"free riders: {res.shapley[RIDERS]:+.4f} [{lo:+.4f}, {hi:+.4f}]")


def test_the_genuine_group_stays_above_zero(studied: Path) -> None:
    res = _result(studied)
    assert res.shapley is not None and res.shapley_ci is not None
    lo, hi = res.shapley_ci[GENUINE]
    assert 0.0 < lo < res.shapley[GENUINE] < hi
    assert hi - lo < 0.1  # an interval that says something
    print(f"genuine: {res.shapley[GENUINE]:+.4f} [{lo:+.4f}, {hi:+.4f}]")


def test_the_free_riders_hurt_the_genuine_partners(studied: Path) -> None:
    """v(N) − v(genuine alone): what adding the free riders did, their leave-one-out value,
    is below what the genuine group gets alone; their own gain, alone, is nothing."""
    res = _result(studied)
    cache = next((studied / "operator" / "contribution").glob("*/utilities.json"))
    v = {
        frozenset(c.coalition): c
        for c in UtilityCache.model_validate_json(cache.read_text()).values
    }
    alone = v[frozenset({GENUINE})]
    assert alone.se is not None and alone.value - 1.96 * alone.se > 0.0  # federation pays
    riders = v[frozenset({RIDERS})]
    assert riders.se is not None and abs(riders.value) <= 1.96 * riders.se + 0.005
    assert res.leave_one_out[RIDERS] < 0.0
    assert res.grand_coalition_ci is not None
    lo, hi = res.grand_coalition_ci
    assert lo < res.grand_coalition_utility < hi


def test_silent_free_riders_come_out_last_at_or_below_zero(silent: Path) -> None:
    """Riders that send zero updates, with real data of their own: whatever they take from
    the trunk the genuine group trains, their value must not reward it (the consortium
    utility is the members' mean gain, so taking without giving lowers it). Measured:
    −0.016 [−0.027, −0.005]; the genuine group +0.030, lower bound +0.019."""
    res = _result(silent)
    assert res.shapley is not None and res.shapley_ci is not None
    assert min(res.shapley, key=res.shapley.__getitem__) == RIDERS
    lo, hi = res.shapley_ci[RIDERS]
    assert lo <= 0.0
    g_lo, _ = res.shapley_ci[GENUINE]
    assert g_lo > 0.0
    print(
        f"silent riders: {res.shapley[RIDERS]:+.4f} [{lo:+.4f}, {hi:+.4f}]; "
        f"genuine {res.shapley[GENUINE]:+.4f} lower bound {g_lo:+.4f}"
    )
