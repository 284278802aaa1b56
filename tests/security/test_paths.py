"""Attack: identifiers that reach a path (issue 12, finding 5).

A partner builds its run folder from the run id of the operator's signed spec
(``models/runs/<run id>/``). Before the fix any string was accepted: a spec with
``run_id="../federated"`` made a partner delete its main run's committed state (once
``models/runs/`` exists, e.g. after a contribution study), and one with
``run_id="../../../../exchange/loot"`` made it write its private heads and per-task metrics
into the exchange store (where the operator and the store read them). Now the spec's run and
round ids must match their patterns (a partner refuses the spec with a clear error before it
touches anything), and the layouts refuse any identifier that is not one plain path component
or whose resolved path leaves its folder. The exchange store never reads through a link that
leaves the store.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pharmafl.common.errors import ConfigError, FederationError
from pharmafl.contract import LocalTrainingSpec, SparseTrunkConfig, trunk_to_bytes
from pharmafl.layout import ConsortiumLayout, OperatorLayout, PartnerLayout
from pharmafl.secure import ExchangeStore, publish, seal, sealed_recipients

from .conftest import MiniConsortium, add_prepared

TRAVERSALS = ["../federated", "..", ".", "a/b", "/etc", "", "runs/../../x", "x/..", "a\\b", "\x00"]


def _tree(root: Path, skip: Path) -> dict[str, bytes]:
    """Every file under ``root`` except those under ``skip``, with its content."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_relative_to(skip)
    }


def _spec_doc(
    run_id: str, index: int, *, final: bool, trunk_sha: str, round_id: str, input_size: int = 8
) -> dict[str, Any]:
    """A spec document as the operator would sign it, with any run id (no model checks)."""
    from pharmafl.contract import TrainSpec

    head = {"ledger_head": {"entries": 0, "head_hash": "0" * 64}}  # only the ids are bad
    return (head if "ledger_head" in TrainSpec.model_fields else {}) | {
        "run_id": run_id,
        "round_index": index,
        "attempt": 0,
        "round_id": round_id,
        "participants": ["alpha", "bravo", "charlie"],
        "global_trunk_sha256": trunk_sha,
        "trunk": SparseTrunkConfig(input_size=input_size, hidden_sizes=(4,)).model_dump(),
        "local": LocalTrainingSpec(epochs=1, batch_size=16, head_finetune_epochs=1).model_dump(),
        "seed": 0,
        "previous_round_completed": index > 0,
        "final": final,
        "report_test_gain": False,
    }


def _operator_publishes(
    c: MiniConsortium, round_id: str, doc: dict[str, Any], trunk: bytes
) -> None:
    """The operator signs the global trunk and the spec of ``round_id`` into the store,
    sealed to every partner (as a real operator does)."""
    store, to = c.store, sealed_recipients(c.roster, c.roster.partners)
    publish(store, c.operator, round_id=round_id, kind="global_trunk", payload=trunk, seal_to=to)
    spec = json.dumps(doc).encode()
    publish(store, c.operator, round_id=round_id, kind="train_spec", payload=spec, seal_to=to)


