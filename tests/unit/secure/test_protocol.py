"""The full protocol: exact sums, dropouts, aborts, and every attack the issue lists."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pharmafl.common import crypto
from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import (
    CLIENT_STAGES,
    ExchangeStore,
    Identity,
    QuantizationConfig,
    SecAggClient,
    SecAggServer,
    SharePayload,
    UnmaskRequestPayload,
    default_threshold,
    run_secagg_round,
    seal,
)
from pharmafl.secure.masking import apply_masks, derive_key, pair_mask_key, pair_sign
from pharmafl.secure.messages import aead_context

P = 1500


def _inputs(n: int, size: int = P, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(n)]
    updates = {p: rng.normal(0, 0.05, size).astype(np.float32) for p in ids}
    counts = {p: int(rng.integers(1, 5000)) for p in ids}
    return updates, counts


def _expected(updates, counts, survivors, cfg: QuantizationConfig) -> np.ndarray:
    return sum(
        np.clip(counts[p] / cfg.max_examples * updates[p].astype(np.float64), -cfg.clip, cfg.clip)
        for p in survivors
    )


def _check_exact(result, updates, counts, survivors, cfg) -> None:
    n = len(updates)
    assert result.report.survivors == tuple(sorted(survivors))
    assert result.report.total_examples == sum(counts[p] for p in survivors)
    err = np.max(np.abs(result.weighted_sum - _expected(updates, counts, survivors, cfg)))
    assert err <= cfg.sum_error_bound(n)
    total = sum(counts[p] for p in survivors)
    fedavg = sum(counts[p] * updates[p].astype(np.float64) for p in survivors) / total
    assert np.max(np.abs(result.mean - fedavg)) <= cfg.mean_error_bound(n, total)


@pytest.mark.parametrize("n", range(2, 11))
def test_exact_sum_without_dropouts(n: int) -> None:
    updates, counts = _inputs(n, seed=n)
    cfg = QuantizationConfig(max_examples=8192)
    sim = run_secagg_round(updates, counts, quantization=cfg)
    _check_exact(sim.result, updates, counts, list(updates), cfg)
    assert sim.result.dropped == ()
    assert sim.result.report.rejections == []


@pytest.mark.parametrize("n", [3, 4, 5, 7, 10])
def test_dropouts_up_to_n_minus_t_are_recovered(n: int) -> None:
    updates, counts = _inputs(n, seed=100 + n)
    t = default_threshold(n)
    ids = sorted(updates)
    # Drop n - t partners, spread over every stage (and every stage gets a turn across n).
    dropouts = {ids[-1 - i]: CLIENT_STAGES[(i + n) % len(CLIENT_STAGES)] for i in range(n - t)}
    cfg = QuantizationConfig(max_examples=8192)
    sim = run_secagg_round(updates, counts, quantization=cfg, dropouts=dropouts)
    # Inputs of partners that dropped after submitting are in the sum; the others are not.
    order = CLIENT_STAGES.index
    in_sum = [p for p in ids if p not in dropouts or order(dropouts[p]) > order("submit")]
    _check_exact(sim.result, updates, counts, in_sum, cfg)
    assert set(sim.result.dropped) == set(ids) - set(in_sum)


@pytest.mark.parametrize("stage", CLIENT_STAGES)
def test_fewer_than_t_survivors_abort(stage: str) -> None:
    updates, counts = _inputs(5)
    dropouts = {"p00": stage, "p01": stage}  # n=5, t=4: two dropouts are one too many
    with pytest.raises(SecureAggregationError, match="aborted"):
        run_secagg_round(updates, counts, dropouts=dropouts)


def test_ring_64_and_explicit_threshold() -> None:
    updates, counts = _inputs(4)
    cfg = QuantizationConfig(max_examples=8192, ring_bits=64)
    sim = run_secagg_round(
        updates, counts, quantization=cfg, threshold=3, dropouts={"p03": "submit"}
    )
    _check_exact(sim.result, updates, counts, ["p00", "p01", "p02"], cfg)


# --- staged API, attacks --------------------------------------------------------------------


class Round:
    """A round driven stage by stage so tests can interfere between stages."""

    def __init__(self, c, store, round_id="r1", size=P, threshold=None, seed=0) -> None:
        self.c, self.store = c, store
        self.cfg = QuantizationConfig(max_examples=8192)
        self.server = SecAggServer(
            c.operator,
            c.roster,
            store,
            round_id,
            vector_length=size,
            threshold=threshold,
            quantization=self.cfg,
        )
        self.clients = {
            p: SecAggClient(i, c.roster, store, round_id, pinned_fingerprint=c.roster.fingerprint())
            for p, i in c.partners.items()
        }
        self.updates, self.counts = _inputs(len(c.partners), size, seed)
        for p, cl in self.clients.items():
            cl.provide_input(self.updates[p], self.counts[p])
        self.server.open()

    def clients_do(self, stage: str, skip=()) -> None:
        for p, cl in self.clients.items():
            if p not in skip:
                assert cl.stage == stage and cl.step()

    def server_close(self) -> None:
        self.server.receive()
        self.server.advance()

    def stage(self, stage: str, skip=()) -> None:
        self.clients_do(stage, skip)
        self.server_close()

    def run(self, skip=()) -> None:
        for s in CLIENT_STAGES:
            self.stage(s, skip)

    def server_reasons(self) -> list[str]:
        return [x.reason for x in self.server.guard.rejections]

    def reasons(self) -> list[str]:
        assert self.server.result is not None
        return [r.reason for r in self.server.result.report.rejections]


def _operator_replaces(store, r: Round, kind: str, recipient: str, payload: bytes) -> None:
    """The operator's message of ``kind`` to ``recipient`` in round r1 is replaced by one
    carrying ``payload``, signed (and so believed) like any message of the operator."""
    for real in store.list("r1", kind, recipient):
        store.fs.rm(f"{store.root}/{store.key_of(real)}")
    store.put(seal(r.c.operator, round_id="r1", kind=kind, recipient=recipient, payload=payload))


def _partner_sends(
    store,
    r: Round,
    who: str,
    kind: str,
    recipient: str,
    payload: bytes,
    *,
    headers: dict[str, str] | None = None,
    replace: bool = False,
) -> None:
    """Partner ``who`` (a modified client, its own valid signature) puts a message of
    ``kind`` to ``recipient`` in round r1; with ``replace`` its genuine one is taken out."""
    if replace:
        for real in store.list("r1", kind, recipient, sender=who):
            store.fs.rm(f"{store.root}/{store.key_of(real)}")
    store.put(
        seal(
            r.c.partners[who], round_id="r1", kind=kind, recipient=recipient,
            payload=payload, headers=headers or {},
        )
    )  # fmt: skip


def _unmask_response(store, r: Round, who: str, body: bytes) -> None:
    """``who`` (its own, modified client) answers the unmask request with ``body``,
    encrypted and signed as a genuine response."""
    cl = r.clients[who]
    shared = crypto.x25519_exchange(cl._c_sk, bytes.fromhex(cl.spec.operator_key))
    key = derive_key("unmask-key", shared, "r1", who, "operator")
    sealed = crypto.aead_encrypt(key, body, aead_context("unmask", "r1", who, "operator"))
    _partner_sends(store, r, who, "unmask", "operator", sealed)


def test_forged_signature_and_duplicate_masked_inputs_are_rejected(consortium, memory_store):
    r = Round(consortium, memory_store)
    for s in ("advertise", "share_keys"):
        r.stage(s)
    # Mallory claims to be p00 (her own key) and races p00's real input.
    mallory = Identity.generate("p00")
    forged = seal(
        mallory,
        round_id="r1",
        kind="masked",
        recipient="operator",
        payload=bytes(4 * (P + 1)),
        headers={"dtype": "<u4", "length": str(P + 1), "seed_commitment": "0" * 64},
    )
    memory_store.put(forged)
    r.clients_do("submit")
    # p01 submits a second, different input (duplicate submission).
    dup = seal(
        consortium.partners["p01"],
        round_id="r1",
        kind="masked",
        recipient="operator",
        payload=bytes(4 * (P + 1)),
        headers={"dtype": "<u4", "length": str(P + 1), "seed_commitment": "0" * 64},
    )
    r.server.receive()
    memory_store.put(dup)
    r.server_close()
    for s in ("confirm", "unmask"):
        r.stage(s)
    assert "bad signature (forged or altered in transit)" in r.reasons()
    assert "duplicate submission for this stage" in r.reasons()
    _check_exact(r.server.result, r.updates, r.counts, list(r.updates), r.cfg)


def test_tampered_share_ciphertext_is_rejected_and_round_survives(consortium, memory_store):
    r = Round(consortium, memory_store)
    r.stage("advertise")
    r.clients_do("share_keys")
    # p00's signed share message to p01 is replaced by one with a flipped ciphertext bit,
    # re-signed by p00 (a misbehaving partner: the signature is valid, the AEAD is not).
    (real,) = memory_store.list("r1", "shares", "p01", sender="p00")
    bad = bytearray(real.payload)
    bad[20] ^= 1
    _partner_sends(memory_store, r, "p00", "shares", "p01", bytes(bad), replace=True)
    r.server_close()
    r.clients_do("submit")
    assert any("cannot decrypt shares" in x.reason for x in r.clients["p01"].guard.rejections)
    r.server_close()
    for s in ("confirm", "unmask"):
        r.stage(s)
    _check_exact(r.server.result, r.updates, r.counts, list(r.updates), r.cfg)


def test_unmask_response_under_a_wrong_key_is_rejected(consortium, memory_store):
    r = Round(consortium, memory_store)  # n=4, t=3
    for s in ("advertise", "share_keys", "submit", "confirm"):
        r.stage(s)
    r.clients_do("unmask")
    body = b'{"b_shares":{},"s_shares":{}}'
    wrong = crypto.aead_encrypt(
        crypto.random_bytes(32), body, aead_context("unmask", "r1", "p02", "operator")
    )
    _partner_sends(memory_store, r, "p02", "unmask", "operator", wrong, replace=True)
    r.server_close()
    assert any("cannot decrypt shares" in x for x in r.reasons())
    assert r.server.result.report.responded == ("p00", "p01", "p03")
    _check_exact(r.server.result, r.updates, r.counts, list(r.updates), r.cfg)


def test_replayed_envelope_from_an_earlier_round_is_rejected(consortium, tmp_path):
    store = ExchangeStore(tmp_path / "exchange")
    first = Round(consortium, store, round_id="r1")
    first.run()
    second = Round(consortium, store, round_id="r2", seed=5)
    for s in ("advertise", "share_keys"):
        second.stage(s)
    # The store (untrusted) replays p00's round-1 masked input into round 2, both as a file
    # copied under round 2's path and by renaming it as if it were new.
    (old,) = store.list("r1", "masked", "operator", sender="p00")
    folder = tmp_path / "exchange" / "r2" / "masked" / "operator"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"p00.{old.nonce}.env").write_bytes(old.to_bytes())
    second.server.receive()
    assert second.server.guard.rejections[-1].reason.endswith("(moved or injected).")
    # And a receiver that is handed the old envelope directly refuses it by round.
    with pytest.raises(SecureAggregationError, match="wrong round 'r1'"):
        second.server.guard.check(old, kind="masked")
    for s in ("submit", "confirm", "unmask"):
        second.stage(s)
    _check_exact(
        second.server.result, second.updates, second.counts, list(second.updates), second.cfg
    )


def test_late_submission_is_rejected_and_stays_masked(consortium, memory_store):
    size = 200_000
    r = Round(consortium, memory_store, size=size)  # n=4, t=3
    for s in ("advertise", "share_keys"):
        r.stage(s)
    r.stage("submit", skip=("p03",))
    for s in ("confirm", "unmask"):
        r.stage(s, skip=("p03",))
    # p03 wakes up after unmasking and submits anyway.
    late = r.clients["p03"]
    assert late.step() and late.stage == "confirm"
    r.server.receive()
    assert r.server.guard.rejections[-1].reason == "late: the masked stage is closed"
    _check_exact(r.server.result, r.updates, r.counts, ["p00", "p01", "p02"], r.cfg)
    assert r.server.result.dropped == ("p03",)
    # Nobody revealed p03's self-seed share, only its mask-key shares ...
    reveals = r.server._unmasks.values()
    assert all("p03" not in d.b_shares and "p03" in d.s_shares for d in reveals)
    # ... so even with p03's mask key rebuilt, its late input is still hidden by its self mask.
    from pharmafl.secure import shamir

    s_sk = shamir.combine(
        {
            r.server.spec.index(v): bytes.fromhex(d.s_shares["p03"])
            for v, d in r.server._unmasks.items()
        },
        r.server.spec.threshold,
    )
    (env,) = memory_store.list("r1", "masked", "operator", sender="p03")
    vec = np.frombuffer(env.payload, dtype="<u4").copy()
    masks = []
    for u in ("p00", "p01", "p02"):
        shared = crypto.x25519_exchange(s_sk, bytes.fromhex(r.server._adverts[u][1].s_pk))
        masks.append((pair_mask_key(shared, "r1", "p03", u), -pair_sign("p03", u)))
    apply_masks(vec, masks)
    counts = np.bincount((vec >> 24).astype(np.int64), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-6  # still uniform: nothing learned


def test_partner_refuses_low_threshold_and_unconfirmed_survivors(consortium, memory_store):
    r = Round(consortium, memory_store, threshold=3)
    picky = SecAggClient(
        consortium.partners["p00"], consortium.roster, memory_store, "r1", min_threshold=4
    )
    with pytest.raises(SecureAggregationError, match="threshold 3 is below 4"):
        picky.advertise()
    for s in ("advertise", "share_keys", "submit"):
        r.stage(s)
    r.clients_do("confirm")
    # A dishonest operator asks p00 to unmask with a single confirmation of U3.
    (conf,) = memory_store.list("r1", "confirm", "operator", sender="p01")
    from pharmafl.secure import pack_envelopes

    request = UnmaskRequestPayload(
        survivors=r.clients["p00"].u3, confirmations=pack_envelopes([conf])
    )
    _operator_replaces(memory_store, r, "unmask_request", "p00", request.to_payload())
    with pytest.raises(SecureAggregationError, match="only 1 confirmations"):
        r.clients["p00"].unmask()
    assert not memory_store.list("r1", "unmask", "operator")  # nothing revealed


def test_share_payload_binds_direction(consortium) -> None:
    with pytest.raises(ValueError):
        SharePayload(sender="p00", recipient="p01", s_share="00", b_share="00")


def test_operator_cannot_choose_a_minority_threshold(consortium, memory_store) -> None:
    with pytest.raises(SecureAggregationError, match=r"threshold 2 must be in 3\.\.4"):
        SecAggServer(
            consortium.operator, consortium.roster, memory_store, "r1", vector_length=5, threshold=2
        )
    assert default_threshold(10) == 7 and default_threshold(2) == 2 and default_threshold(3) == 2


def test_client_refuses_an_unpinned_roster_and_foreign_keys(consortium, memory_store) -> None:
    with pytest.raises(SecureAggregationError, match="pinned fingerprint"):
        SecAggClient(
            consortium.partners["p00"],
            consortium.roster,
            memory_store,
            "r1",
            pinned_fingerprint="0" * 64,
        )
    with pytest.raises(SecureAggregationError, match="different public key"):
        SecAggClient(Identity.generate("p00"), consortium.roster, memory_store, "r1")


def test_a_round_id_is_never_reused(consortium, memory_store) -> None:
    Round(consortium, memory_store, round_id="r7")
    again = SecAggServer(
        consortium.operator, consortium.roster, memory_store, "r7", vector_length=P
    )
    with pytest.raises(SecureAggregationError, match="already used"):
        again.open()


def test_a_round_opens_once(consortium, memory_store) -> None:
    r = Round(consortium, memory_store)  # opened by the helper
    with pytest.raises(SecureAggregationError, match="already open"):
        r.server.open()


@pytest.mark.parametrize("ring_bits", [8, 16])
def test_compressed_ring_round_with_a_dropout(ring_bits: int) -> None:
    """A whole round on a narrow ring: the dropout's masks are removed exactly (a mask left
    over would be uniform noise over the ring), and the mean is the equal-weight mean of the
    survivors' clamped updates within one step of the ring."""
    updates, counts = _inputs(5, seed=ring_bits)
    cfg = QuantizationConfig(clip=0.15, max_examples=8192, ring_bits=ring_bits)
    sim = run_secagg_round(updates, counts, quantization=cfg, dropouts={"p04": "submit"})
    survivors = ["p00", "p01", "p02", "p03"]
    assert sim.result.report.survivors == tuple(survivors)
    assert sim.result.report.total_examples == sum(counts[p] for p in survivors)
    assert sim.result.report.ring_bits == ring_bits
    clamped = [np.clip(updates[p].astype(np.float64), -cfg.clip, cfg.clip) for p in survivors]
    err = np.max(np.abs(sim.result.mean - sum(clamped) / len(survivors)))
    assert err < cfg.mean_error_bound(5, sim.result.report.total_examples)
    assert sim.result.report.mean_error_bound == cfg.mean_error_bound(5, 1)


