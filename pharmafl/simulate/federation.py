"""Setting up federated training for a simulated consortium (rehearsals, demo, tests).

Generates what a real consortium creates by hand (``pharmafl keys generate`` at every party,
``pharmafl keys roster`` at the operator, the roster fingerprint pinned by every partner),
writes the operator's plan, and creates the initial global trunk from the shared trunk
config and seed (on a partner-side machine: it needs torch; the operator never does).
"""

from __future__ import annotations

from pathlib import Path

from pharmafl.common.errors import FederationError
from pharmafl.common.io import atomic_write_bytes, atomic_write_text
from pharmafl.common.params import load_consortium_parameters
from pharmafl.contract import FederationPlan, trunk_to_bytes
from pharmafl.layout import ConsortiumLayout
from pharmafl.model import initial_trunk
from pharmafl.partner.join import write_partner_identity
from pharmafl.partner.reveals import StartRecord
from pharmafl.secure import generate_identity
from pharmafl.secure.identity import create_roster_file, public_key_path
from pharmafl.secure.policy import SecurityPolicy, even_groups
from pharmafl.server.create import OPERATOR_ID, fit_plan, write_plan


def setup_federation(
    consortium_dir: str | Path, plan: FederationPlan, policy: SecurityPolicy | None = None
) -> Path:
    """Create identities, the roster signed with ``policy``, pins, the plan and the initial
    trunk.

    The default policy: collusion bound 0 and, with six partners or more, valuation groups
    of three consecutive partners (the last takes the remainder), so that a contribution
    study can run. Returns the operator folder. Refuses a consortium that already has
    identities.
    """
    layout = ConsortiumLayout(Path(consortium_dir))
    op = layout.operator
    partners = layout.partners()
    if op.identity.exists():
        raise FederationError(
            "this consortium already has identities.",
            file=op.identity,
            fix="use it as is, or simulate a fresh consortium.",
        )
    params = load_consortium_parameters(op.consortium)
    plan = fit_plan(plan, params)
    generate_identity(op.identity, OPERATOR_ID, role="operator")
    pubs, fingerprints = [], {}
    for p in partners:
        identity, _ = write_partner_identity(p, p.name, params.consortium_name)
        pubs.append(public_key_path(p.identity, p.name))
        fingerprints[p.name] = identity.public.fingerprint()
    if policy is None:
        groups = even_groups(p.name for p in partners)
        policy = None if groups is None else SecurityPolicy(valuation_groups=groups)
    roster = create_roster_file(
        op.identity / f"{OPERATOR_ID}.key.json",
        pubs,
        op.roster,
        consortium=params.consortium_name,
        policy=policy,
        parameter_hash=params.parameter_hash(),
    )
    roster_bytes = op.roster.read_bytes()
    for p in partners:
        atomic_write_bytes(p.roster, roster_bytes)
        atomic_write_text(p.roster_pin, roster.fingerprint() + "\n")
        StartRecord(p.aggregated_starts).create(fingerprints[p.name])
    write_plan(op, plan)
    atomic_write_bytes(op.initial_trunk, trunk_to_bytes(initial_trunk(plan.trunk, plan.seed)))
    return op.root


__all__ = ["OPERATOR_ID", "initial_trunk", "setup_federation"]  # initial_trunk: pharmafl.model
