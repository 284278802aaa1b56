"""What the operator loads before a run: its identity, the roster, one run's plan, the store
and the ledger. Torch-free and RDKit-free."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel

from pharmafl.common.errors import FederationError, PolicyViolationError
from pharmafl.common.params import load_consortium_parameters
from pharmafl.contract import FederationPlan
from pharmafl.layout import OperatorLayout
from pharmafl.ledger import Ledger, event_of, run_entries, validate_payload
from pharmafl.secure import (
    ExchangeStore,
    Identity,
    Roster,
    load_identity_dir,
    load_roster,
    sealed_recipients,
)
from pharmafl.secure.messages import policy_threshold


@dataclass
class OperatorContext:
    """The operator's folder, identity, roster, one run's plan and folder, store and ledger."""

    operator_dir: Path
    identity: Identity
    roster: Roster
    plan: FederationPlan
    store: ExchangeStore
    ledger: Ledger
    consortium_hash: str
    run_dir: Path
    members: tuple[str, ...]
    recorded: set[str] = field(default_factory=set)

    @property
    def layout(self) -> OperatorLayout:
        return OperatorLayout(self.operator_dir)

    def record(self, payload: BaseModel) -> None:
        """Sign and append one ledger entry (its event is the payload model's); an entry
        :meth:`expect_recorded` listed (written before a crash) is not written twice."""
        event = event_of(payload)
        doc = validate_payload(event, payload)
        if _key(event.value, doc) in self.recorded:
            return
        once = event.value in _PER_PARTNER and "partner" in doc
        if once and _key(event.value, {"partner": doc["partner"]}) in self.recorded:
            return  # one entry per partner and event in a round (a reason may differ now)
        self.ledger.append(self.identity.id, self.identity, event, payload)

    def expect_recorded(self, round_index: int) -> None:
        """Resuming ``round_index`` of this run: the entries the ledger already holds for it
        are not written again."""
        entries = [
            e
            for e in run_entries(self.ledger.entries(), self.plan.run_id)
            if e.payload.get("round") == round_index
        ]
        self.recorded = {_key(e.event.value, dict(e.payload)) for e in entries}
        self.recorded |= {
            _key(e.event.value, {"partner": e.payload["partner"]})
            for e in entries
            if e.event.value in _PER_PARTNER and "partner" in e.payload
        }


#: Events recorded once per partner and round (their other fields may differ after a restart).
_PER_PARTNER = frozenset({"update_submitted", "partner_dropped"})


def _key(event: str, doc: dict[str, object]) -> str:
    return json.dumps([event, doc], sort_keys=True)


def _run_plan(layout: OperatorLayout, run_id: str | None) -> FederationPlan:
    path = layout.run_plan(run_id)
    if not path.is_file():
        raise FederationError(
            f"no federation plan{'' if run_id is None else f' for run {run_id!r}'}.",
            file=path,
            fix="write plan.json." if run_id is None else "write it with write_run_plan().",
        )
    plan = FederationPlan.model_validate_json(path.read_text(encoding="utf-8"))
    if run_id is not None and plan.run_id != run_id:
        raise FederationError(f"the plan in runs/{run_id}/ is for run {plan.run_id!r}.", file=path)
    return plan


def _check_policy(roster: Roster, plan: FederationPlan, members: tuple[str, ...]) -> None:
    """Refuse to start a run the partners would refuse: it breaks the signed policy."""
    policy = roster.security_policy
    threshold = plan.threshold or policy_threshold(policy, len(members))
    violation = (
        policy.violation(len(members), threshold)
        or policy.dp_violation(plan.dp, len(members))
        or policy.ring_violation(plan.quantization.ring_bits)
    )
    if violation is not None:
        raise PolicyViolationError(
            f"plan {plan.run_id!r} breaks the consortium's security policy: {violation}.",
            fix="invite more partners or raise the threshold (or leave it unset); the policy "
            "is signed in the roster every partner pinned.",
        )


def _check_encryption_keys(
    roster: Roster, identity: Identity, members: tuple[str, ...], path: Path
) -> None:
    """Refuse to start a run whose trunks, specs or reports could not be sealed: every
    member of the run and the operator need an encryption key in the roster."""
    sealed_recipients(roster, (*members, identity.id))  # names every member without one
    if roster.member(identity.id).encryption_key != identity.public.encryption_key:
        raise FederationError(
            "the roster holds another encryption key for the operator than its signing key "
            "gives: partners' reports would not open.",
            file=path,
            fix="re-sign the roster with `pharmafl keys roster` from this operator's key.",
        )


def load_operator(
    operator_dir: str | Path, exchange_url: str, run_id: str | None = None
) -> OperatorContext:
    """Load ``identity/operator.key.json``, ``roster.json``, a run's plan and the ledger.

    ``run_id`` None (default) loads the main run (``plan.json``); another id loads
    ``runs/<run_id>/plan.json`` (written with :func:`~pharmafl.server.write_run_plan`). The
    plan's participants are checked against the roster.
    """
    layout = OperatorLayout(Path(operator_dir))
    identity = load_identity_dir(
        layout.identity, fix="run `pharmafl keys generate --role operator` there."
    )
    roster = load_roster(layout.roster)
    if roster.operator != identity.id:
        raise FederationError("the roster was signed by another operator.", file=layout.root)
    plan = _run_plan(layout, run_id)
    members = plan.members(roster.partners)
    _check_policy(roster, plan, members)
    _check_encryption_keys(roster, identity, members, layout.roster)
    params = load_consortium_parameters(layout.consortium)
    return OperatorContext(
        layout.root,
        identity,
        roster,
        plan,
        ExchangeStore(exchange_url),
        Ledger(layout.ledger, roster=roster),
        params.parameter_hash(),
        layout.run_dir(run_id),
        members,
    )


__all__ = ["OperatorContext", "load_operator"]