def _notice(store, sender, round_id: str, text: bytes, spec_sha256: str, **kw) -> None:
    from pharmafl.secure import ROUND_SPEC_HEADER, publish

    publish(
        store, sender, round_id=round_id, kind="round_aborted", payload=text,
        headers={ROUND_SPEC_HEADER: spec_sha256}, **kw,
    )  # fmt: skip


def _waiting(consortium, folder):
    """A round whose partners shared their keys and wait for the operator's relay."""
    store = ExchangeStore(folder)
    r = Round(consortium, store)
    r.stage("advertise")
    r.clients_do("share_keys")
    return store, r.clients["p00"], r.server.spec.digest()


def test_an_abort_notice_from_the_operator_stops_a_waiting_partner(
    consortium, tmp_path, monkeypatch
) -> None:
    from pharmafl.secure import BROADCAST, sealed_recipients
    from pharmafl.secure import client as client_module

    readers = sealed_recipients(consortium.roster, consortium.partners)
    op = consortium.operator
    monkeypatch.setattr(client_module, "ABORT_CHECK_S", 3600.0)
    store, waiting, digest = _waiting(consortium, tmp_path / "throttled")
    assert not waiting.step()  # its next stage needs the operator; no notice yet
    _notice(store, op, "r1", b"too few masked inputs", digest, seal_to=readers)
    assert not waiting.step()  # looked less than ABORT_CHECK_S ago: still waiting
    monkeypatch.setattr(client_module, "ABORT_CHECK_S", 0.0)

    # Notices the operator signed but this partner must not act on (one round each: an
    # operator sends one notice a round, the guard takes one per round)
    for name, text, spec_sha, kw in [
        ("clear", b"in clear", digest, {}),
        ("other-reader", b"to p01 only", digest, {"seal_to": readers[1:2]}),
        ("other-spec", b"an earlier run's", "0" * 64, {"seal_to": readers}),
    ]:
        store, waiting, _ = _waiting(consortium, tmp_path / name)
        _notice(store, op, "r1", text, spec_sha, **kw)
        assert not waiting.step() and waiting.stage == "submit", name

    # What an untrusted store or a partner may plant, then the operator's own notice
    store, waiting, digest = _waiting(consortium, tmp_path / "planted")
    _notice(store, consortium.partners["p01"], "r1", b"by a partner", digest, seal_to=readers)
    _notice(store, op, "r1", b"to p00", digest, seal_to=readers, recipient="p00")
    _notice(store, op, "r2", b"another round", digest, seal_to=readers)
    (old,) = store.list("r2", "round_aborted", BROADCAST, sender="operator")
    folder = tmp_path / "planted" / "r1" / "round_aborted" / BROADCAST
    (folder / f"operator.{old.nonce}.env").write_bytes(old.to_bytes())  # replayed into r1
    forged = seal(
        consortium.partners["p01"], round_id="r1", kind="round_aborted", recipient=BROADCAST,
        payload=b"forged", headers={"round_spec_sha256": digest},
    ).model_copy(update={"sender": "operator"})  # fmt: skip
    (folder / f"operator.{forged.nonce}.env").write_bytes(forged.to_bytes())
    assert not waiting.step() and waiting.stage == "submit"  # all of them: still waiting
    _notice(store, op, "r1", b"too few masked inputs", digest, seal_to=readers)
    with pytest.raises(SecureAggregationError, match=r"aborted round r1.*too few masked inputs"):
        waiting.step()
    assert waiting.stage == "aborted" and waiting._b == b"" and not waiting._shares
    assert not waiting.step()  # and it stays out of the round


