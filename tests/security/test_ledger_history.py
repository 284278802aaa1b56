"""The operator rewrites history (issue 12, finding 8): every partner keeps the ledger heads.

The operator signs every ledger entry itself, so the hash chain proves nothing against the
operator: it can cut entries from the end, or drop the entries it would rather not show (a
``partner_dropped``, a ``round_aborted``) and sign the whole chain again, and
``verify_ledger`` passes. Every round spec the operator signs carries its ledger head;
each partner records the head (``PARTNER_DIR/ledger_heads.jsonl``), refuses a spec whose
head contradicts one it recorded, and checks the ledger against its records.

The attacks are mounted as a dishonest operator would: the rounds are published with the
operator's own ``publish_round``, recorded with ``OperatorContext.record``, fetched by the
partners with ``fetch_spec``; the operator then edits or re-signs its ledger file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pharmafl.common.errors import FederationError
from pharmafl.common.io import sha256_bytes
from pharmafl.contract import FederationPlan, TrainSpec, read_ledger_heads
from pharmafl.layout import PartnerLayout
from pharmafl.ledger import (
    AggregateAppliedPayload,
    Ledger,
    LedgerEvent,
    LedgerIssue,
    PartnerDroppedPayload,
    RoundAbortedPayload,
    RoundStartedPayload,
    TrainingFinishedPayload,
    TrainingStartedPayload,
    UpdateSubmittedPayload,
    read_entries,
    verify_ledger,
)
from pharmafl.partner.federated import (
    PartnerIdentity,
    fetch_spec,
    load_partner_identity,
    partner_finish,
    partner_round,
)
from pharmafl.partner.reveals import StartRecord
from pharmafl.secure import ExchangeStore, Identity
from pharmafl.secure.identity import Roster, build_roster, write_identity, write_roster
from pharmafl.server.context import OperatorContext
from pharmafl.server.rounds import publish_round

PARTNERS = ("alpha", "beta", "gamma")
TRUNK = {"kind": "sparse", "hidden_sizes": [64], "dropouts": [0.1]}
TRUNK_BYTES = b"the global trunk"  # publish_round only hashes and relays it
ROUND_IDS = ["train-r0000-a0", "train-r0001-a0", "train-r0001-a1", "train-r0002-final"]


@pytest.fixture(scope="module")
def identities() -> dict[str, Identity]:
    ids = {p: Identity.generate(p) for p in PARTNERS}
    ids["operator"] = Identity.generate("operator", "operator")
    return ids


@pytest.fixture(scope="module")
def roster(identities: dict[str, Identity]) -> Roster:
    return build_roster(
        identities["operator"], [identities[p].public for p in PARTNERS], consortium="history"
    )


@dataclass
class Federation:
    """An operator context (folder store, ledger) and three partner folders."""

    ctx: OperatorContext
    partners: dict[str, PartnerIdentity]
    url: str

    @property
    def ledger(self) -> Path:
        return self.ctx.ledger.path

    def heads(self, partner: str = "alpha") -> Path:
        return PartnerLayout(self.partners[partner].partner_dir).ledger_heads

    def publish(self, index: int, *, final: bool = False) -> TrainSpec:
        """The operator publishes (and records) a round; every partner fetches its spec."""
        spec = publish_round(
            self.ctx, TRUNK_BYTES, index, previous_completed=index > 0, final=final
        )
        if not final:
            self.ctx.record(
                RoundStartedPayload(
                    round=index,
                    global_trunk_hash=spec.global_trunk_sha256,
                    participants=list(spec.participants),
                    round_spec_hash=sha256_bytes(spec.model_dump_json().encode()),
                )
            )
        for who in self.partners.values():
            fetch_spec(self.ctx.store, who, spec.round_id, timeout_s=0)
        return spec

    def aggregate(self, index: int, contributors: tuple[str, ...]) -> None:
        for p in contributors:
            self.ctx.record(
                UpdateSubmittedPayload(
                    round=index, partner=p, envelope_hash=sha256_bytes(f"{index}{p}".encode())
                )
            )
        self.ctx.record(
            AggregateAppliedPayload(
                round=index,
                trunk_hash=sha256_bytes(f"trunk {index}".encode()),
                contributors=list(contributors),
            )
        )


def _federation(root: Path, ids: dict[str, Identity], roster: Roster) -> Federation:
    for p in PARTNERS:
        layout = PartnerLayout(root / "partners" / p)
        write_identity(ids[p], layout.identity)
        write_roster(roster, layout.roster)
        layout.roster_pin.write_text(roster.fingerprint() + "\n")
        StartRecord(layout.aggregated_starts).create(ids[p].public.fingerprint())
    op = root / "operator"
    url = str(root / "exchange")
    ctx = OperatorContext(
        op,
        ids["operator"],
        roster,
        FederationPlan(rounds=2, trunk=TRUNK),
        ExchangeStore(url),
        Ledger(op / "ledger.jsonl", roster=roster),
        sha256_bytes(b"consortium parameters"),
        op,
        PARTNERS,
    )
    partners = {p: load_partner_identity(root / "partners" / p) for p in PARTNERS}
    return Federation(ctx, partners, url)


@pytest.fixture
def trained(tmp_path: Path, identities: dict[str, Identity], roster: Roster) -> Federation:
    """Two rounds as the operator records them: round 1 aborts once (gamma gone before
    unmasking), then completes without gamma, which is recorded as dropped; then the final
    evaluation."""
    fed = _federation(tmp_path, identities, roster)
    fed.ctx.record(
        TrainingStartedPayload(
            code_version="0.1.0",
            consortium_hash=fed.ctx.consortium_hash,
            parameters={"rounds": 2},
            initial_trunk_hash=sha256_bytes(TRUNK_BYTES),
            participants=list(PARTNERS),
            secure_aggregation=True,
        )
    )
    fed.publish(0)
    fed.aggregate(0, PARTNERS)
    fed.publish(1)
    fed.ctx.record(
        RoundAbortedPayload(round=1, reason="2 partners left, t = 3", survivors=["alpha", "beta"])
    )
    fed.publish(1)
    fed.ctx.record(PartnerDroppedPayload(round=1, partner="gamma", reason="timeout after 60 s"))
    fed.aggregate(1, ("alpha", "beta"))
    fed.publish(2, final=True)
    fed.ctx.record(
        TrainingFinishedPayload(
            rounds=2, final_trunk_hash=sha256_bytes(b"trunk 1"), reason="round budget"
        )
    )
    return fed


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_honest_ledger_matches_every_head_the_partners_recorded(
    trained: Federation, roster: Roster
) -> None:
    entries = read_entries(trained.ledger)
    for p in PARTNERS:
        records = read_ledger_heads(trained.heads(p))
        assert [r.round_id for r in records] == ROUND_IDS
        sizes = [r.head.entries for r in records]
        assert sizes == sorted(set(sizes)) and sizes[-1] < len(entries)
        check = verify_ledger(trained.ledger, roster, heads=records)
        assert check.ok and check.heads_checked == len(ROUND_IDS), check.message


def test_truncating_the_tail_is_caught_by_the_partners_heads(
    trained: Federation, roster: Roster
) -> None:
    # The operator cuts the end of round 1 (gamma's dropout, the aggregate without it) and
    # everything after it. Nothing is re-signed: a prefix of a valid chain is a valid chain.
    cut = next(e.index for e in read_entries(trained.ledger) if e.event.value == "partner_dropped")
    lines = trained.ledger.read_bytes().splitlines(keepends=True)
    trained.ledger.write_bytes(b"".join(lines[:cut]))
    assert verify_ledger(trained.ledger, roster).ok  # the chain alone cannot tell

    check = verify_ledger(trained.ledger, roster, heads=read_ledger_heads(trained.heads()))
    assert not check.ok
    assert check.issue is LedgerIssue.DELETED and check.first_bad_index == cut
    assert "train-r0002-final" in (check.message or "")


def test_deleting_dropouts_and_aborts_and_re_signing_is_caught_by_the_partners_heads(
    trained: Federation, roster: Roster, identities: dict[str, Identity]
) -> None:
    entries = read_entries(trained.ledger)
    hidden = {LedgerEvent.PARTNER_DROPPED, LedgerEvent.ROUND_ABORTED}
    trained.ledger.unlink()
    forged = Ledger(trained.ledger, roster=roster)
    for e in entries:
        if e.event not in hidden:
            forged.append(e.actor, identities[e.actor], e.event, e.payload, timestamp=e.timestamp)
    # Gap-free indices, an unbroken chain, every signature the operator's: verifies today.
    assert len(read_entries(trained.ledger)) == len(entries) - 2
    assert verify_ledger(trained.ledger, roster).ok

    records = read_ledger_heads(trained.heads("beta"))
    check = verify_ledger(trained.ledger, roster, heads=records)
    assert not check.ok and check.issue is LedgerIssue.REWRITTEN
    # The first head recorded after the deleted round_aborted entry: round 1's retry.
    retry = next(r for r in records if r.round_id == "train-r0001-a1")
    assert check.first_bad_index == retry.head.entries - 1
    assert "train-r0001-a1" in (check.message or "")


@pytest.mark.parametrize(
    ("work", "final"), [(partner_round, False), (partner_finish, True)], ids=["round", "final"]
)
def test_a_spec_showing_an_older_head_is_refused_before_the_partner_touches_anything(
    trained: Federation, work: Callable[..., Any], final: bool
) -> None:
    # The operator rolls its ledger back to before round 1 and carries on from there.
    entries = read_entries(trained.ledger)
    cut = next(e.index for e in entries if e.event.value == "round_started" and e.payload["round"])
    lines = trained.ledger.read_bytes().splitlines(keepends=True)
    trained.ledger.write_bytes(b"".join(lines[:cut]))
    spec = publish_round(
        trained.ctx, TRUNK_BYTES, 2 if final else 1, previous_completed=True, final=final
    )

    pdir = trained.partners["alpha"].partner_dir
    exchange = Path(trained.url)
    before, before_store = _tree(pdir), _tree(exchange)
    with pytest.raises(FederationError, match="rolled its ledger back") as err:
        work(pdir, trained.url, spec.round_id, timeout_s=1)
    assert "pharmafl ledger verify" in (err.value.fix or "")
    assert _tree(pdir) == before  # no state settled, no head recorded
    assert _tree(exchange) == before_store  # no key advertised, nothing reported
