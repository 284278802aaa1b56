"""The operator creates a real consortium: parameters, identity, plan, then the roster.

``pharmafl consortium create`` (:func:`create_consortium`) writes the operator folder:
``consortium.json`` (the shared parameters, sent to every partner), the operator's signing
identity and the main run's ``plan.json``. Once the partners have joined and sent their
public identities, ``pharmafl consortium roster`` (:func:`sign_consortium_roster`) signs the
roster with the security policy and the parameters' hash; its fingerprint is published out
of band and every partner pins it (:func:`pharmafl.partner.join.pin_roster`). The operator
never holds the consortium key: it only sees each partner's key check, and the roster
refuses partners whose checks differ. Torch-free: the initial trunk is written by the
command with :func:`pharmafl.model.initial_trunk`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pharmafl.common.errors import ConfigError, SecureAggregationError
from pharmafl.common.io import atomic_write_text
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
from pharmafl.contract import FederationPlan, SparseTrunkConfig
from pharmafl.layout import OperatorLayout
from pharmafl.secure.identity import (
    Roster,
    build_roster,
    generate_identity,
    load_identity_dir,
    load_public_identity,
    load_roster,
    write_roster,
)
from pharmafl.secure.policy import SecurityPolicy

logger = logging.getLogger(__name__)

#: The operator's party id unless told otherwise.
OPERATOR_ID = "operator"


def fit_plan(plan: FederationPlan, params: ConsortiumParameters) -> FederationPlan:
    """The plan with a sparse trunk's input size set to the consortium's folded ECFP size."""
    if isinstance(plan.trunk, SparseTrunkConfig):
        trunk = plan.trunk.model_copy(update={"input_size": params.fingerprint.fold_size})
        return plan.model_copy(update={"trunk": trunk})
    return plan


def write_plan(layout: OperatorLayout, plan: FederationPlan) -> Path:
    """Write the main run's plan (atomically)."""
    return atomic_write_text(layout.plan, plan.model_dump_json(indent=2) + "\n")


def create_consortium(
    operator_dir: str | Path,
    params: ConsortiumParameters,
    plan: FederationPlan,
    *,
    operator_id: str = OPERATOR_ID,
) -> FederationPlan:
    """Write ``consortium.json``, the operator identity and ``plan.json``; return the plan
    as written (its trunk fitted to the parameters).

    Raises
    ------
    ConfigError
        The folder already holds a consortium, or the parameters publish a reference hash
        (only a key holder can compute it; the operator never holds the key).
    """
    layout = OperatorLayout(Path(operator_dir))
    taken = [p for p in (layout.consortium, layout.identity, layout.plan) if p.exists()]
    if taken:
        raise ConfigError(
            f"{layout.root} already holds a consortium ({', '.join(p.name for p in taken)}).",
            file=taken[0],
            fix="create it in a new folder; an operator's identity is never replaced.",
        )
    if params.reference_hash is not None:
        raise ConfigError(
            "the parameters publish a reference_hash: the operator cannot check it.",
            fix="leave reference_hash out; partners check one consortium key through the "
            "key checks in the roster.",
        )
    plan = fit_plan(plan, params)
    layout.root.mkdir(parents=True, exist_ok=True)
    generate_identity(layout.identity, operator_id, role="operator")
    atomic_write_text(layout.consortium, params.model_dump_json(indent=2) + "\n")
    write_plan(layout, plan)
    logger.debug("created consortium %s in %s", params.consortium_name, layout.root)
    return plan


def _next_version(path: Path, version: int | None) -> int:
    if not path.exists():
        return version or 1
    current = load_roster(path).version
    if version is None:
        return current + 1
    if version <= current:
        raise SecureAggregationError(
            f"the roster is already at version {current}.",
            file=path,
            fix=f"sign version {current + 1} or later (partners pin the new fingerprint).",
        )
    return version


def sign_consortium_roster(
    operator_dir: str | Path,
    member_files: Sequence[str | Path],
    policy: SecurityPolicy,
    *,
    version: int | None = None,
) -> Roster:
    """Sign the roster of the operator folder (``roster.json``): every partner's public
    identity, the policy and the hash of ``consortium.json``; a new roster gets the next
    version (the old one is replaced only by a later version).

    Raises
    ------
    SecureAggregationError
        A public identity is invalid, the partners' key checks differ, the policy does not
        fit them, or the version is not newer.
    """
    layout = OperatorLayout(Path(operator_dir))
    params = load_consortium_parameters(layout.consortium)
    operator = load_identity_dir(
        layout.identity, fix="create the consortium first (pharmafl consortium create)."
    )
    members = [load_public_identity(m) for m in member_files]
    missing = [m.id for m in members if m.role == "partner" and m.consortium_key_check is None]
    if missing:
        raise SecureAggregationError(
            f"partner(s) {', '.join(missing)} publish no consortium key check.",
            fix="each partner joins with `pharmafl consortium join` and sends the "
            "identity/<id>.pub.json it writes.",
        )
    roster = build_roster(
        operator,
        members,
        consortium=params.consortium_name,
        version=_next_version(layout.roster, version),
        policy=policy,
        parameter_hash=params.parameter_hash(),
    )
    write_roster(roster, layout.roster)
    logger.debug("signed roster v%d with %d members", roster.version, len(roster.members))
    return roster


__all__ = [
    "OPERATOR_ID",
    "create_consortium",
    "fit_plan",
    "sign_consortium_roster",
    "write_plan",
]