def test_a_partner_whose_training_outlasted_the_round_sends_no_masked_input(
    consortium, memory_store
) -> None:
    from pharmafl.secure import sealed_recipients

    r = Round(consortium, memory_store)
    r.stage("advertise")
    r.stage("share_keys")  # the operator has relayed the shares: p00 could submit now
    readers = sealed_recipients(consortium.roster, consortium.partners)
    _notice(memory_store, consortium.operator, "r1", b"stalled", r.server.spec.digest(),
            seal_to=readers)  # fmt: skip
    with pytest.raises(SecureAggregationError, match="aborted round r1 at stage submit"):
        r.clients["p00"].step()
    assert not memory_store.list("r1", "masked", "operator", sender="p00")


@pytest.mark.parametrize(
    ("short", "commitment", "refusal"),
    [(1, "0" * 64, "masked input must be"), (0, None, "masked input lacks its seed commitment")],
    ids=["short", "no-commitment"],
)
def test_a_malformed_masked_input_is_refused_and_the_round_goes_on(
    consortium, memory_store, short, commitment, refusal
) -> None:
    """A partner's own (modified) client sends a correctly signed masked input one entry
    shorter than the round's vector (a longer one is over the store's size limit), or one
    without the commitment to its self-mask seed. Added into the sum the first would crash
    the operator's round, the second would fail its (missing) commitment at the end and abort
    the round for everyone; each is refused as that partner's input, and the round completes
    with the others."""
    r = Round(consortium, memory_store)
    for s in ("advertise", "share_keys"):
        r.stage(s)
    r.clients_do("submit", skip=("p01",))
    entries = r.server._acc.size - short
    headers = {"dtype": "<u4", "length": str(entries)}
    if commitment is not None:
        headers["seed_commitment"] = commitment
    _partner_sends(
        memory_store, r, "p01", "masked", "operator", bytes(4 * entries), headers=headers
    )
    r.server_close()
    reasons = [x.reason for x in r.server.guard.rejections]
    assert any(x.startswith(refusal) for x in reasons), reasons
    for s in ("confirm", "unmask"):
        r.stage(s, skip=("p01",))
    survivors = [p for p in r.updates if p != "p01"]
    _check_exact(r.server.result, r.updates, r.counts, survivors, r.cfg)