def test_a_traversal_run_id_cannot_delete_the_partners_training_state(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    from pharmafl.common.io import sha256_bytes
    from pharmafl.partner.federated import partner_round

    c = mini_consortium()
    alpha = c.partner_dir("alpha")
    main = PartnerLayout(alpha).run_dir("train")  # models/federated: the main run's state
    main.mkdir(parents=True)
    (main / "committed.pt").write_bytes(b"alpha's private head after round 6")
    (main / "state.json").write_text('{"last_committed_round": 6}\n')
    # It took part in a contribution study before, so models/runs/ exists.
    study = PartnerLayout(alpha).run_dir("cs-0123456789ab-7")
    study.mkdir(parents=True)
    (study / "metrics.json").write_text("{}\n")
    before = _tree(c.layout.root, skip=Path("/nonexistent"))

    trunk = trunk_to_bytes({"trunk.w": np.zeros(3, np.float32)})
    rid = "evil-r0000-a0"
    doc = _spec_doc("../federated", 0, final=False, trunk_sha=sha256_bytes(trunk), round_id=rid)
    _operator_publishes(c, rid, doc, trunk)

    with pytest.raises(FederationError) as err:
        partner_round(alpha, c.url, rid, timeout_s=1.0, poll_s=0.05)
    # Before the fix the partner deleted models/runs/../federated/{committed.pt,state.json}.
    after = _tree(c.layout.root, skip=c.layout.exchange)
    assert after == {k: v for k, v in before.items() if not k.startswith("exchange")}
    assert "run_id" in err.value.message and "'../federated'" in err.value.message
    assert err.value.fix  # says what to do
    assert not list(c.store.fs.glob(f"{c.store.root}/{rid}/advertise/**"))  # never joined


@pytest.mark.parametrize(
    "published, changes, error",
    [
        ("evil-r0001-final", {"run_id": "../../../../exchange/loot"}, "run_id.*exchange/loot"),
        ("evil-r0001-final", {"round_id": "../../../../exchange/loot"}, "round_id.*exchange/loot"),
        # Plain ids, but not this spec's round: the run id would name another run's folder.
        ("other-r0001-final", {"round_id": "other-r0001-final"}, "not this spec's round"),
        ("evil-r0009-final", {}, "published for round evil-r0009-final is for round"),
    ],
    ids=["traversal-run-id", "traversal-round-id", "foreign-round-id", "other-round"],
)
def test_a_bad_id_cannot_make_the_partner_write_outside_its_models(
    mini_consortium: Callable[..., MiniConsortium],
    published: str,
    changes: dict[str, str],
    error: str,
) -> None:
    from pharmafl.common.io import sha256_bytes
    from pharmafl.partner.federated import partner_finish
    from pharmafl.simulate.federation import initial_trunk

    c = mini_consortium()
    alpha = c.partner_dir("alpha")
    width = add_prepared(alpha)
    trunk = trunk_to_bytes(initial_trunk(SparseTrunkConfig(input_size=width, hidden_sizes=(4,)), 0))
    rid = "evil-r0001-final"
    doc = _spec_doc("evil", 1, final=True, trunk_sha=sha256_bytes(trunk), round_id=rid)
    doc["trunk"]["input_size"] = width
    doc |= changes
    _operator_publishes(c, published, doc, trunk)
    before = _tree(c.layout.root, skip=PartnerLayout(alpha).models)

    with pytest.raises(FederationError, match=error):
        partner_finish(alpha, c.url, published, timeout_s=1.0)
    # Nothing left the partner's models folder: no heads, no metrics in the exchange store.
    assert _tree(c.layout.root, skip=PartnerLayout(alpha).models) == before
    assert not (c.layout.exchange / "loot").exists()
    assert not list(PartnerLayout(alpha).models.rglob("*"))  # refused before anything


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_layouts_refuse_an_identifier_that_is_not_one_plain_name(tmp_path: Path, bad: str) -> None:
    partner, operator = PartnerLayout(tmp_path / "p"), OperatorLayout(tmp_path / "op")
    consortium = ConsortiumLayout(tmp_path)
    calls = [
        partner.run_dir,
        partner.model_dir,
        operator.run_dir,
        operator.run_plan,
        operator.state_dir,
        operator.final_trunk,
        consortium.partner,
    ]
    for call in calls:
        with pytest.raises(ConfigError, match="not a plain name") as err:
            call(bad)
        assert repr(bad) in err.value.message and err.value.fix


def test_layouts_refuse_a_folder_that_links_out(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    partner = PartnerLayout(tmp_path / "p")
    (partner.models / "runs").mkdir(parents=True)
    os.symlink(outside, partner.models / "runs" / "cs-1")
    with pytest.raises(ConfigError, match="outside"):
        partner.run_dir("cs-1")
    # Plain names still work, including ones with dots (not a traversal).
    assert partner.run_dir("cs-abc.2") == partner.models / "runs" / "cs-abc.2"
    assert partner.run_dir("train") == partner.models / "federated"
    assert OperatorLayout(tmp_path / "op").run_dir("cs-1") == tmp_path / "op" / "runs" / "cs-1"
    assert OperatorLayout(tmp_path / "op").run_dir() == tmp_path / "op"


def test_the_store_never_reads_through_a_link_that_leaves_it(
    mini_consortium: Callable[..., MiniConsortium], caplog: pytest.LogCaptureFixture
) -> None:
    """An untrusted store (a shared folder) links an envelope name to a file elsewhere on the
    reader's machine: the reader must not follow it out of the store."""
    c = mini_consortium()
    store = ExchangeStore(c.url)
    env = seal(c.operator, round_id="r1", kind="train_spec", recipient="consortium", payload=b"{}")
    elsewhere = c.layout.root / "elsewhere.env"  # outside the store, e.g. a private file
    elsewhere.write_bytes(env.to_bytes())
    folder = c.layout.exchange / "r1" / "train_spec" / "consortium"
    folder.mkdir(parents=True)
    os.symlink(elsewhere, folder / f"operator.{env.nonce}.env")
    with caplog.at_level(logging.WARNING):
        assert store.list("r1", "train_spec", "consortium") == []
    assert "outside the store" in caplog.text


def test_a_final_evaluation_spec_never_starts_a_training_round(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """The operator's signed spec of a round says "final evaluation" while the partner's
    worker was asked for a training round under that id. The partner does not train from
    the final trunk and reveal one more update from it: it refuses, names the right entry
    point, and never joins the round."""
    from pharmafl.common.io import sha256_bytes
    from pharmafl.partner.federated import partner_round

    c = mini_consortium()
    alpha = c.partner_dir("alpha")
    trunk = trunk_to_bytes({"trunk.w": np.zeros(3, np.float32)})
    rid = "main-r0003-final"
    doc = _spec_doc("main", 3, final=True, trunk_sha=sha256_bytes(trunk), round_id=rid)
    _operator_publishes(c, rid, doc, trunk)
    with pytest.raises(FederationError, match="final evaluation; use partner_finish"):
        partner_round(alpha, c.url, rid, timeout_s=1.0, poll_s=0.05)
    assert not list(c.store.fs.glob(f"{c.store.root}/{rid}/advertise/**"))


def test_a_round_whose_keys_never_come_stops_at_its_timeout(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """The operator publishes a round's spec and trunk, then never sends the key stage (it
    crashed, or holds the partner hostage). The partner stops at its timeout, naming the
    stage, instead of waiting for ever."""
    import time

    from pharmafl.common.io import sha256_bytes
    from pharmafl.partner.federated import partner_round
    from pharmafl.simulate.federation import initial_trunk

    c = mini_consortium()
    alpha = c.partner_dir("alpha")
    width = add_prepared(alpha)
    config = SparseTrunkConfig(input_size=width, hidden_sizes=(4,))
    trunk = trunk_to_bytes(initial_trunk(config, 0))
    rid = "main-r0000-a0"
    doc = _spec_doc("main", 0, final=False, trunk_sha=sha256_bytes(trunk), round_id=rid)
    doc["trunk"]["input_size"] = width
    _operator_publishes(c, rid, doc, trunk)
    start = time.monotonic()
    with pytest.raises(FederationError, match=f"round {rid} stalled at advertise"):
        partner_round(alpha, c.url, rid, timeout_s=1.0, poll_s=0.05)
    assert time.monotonic() - start < 30


@pytest.mark.parametrize(
    ("final", "report_gain", "refusal"),
    [
        (False, False, "is not the final evaluation round"),
        (True, True, "no local-only model to measure the gain against"),
    ],
    ids=["training-round", "no-local-model"],
)
def test_a_final_evaluation_that_cannot_be_one_is_refused_before_training(
    mini_consortium: Callable[..., MiniConsortium], final: bool, report_gain: bool, refusal: str
) -> None:
    """``partner_finish`` asked for a round whose signed spec is a training round, or asked
    to report its test gain with no local-only model to measure it against: refused, with
    nothing trained or written."""
    from pharmafl.common.io import sha256_bytes
    from pharmafl.partner.federated import partner_finish
    from pharmafl.simulate.federation import initial_trunk

    c = mini_consortium()
    alpha = c.partner_dir("alpha")
    width = add_prepared(alpha)
    trunk = trunk_to_bytes(initial_trunk(SparseTrunkConfig(input_size=width, hidden_sizes=(4,)), 0))
    rid = "main-r0001-final" if final else "main-r0001-a0"
    doc = _spec_doc("main", 1, final=final, trunk_sha=sha256_bytes(trunk), round_id=rid)
    doc["trunk"]["input_size"] = width
    doc["report_test_gain"] = report_gain
    _operator_publishes(c, rid, doc, trunk)
    with pytest.raises(FederationError, match=refusal):
        partner_finish(alpha, c.url, rid, timeout_s=1.0)
    assert not list(PartnerLayout(alpha).models.rglob("*.pt"))
