"""A minimal consortium for adversary tests: identities, a signed roster and pins, an
operator folder with a plan and a tiny initial trunk. No chemistry, no data; a partner that
trains gets synthetic ``prepared/`` data from :func:`add_prepared`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pharmafl.common.io import atomic_write_bytes, atomic_write_text
from pharmafl.common.params import ConsortiumParameters
from pharmafl.contract import FederationPlan, LocalTrainingSpec, trunk_to_bytes
from pharmafl.layout import ConsortiumLayout
from pharmafl.partner.reveals import StartRecord
from pharmafl.secure import ExchangeStore, Identity, Roster, SecurityPolicy, generate_identity
from pharmafl.secure.identity import create_roster_file, public_key_path

PARTNERS = ("alpha", "bravo", "charlie")
#: The operator-side trunk: names and shapes only matter (the operator never builds a model).
TINY_TRUNK = {"trunk.layer.bias": np.zeros(4, np.float32), "trunk.layer.weight": np.zeros((4, 8))}


@dataclass
class MiniConsortium:
    """One consortium folder: the operator and every partner on this machine."""

    layout: ConsortiumLayout
    operator: Identity
    partners: dict[str, Identity]
    roster: Roster

    @property
    def url(self) -> str:
        return str(self.layout.exchange)

    @property
    def store(self) -> ExchangeStore:
        return ExchangeStore(self.url)

    def partner_dir(self, name: str) -> Path:
        return self.layout.partner(name).root


def build_consortium(
    root: Path,
    *,
    rounds: int = 1,
    policy: SecurityPolicy | None = None,
    names: tuple[str, ...] = PARTNERS,
) -> MiniConsortium:
    layout = ConsortiumLayout(root)
    op = layout.operator
    operator = generate_identity(op.identity, "operator", role="operator")
    partners = {p: generate_identity(layout.partner(p).identity, p) for p in names}
    pubs = [public_key_path(layout.partner(p).identity, p) for p in names]
    roster = create_roster_file(
        op.identity / "operator.key.json", pubs, op.roster, consortium="attack-test", policy=policy
    )
    for p in names:
        atomic_write_bytes(layout.partner(p).roster, op.roster.read_bytes())
        atomic_write_text(layout.partner(p).roster_pin, roster.fingerprint() + "\n")
        StartRecord(layout.partner(p).aggregated_starts).create(partners[p].public.fingerprint())
    atomic_write_text(op.consortium, ConsortiumParameters().model_dump_json() + "\n")
    plan = FederationPlan(
        rounds=rounds,
        trunk={"kind": "sparse", "input_size": 8, "hidden_sizes": [4]},
        local=LocalTrainingSpec(epochs=1, batch_size=16, head_finetune_epochs=1),
        stage_timeout_s=20,
    )
    atomic_write_text(op.plan, plan.model_dump_json(indent=2) + "\n")
    atomic_write_bytes(op.initial_trunk, trunk_to_bytes(TINY_TRUNK))
    return MiniConsortium(layout, operator, partners, roster)


def add_prepared(partner_dir: Path, *, n_features: int = 16, seed: int = 0) -> int:
    """Synthetic ``prepared/`` data for a partner that really trains; returns its width."""
    from pharmafl.model import write_synthetic_prepared

    write_synthetic_prepared(
        partner_dir / "prepared",
        n_rows=60,
        n_features=n_features,
        n_cls_tasks=2,
        n_reg_tasks=1,
        seed=seed,
    )
    return n_features


def ready_to_train(mc: MiniConsortium, **plan_fields: Any) -> FederationPlan:
    """Give every partner synthetic data and the operator a matching plan and initial trunk
    (``plan_fields`` override the plan, e.g. ``dp``); returns the plan."""
    from pharmafl.simulate.federation import initial_trunk

    op = mc.layout.operator
    plan = FederationPlan.model_validate_json(op.plan.read_text())
    n_features = 0
    for i, p in enumerate(mc.partners):
        n_features = add_prepared(mc.partner_dir(p), seed=i)
    trunk = plan.trunk.model_copy(update={"input_size": n_features})
    plan = plan.model_copy(update={"trunk": trunk, **plan_fields})
    atomic_write_text(op.plan, plan.model_dump_json())
    atomic_write_bytes(op.initial_trunk, trunk_to_bytes(initial_trunk(trunk, plan.seed)))
    return plan


def library_launcher(mc: MiniConsortium, timeout_s: float = 20) -> Any:
    """The embedded launcher with partner rounds as library calls in threads (no flow runs)."""
    import pharmafl.partner.federated as partner_module
    from flows.launchers import EmbeddedLauncher

    class LibraryLauncher(EmbeddedLauncher):
        def _run(self, partner: str, round_id: str, final: bool) -> Any:
            work = partner_module.partner_finish if final else partner_module.partner_round
            return work(self.partner_dirs[partner], self.exchange_url, round_id, timeout_s=20)

    return LibraryLauncher(mc.layout.partner_dirs(), mc.url, timeout_s)


@pytest.fixture
def mini_consortium(tmp_path: Path) -> Callable[..., MiniConsortium]:
    """Factory: ``mini_consortium(rounds=1)`` builds a fresh consortium under ``tmp_path``."""
    count = iter(range(1_000))

    def make(**kw: Any) -> MiniConsortium:
        return build_consortium(tmp_path / f"c{next(count)}", **kw)

    return make