@pytest.mark.parametrize(
    ("relayed", "listed", "refusal"),
    [
        (("p01", "p02", "p03"), None, "my advertised keys were altered"),
        (("p00", "p01"), None, "only 2 partners advertised keys"),
        (("p00", "p01", "p02"), ("p00", "p01", "p02", "p03"), "does not match its signed"),
    ],
    ids=["without-mine", "below-t", "list-beyond-adverts"],
)
def test_a_partner_hands_out_no_shares_in_a_key_list_it_cannot_trust(
    consortium, memory_store, relayed, listed, refusal
):
    """The operator relays p00 a key list without p00's own advertisement (a round in which
    p00 is not a member, while p00's peers would hold shares of its secrets), one of fewer
    than t partners (a round that can never unmask), or one that lists a partner whose
    signed advertisement it does not carry. p00 checks each and stops: no share of its mask
    secrets leaves."""
    from pharmafl.secure import pack_envelopes
    from pharmafl.secure.messages import KeysPayload

    r = Round(consortium, memory_store)  # n=4, t=3
    r.clients_do("advertise")
    r.server.receive()
    adverts = [e for e in memory_store.list("r1", "advertise", "operator") if e.sender in relayed]
    r.server.advance()
    _operator_replaces(
        memory_store,
        r,
        "keys",
        "p00",
        KeysPayload(advertised=listed or relayed, envelopes=pack_envelopes(adverts)).to_payload(),
    )
    with pytest.raises(SecureAggregationError, match=refusal):
        r.clients["p00"].share_keys()
    assert not any(memory_store.list("r1", "shares", p, sender="p00") for p in r.clients)


def test_a_share_sealed_for_another_pair_is_refused(consortium, memory_store) -> None:
    """p00 (misbehaving) seals to p01, under their pair key, a share that names p02 as its
    recipient. p01 does not keep it as p00's share for p01: it records p00's misbehaviour and
    the round completes from the others' shares."""
    r = Round(consortium, memory_store)
    r.stage("advertise")
    r.clients_do("share_keys")
    body = SharePayload(sender="p00", recipient="p02", s_share="00" * 66, b_share="00" * 66)
    key = r.clients["p01"]._share_key("p00")
    sealed = crypto.aead_encrypt(key, body.to_payload(), aead_context("shares", "r1", "p00", "p01"))
    _partner_sends(memory_store, r, "p00", "shares", "p01", sealed, replace=True)
    r.server_close()
    r.clients_do("submit")
    reasons = [x.reason for x in r.clients["p01"].guard.rejections]
    assert any("share addressed to another pair" in x for x in reasons), reasons
    assert "p00" not in r.clients["p01"]._shares
    r.server_close()
    for s in ("confirm", "unmask"):
        r.stage(s)
    _check_exact(r.server.result, r.updates, r.counts, list(r.updates), r.cfg)


def test_the_operator_is_never_one_of_its_rounds_partners(consortium) -> None:
    """The threshold t bounds how many partners may collude with the operator; an operator
    that were itself a partner of the round (holding a share of every secret) would be one
    colluder for free. A spec that lists it is refused wherever it is read."""
    from pydantic import ValidationError

    from pharmafl.secure.messages import RoundSpec

    op = consortium.operator.id
    with pytest.raises(ValidationError, match="operator cannot also be a partner"):
        RoundSpec(
            round_id="r1",
            roster_fingerprint="0" * 64,
            operator=op,
            partners=sorted(["p00", "p01", op]),
            threshold=2,
            vector_length=5,
            operator_key="0" * 64,
        )


def _lie(client: SecAggClient, owner: str, kind: int, responders: tuple[str, ...]) -> None:
    """``client`` will reveal a share (0: of s, 1: of b) of ``owner``'s secret crafted so that,
    interpolated with the other ``responders``' honest shares, the secret comes out one more
    than the truth: a well-formed secret, so only a check against what ``owner`` committed to
    can tell."""
    from pharmafl.secure.shamir import PRIME, SHARE_BYTES

    me, lam = client.spec.index(client.me), 1
    for x in (client.spec.index(p) for p in responders):
        if x != me:
            lam = lam * (0 - x) * pow(me - x, -1, PRIME) % PRIME
    shares = list(client._shares[owner])
    y = (int.from_bytes(shares[kind], "big") + pow(lam, -1, PRIME)) % PRIME
    shares[kind] = y.to_bytes(SHARE_BYTES, "big")
    client._shares[owner] = (shares[0], shares[1])


def test_a_partner_revealing_a_wrong_share_of_a_survivors_seed_aborts_the_round(
    consortium, memory_store
) -> None:
    """p01 reveals a crafted share of p00's self-mask seed. The seed rebuilt from it would
    leave p00's self mask in the sum; the operator checks it against the commitment p00 signed
    with its masked input and aborts the round, naming p00's seed, instead of applying noise
    as an aggregate."""
    r = Round(consortium, memory_store)  # n=4, t=3: the three that answer are all used
    for s in ("advertise", "share_keys", "submit", "confirm"):
        r.stage(s)
    _lie(r.clients["p01"], "p00", 1, ("p00", "p01", "p02"))
    r.clients_do("unmask", skip=("p03",))
    r.server.receive()
    with pytest.raises(SecureAggregationError, match="reconstructed seed of p00 fails its commit"):
        r.server.advance()
    assert r.server.result is None


def test_a_partner_revealing_a_wrong_share_of_a_dropouts_key_aborts_the_round(
    consortium, memory_store
) -> None:
    """p03 drops out after sharing its keys; p01 reveals a crafted share of p03's mask key.
    The key rebuilt from it would leave p03's pair masks in the sum; the operator checks it
    against p03's signed advertisement and aborts the round."""
    r = Round(consortium, memory_store)
    for s in ("advertise", "share_keys"):
        r.stage(s)
    for s in ("submit", "confirm"):
        r.stage(s, skip=("p03",))
    _lie(r.clients["p01"], "p03", 0, ("p00", "p01", "p02"))
    r.clients_do("unmask", skip=("p03",))
    r.server.receive()
    with pytest.raises(SecureAggregationError, match="reconstructed mask key of p03 is wrong"):
        r.server.advance()
    assert r.server.result is None


def test_a_partner_left_out_of_u2_sends_no_masked_input(consortium, memory_store) -> None:
    """The operator relays p00 the others' shares under a U2 that leaves p00 out (p00's masked
    input would then be summed in a round whose unmasking does not count it). p00 refuses the
    relay: no masked input leaves."""
    from pharmafl.secure import pack_envelopes
    from pharmafl.secure.messages import RelayPayload

    r = Round(consortium, memory_store)
    r.stage("advertise")
    r.clients_do("share_keys")
    r.server.receive()
    inner = [
        e
        for p in ("p01", "p02", "p03")
        for e in memory_store.list("r1", "shares", "p00")
        if e.sender == p
    ]
    r.server.advance()
    payload = RelayPayload(shared=("p01", "p02", "p03"), envelopes=pack_envelopes(inner))
    _operator_replaces(memory_store, r, "relay", "p00", payload.to_payload())
    with pytest.raises(SecureAggregationError, match="U2 is not a subset of U1"):
        r.clients["p00"].submit()
    assert not memory_store.list("r1", "masked", "operator", sender="p00")


def test_a_clip_whose_sum_could_wrap_the_ring_is_refused() -> None:
    """s partners each adding up to clip·scale must stay inside the ring's signed range, or
    an honest round's sum would wrap silently."""
    QuantizationConfig(clip=1e6, max_examples=1).check(2000)
    with pytest.raises(SecureAggregationError, match=r"clip 1000000\.0 is too large for 3000"):
        QuantizationConfig(clip=1e6, max_examples=1).check(3000)


def test_an_unmask_request_for_another_survivor_set_is_refused(consortium, memory_store):
    """p00 reveals shares only for the survivor set it confirmed: a request naming another
    (here: p01 as dropped, whose mask key p00 would then help rebuild) is refused."""
    from pharmafl.secure import pack_envelopes

    r = Round(consortium, memory_store)
    for s in ("advertise", "share_keys", "submit"):
        r.stage(s)
    r.clients_do("confirm")
    confirmations = [
        e for p in r.clients for e in memory_store.list("r1", "confirm", "operator", sender=p)
    ]
    request = UnmaskRequestPayload(
        survivors=("p00", "p02", "p03"), confirmations=pack_envelopes(confirmations)
    )
    _operator_replaces(memory_store, r, "unmask_request", "p00", request.to_payload())
    with pytest.raises(SecureAggregationError, match="the unmask request names another U3"):
        r.clients["p00"].unmask()
    assert not memory_store.list("r1", "unmask", "operator", sender="p00")


@pytest.mark.parametrize(
    ("field", "value", "refusal"),
    [
        ("operator", "someone-else", "the spec names another operator"),
        ("round_id", "r2", "the spec names another round"),
        ("roster_fingerprint", "0" * 64, "unpinned roster"),
        ("partners", ("p00", "p01", "p02", "p03", "zz-mallory"), "invites non-partners"),
        ("partners", ("p01", "p02", "p03"), "I am not invited"),
    ],
    ids=["operator", "round", "roster", "non-partner", "not-me"],
)
def test_a_spec_for_another_operator_round_or_roster_is_refused_before_any_key_leaves(
    consortium, memory_store, field, value, refusal
) -> None:
    """The roster's operator signs, for round r1, a spec that names another party as the
    round's operator (so that the spec's own checks, "the operator is not a partner" first,
    are made against someone else), another round (whose keys and ciphertexts are bound to
    another id), another roster (other members, another policy), or a party the roster does
    not list (whose keys nobody could check). p00 refuses it and advertises no keys."""
    from pharmafl.secure.messages import RoundSpec

    r = Round(consortium, memory_store)
    (real,) = memory_store.list("r1", "round_spec", "p00")
    memory_store.fs.rm(f"{memory_store.root}/{memory_store.key_of(real)}")
    spec = RoundSpec.from_payload(real.payload).model_copy(update={field: value})
    _operator_replaces(memory_store, r, "round_spec", "p00", spec.to_payload())
    with pytest.raises(SecureAggregationError, match=refusal):
        r.clients["p00"].advertise()
    assert not memory_store.list("r1", "advertise", "operator", sender="p00")


def test_the_simulated_round_refuses_a_dropout_it_cannot_stage() -> None:
    updates, counts = _inputs(3)
    for bad in ({"p09": "submit"}, {"p00": "lunch"}):
        with pytest.raises(SecureAggregationError, match="bad dropout"):
            run_secagg_round(updates, counts, dropouts=bad)


def test_an_update_of_another_length_than_the_rounds_is_never_masked(
    consortium, memory_store
) -> None:
    """The spec's vector length and the partner's trunk disagree (another plan, a stale
    trunk): the partner stops with both numbers before masking, and nothing leaves."""
    r = Round(consortium, memory_store)
    r.clients["p00"].provide_input(np.zeros(P + 1), 10)
    for s in ("advertise", "share_keys"):
        r.stage(s)
    with pytest.raises(SecureAggregationError, match=f"update has {P + 1} entries, the round"):
        r.clients["p00"].submit()
    assert not memory_store.list("r1", "masked", "operator", sender="p00")


def test_an_unmask_response_revealing_a_survivors_mask_key_share_is_refused(
    consortium, memory_store
) -> None:
    """p01 (misbehaving, or driven by a colluding operator) reveals its share of survivor
    p00's mask key s instead of its b-share. The operator must never take both kinds of share
    of one partner (with t of each it could unmask that partner's input alone), so it refuses
    the whole response, keeps nothing of it, and unmasks from the other three."""
    from pharmafl.secure.messages import UnmaskPayload

    r = Round(consortium, memory_store)  # n=4, t=3
    for s in ("advertise", "share_keys", "submit", "confirm"):
        r.stage(s)
    cl = r.clients["p01"]
    survivors = ("p00", "p02", "p03")
    body = UnmaskPayload(
        b_shares={u: cl._shares[u][1].hex() for u in ("p02", "p03")},
        s_shares={"p00": cl._shares["p00"][0].hex()},
    ).to_payload()
    r.clients_do("unmask", skip=("p01",))
    _unmask_response(memory_store, r, "p01", body)
    r.server_close()
    assert any("reveals a share of the wrong kind" in x for x in r.reasons()), r.reasons()
    assert r.server.result.report.responded == survivors
    _check_exact(r.server.result, r.updates, r.counts, list(r.updates), r.cfg)


@pytest.mark.parametrize(
    ("announced", "refusal"),
    [
        (("p01", "p02", "p03"), "did not accept my masked input"),
        (("p00", "p01"), "only 2 masked inputs arrived"),
    ],
    ids=["without-me", "below-t"],
)
def test_a_partner_told_an_untrustworthy_survivor_set_confirms_nothing(
    consortium, memory_store, announced, refusal
) -> None:
    """p00 sent its masked input; the operator announces a survivor set without p00 (having
    perhaps summed p00's input all the same: confirming would have the others reveal p00's
    mask key as a dropout's while its input may sit in the sum), or one of fewer than t
    (an aggregate of too few inputs to hide p00's). p00 stops, and signs no confirmation."""
    from pharmafl.secure.messages import SurvivorsPayload

    r = Round(consortium, memory_store)
    for s in ("advertise", "share_keys", "submit"):
        r.stage(s)
    _operator_replaces(
        memory_store, r, "survivors", "p00", SurvivorsPayload(survivors=announced).to_payload()
    )
    with pytest.raises(SecureAggregationError, match=refusal):
        r.clients["p00"].confirm()
    assert not memory_store.list("r1", "confirm", "operator", sender="p00")


def _relay_to_p00(r: Round, memory_store, shared: tuple[str, ...], senders: tuple[str, ...]):
    """Replace the operator's relay to p00 by one announcing U2 = ``shared`` and carrying the
    shares of ``senders`` only."""
    from pharmafl.secure import pack_envelopes
    from pharmafl.secure.messages import RelayPayload

    inner = [e for e in memory_store.list("r1", "shares", "p00") if e.sender in senders]
    (real,) = memory_store.list("r1", "relay", "p00")
    memory_store.fs.rm(f"{memory_store.root}/{memory_store.key_of(real)}")
    payload = RelayPayload(shared=shared, envelopes=pack_envelopes(inner))
    _operator_replaces(memory_store, r, "relay", "p00", payload.to_payload())


@pytest.mark.parametrize(
    ("shared", "senders", "refusal"),
    [
        (("p00", "p01", "p02", "p03"), ("p01", "p02"), "the relay misses shares of U2 members"),
        (("p00", "p01"), ("p01",), "only 2 partners shared keys"),
        (("p00", "p01", "p02"), ("p01", "p02", "p03"), "wrong sender"),
    ],
    ids=["missing-share", "below-t", "share-from-outside-u2"],
)
def test_a_relay_that_cannot_unmask_gets_no_masked_input(
    consortium, memory_store, shared, senders, refusal
) -> None:
    """The operator relays p00 a U2 without the shares of one of its members (p00 could not
    help unmask that member if it dropped out), a U2 of fewer than t partners (a round that
    cannot unmask, in which p00's input would be masked only by pairs with the operator's
    choice of peers), or shares from a partner outside the U2 it announces. p00 sends no
    masked input."""
    r = Round(consortium, memory_store)  # n=4, t=3
    r.stage("advertise")
    r.clients_do("share_keys")
    r.server_close()
    _relay_to_p00(r, memory_store, shared, senders)
    with pytest.raises(SecureAggregationError, match=refusal):
        r.clients["p00"].submit()
    assert not memory_store.list("r1", "masked", "operator", sender="p00")


def test_a_survivor_set_beyond_u2_is_never_confirmed(consortium, memory_store) -> None:
    """The operator announces U3 with a partner that is not in U2 (one whose shares p00 never
    held). p00 signs no confirmation."""
    from pharmafl.secure.messages import SurvivorsPayload

    r = Round(consortium, memory_store)
    r.stage("advertise")
    r.stage("share_keys", skip=("p03",))  # U2 = p00, p01, p02
    r.stage("submit", skip=("p03",))
    _operator_replaces(
        memory_store,
        r,
        "survivors",
        "p00",
        SurvivorsPayload(survivors=("p00", "p01", "p02", "p03")).to_payload(),
    )
    with pytest.raises(SecureAggregationError, match="U3 is not a subset of U2"):
        r.clients["p00"].confirm()
    assert not memory_store.list("r1", "confirm", "operator", sender="p00")


def test_only_the_rosters_operator_can_run_a_round(consortium, memory_store) -> None:
    """A partner (or anyone with another key) cannot open a round as the operator."""
    for who in (consortium.partners["p00"], Identity.generate("operator", "operator")):
        with pytest.raises(SecureAggregationError, match="is not the operator that signed"):
            SecAggServer(who, consortium.roster, memory_store, "r1", vector_length=P)


def test_a_masked_input_swapped_in_the_store_before_its_group_is_taken_out_aborts(
    memory_store,
) -> None:
    """With valuation groups, a group that lost a member after submitting is taken out of
    the sum again: the operator re-reads its members' masked inputs from the store and
    subtracts them. p04 (misbehaving, with the store's help) signs a second input under the
    same nonce, and the store serves that one on the re-read. Subtracting it would leave
    noise in the aggregate; the operator checks it against the digest it summed, and aborts."""
    from pharmafl.common.io import sha256_bytes
    from pharmafl.secure import SecurityPolicy, build_roster

    from .conftest import Consortium

    operator = Identity.generate("operator", "operator")
    names = tuple(f"p{i:02d}" for i in range(6))  # groups p00-p02, p03-p05
    partners = {p: Identity.generate(p) for p in names}
    policy = SecurityPolicy(valuation_groups=(names[:3], names[3:]))
    roster = build_roster(
        operator, [p.public for p in partners.values()], consortium="test", policy=policy
    )
    r = Round(Consortium(operator, partners, roster), memory_store)  # n=6, t=4
    for s in ("advertise", "share_keys"):
        r.stage(s)
    r.clients_do("submit", skip=("p03",))  # the 2nd group loses p03: p04, p05 come out
    r.server.receive()
    (real,) = memory_store.list("r1", "masked", "operator", sender="p04")
    other = bytes(len(real.payload))
    swapped = real.model_copy(update={"payload": other, "payload_sha256": sha256_bytes(other)})
    swapped = swapped.model_copy(
        update={"signature": partners["p04"].sign(swapped.signed_bytes()).hex()}
    )
    memory_store.fs.pipe_file(
        f"{memory_store.root}/{memory_store.key_of(real)}", swapped.to_bytes()
    )
    with pytest.raises(
        SecureAggregationError, match="the masked input of p04 changed in the store"
    ):
        r.server.advance()
    assert r.server.result is None


@pytest.mark.parametrize(
    "partners", [["p01", "p00", "p02"], ["p00", "p00", "p01"]], ids=["unsorted", "repeated"]
)
def test_a_spec_with_unsorted_or_repeated_partners_is_refused(partners) -> None:
    """Share indices are positions in the sorted partner list: a list out of order or with a
    partner twice would give two partners one index (or one partner two)."""
    from pydantic import ValidationError

    from pharmafl.secure.messages import RoundSpec

    with pytest.raises(ValidationError, match="party ids must be unique and sorted"):
        RoundSpec(
            round_id="r1",
            roster_fingerprint="0" * 64,
            operator="operator",
            partners=partners,
            threshold=2,
            vector_length=5,
            operator_key="0" * 64,
        )


def test_a_spec_whose_ring_cannot_hold_the_sum_is_refused() -> None:
    """n partners each weighing up to max_examples must fit the ring's signed range, or the
    count (and the weighted sum) would wrap: such a spec is invalid wherever it is read."""
    from pharmafl.secure.messages import RoundSpec

    with pytest.raises(SecureAggregationError, match="exceeds the 32-bit ring"):
        RoundSpec(
            round_id="r1",
            roster_fingerprint="0" * 64,
            operator="operator",
            partners=["p00", "p01", "p02", "p03"],
            threshold=3,
            vector_length=5,
            operator_key="0" * 64,
            quantization=QuantizationConfig(max_examples=1 << 30),
        )


def test_only_a_partner_of_the_roster_can_take_part(consortium, memory_store) -> None:
    with pytest.raises(SecureAggregationError, match="'operator' is not a partner in the roster"):
        SecAggClient(consortium.operator, consortium.roster, memory_store, "r1")


def test_an_unmask_payload_never_holds_both_shares_of_one_partner() -> None:
    from pydantic import ValidationError

    from pharmafl.secure.messages import UnmaskPayload

    with pytest.raises(ValidationError, match="never revealed together"):
        UnmaskPayload(b_shares={"p00": "00" * 66}, s_shares={"p00": "00" * 66})


def test_too_few_shares_of_a_survivors_seed_abort_the_round_by_name(
    consortium, memory_store
) -> None:
    """Three partners answer the unmask request (t = 3), and p01 leaves out its share of
    p00's seed. The operator cannot rebuild p00's self mask: it aborts the round naming p00
    (and clears the masked sum) rather than fail inside the interpolation."""
    from pharmafl.secure.messages import UnmaskPayload

    r = Round(consortium, memory_store)  # n=4, t=3
    for s in ("advertise", "share_keys", "submit", "confirm"):
        r.stage(s)
    cl = r.clients["p01"]
    body = UnmaskPayload(
        b_shares={u: cl._shares[u][1].hex() for u in ("p01", "p02", "p03")}, s_shares={}
    ).to_payload()
    r.clients_do("unmask", skip=("p01", "p03"))
    _unmask_response(memory_store, r, "p01", body)
    r.server.receive()
    with pytest.raises(SecureAggregationError, match="too few shares to unmask p00"):
        r.server.advance()
    assert r.server.result is None and r.server.stage == "aborted"


def test_a_confirmation_of_another_survivor_set_is_not_counted_by_the_operator(
    consortium, memory_store
) -> None:
    """p01 (misbehaving) confirms a survivor set other than the one announced. The operator
    does not count it (it would otherwise forward it as one of the t confirmations every
    partner checks) and unmasks with the other three."""
    from pharmafl.secure.messages import SurvivorsPayload

    r = Round(consortium, memory_store)
    for s in ("advertise", "share_keys", "submit"):
        r.stage(s)
    r.clients_do("confirm", skip=("p01",))
    confirmed = SurvivorsPayload(survivors=("p00", "p01", "p02")).to_payload()
    _partner_sends(memory_store, r, "p01", "confirm", "operator", confirmed)
    r.server_close()
    assert "confirms a different survivor set" in r.server_reasons()
    assert "p01" not in r.server._confirms


@pytest.mark.parametrize(
    ("variant", "refusal"),
    [("copied", "advertised keys are reused"), ("forged", "bad signature")],
)
def test_keys_in_p01s_name_that_p00_cannot_trust_stop_the_round(
    consortium, memory_store, variant, refusal
) -> None:
    """p00 gets a key list in which p01's advertisement is one it must not use:

    - *copied*: p01 (misbehaving) advertises p00's public keys as its own, signed by p01.
      Shares the others seal to "p01" would open with p00's key, and the pair masks of p00
      and p01 would cancel against themselves. p00 checks that every key is distinct.
    - *forged*, the man in the middle: the operator puts keys it made under p01's name,
      signed with a key that is not p01's roster key. With them it could open the shares
      p00 seals to "p01" and strip the pair masks p00 adds for p01. p00 checks every
      advertisement's signature against the roster.

    Either way p00 sends no share."""
    from pharmafl.secure import pack_envelopes
    from pharmafl.secure.messages import AdvertisePayload, KeysPayload

    r = Round(consortium, memory_store)
    r.clients_do("advertise")
    r.server.receive()
    adverts = {e.sender: e for e in memory_store.list("r1", "advertise", "operator")}
    r.server.advance()
    if variant == "copied":
        signer, payload = consortium.partners["p01"], adverts["p00"].payload
    else:
        genuine = AdvertisePayload.from_payload(adverts["p01"].payload)
        fresh = {k: crypto.x25519_generate()[1].hex() for k in ("c_pk", "s_pk")}
        signer, payload = Identity.generate("p01"), genuine.model_copy(update=fresh).to_payload()
    adverts["p01"] = seal(
        signer, round_id="r1", kind="advertise", recipient="operator", payload=payload
    )
    keys = KeysPayload(
        advertised=tuple(sorted(adverts)), envelopes=pack_envelopes(list(adverts.values()))
    )
    _operator_replaces(memory_store, r, "keys", "p00", keys.to_payload())
    with pytest.raises(SecureAggregationError, match=refusal):
        r.clients["p00"].share_keys()
    assert not any(memory_store.list("r1", "shares", p, sender="p00") for p in r.clients)


@pytest.mark.parametrize(
    ("sender", "absent", "reason"),
    [("p00", (), "shares addressed to the sender itself"), ("p03", ("p03",), "wrong sender")],
    ids=["to-itself", "outside-u1"],
)
def test_share_messages_outside_the_pairs_of_u1_are_refused(
    consortium, memory_store, sender, absent, reason
) -> None:
    """p00 (misbehaving) also sends a share message to itself, or p03, which advertised no
    keys (it is not in U1), sends one to p00. The operator keeps one share message per
    ordered pair of different members of U1: these are refused by name, the round completes
    exactly with U1, and a finished round takes nothing more."""
    r = Round(consortium, memory_store)
    r.stage("advertise", skip=absent)
    r.clients_do("share_keys", skip=absent)
    _partner_sends(memory_store, r, sender, "shares", "p00", b"not a pair of U1")
    r.server_close()
    assert any(reason in x for x in r.server_reasons()), r.server_reasons()
    for s in ("submit", "confirm", "unmask"):
        r.stage(s, skip=absent)
    survivors = [p for p in r.updates if p not in absent]
    _check_exact(r.server.result, r.updates, r.counts, survivors, r.cfg)
    with pytest.raises(SecureAggregationError, match="has no open stage"):
        r.server.advance()


@pytest.mark.parametrize(
    ("dropout", "third", "confirms", "refusal"),
    [
        ((), "p01", ("p01", "p02", "p03"), "confirms a different survivor set"),
        (("p03",), "p03", None, "wrong sender"),
    ],
    ids=["another-set", "from-a-dropout"],
)
def test_an_unmask_request_counts_only_confirmations_of_u3_by_u3(
    consortium, memory_store, dropout, third, confirms, refusal
) -> None:
    """Bonawitz et al.'s consistency check. The operator has two genuine confirmations of U3
    (p00's, p02's) and makes up the t-th with one it must not count: p01's honest, signed
    confirmation of another set U3' it was shown (counted, the operator could collect
    b-shares of p00 from one view and s-shares of p00 from the other, and unmask p00's input
    alone), or one that p03, a colluding dropout outside U3, signed for U3. p00 refuses the
    request: it reveals nothing."""
    from pharmafl.secure import pack_envelopes
    from pharmafl.secure.messages import SurvivorsPayload

    r = Round(consortium, memory_store)  # n=4, t=3
    for s in ("advertise", "share_keys"):
        r.stage(s)
    r.stage("submit", skip=dropout)
    r.clients_do("confirm", skip=("p01", *dropout))
    u3 = r.clients["p00"].u3
    assert len(u3) == 4 - len(dropout)
    own = [
        e for p in ("p00", "p02") for e in memory_store.list("r1", "confirm", "operator", sender=p)
    ]
    made_up = seal(
        consortium.partners[third],
        round_id="r1",
        kind="confirm",
        recipient="operator",
        payload=SurvivorsPayload(survivors=confirms or u3).to_payload(),
    )
    request = UnmaskRequestPayload(survivors=u3, confirmations=pack_envelopes([*own, made_up]))
    _operator_replaces(memory_store, r, "unmask_request", "p00", request.to_payload())
    with pytest.raises(SecureAggregationError, match=refusal):
        r.clients["p00"].unmask()
    assert not memory_store.list("r1", "unmask", "operator", sender="p00")
