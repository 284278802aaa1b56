"""The partner side of secure aggregation: five stages, each reading one operator message.

A :class:`SecAggClient` talks to the operator only through the exchange store, so every
partner can run in its own process or site. Each stage method returns ``False`` while the
operator's message for it is not in the store yet, ``True`` once the stage is done;
:meth:`SecAggClient.run` polls them to the end. Per-round secrets (X25519 keys, the
self-mask seed, the shares received) live only in memory and are dropped at the end.

Checks a partner makes before revealing anything (Bonawitz et al., CCS 2017, §4):
the round spec names the pinned roster and a threshold of at least a majority; every
advertised key is signed by its owner; at least t partners remain at every stage; the
survivor set U3 is signed by at least t partners (consistency check); and for each peer
only one kind of share is ever revealed (its self-seed share if it survived, its mask-key
share if it dropped), so a late input can never be unmasked.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pharmafl.common import crypto
from pharmafl.common.errors import (
    EnvelopeRejectedError,
    PolicyViolationError,
    SecureAggregationError,
)
from pharmafl.secure import masking, shamir
from pharmafl.secure._timing import StageStats, now
from pharmafl.secure.envelope import (
    Envelope,
    EnvelopeGuard,
    EnvelopeKind,
    seal,
    unpack_envelopes,
)
from pharmafl.secure.exchange import BROADCAST, open_payload
from pharmafl.secure.identity import Identity, Roster
from pharmafl.secure.messages import (
    AdvertisePayload,
    KeysPayload,
    RelayPayload,
    RoundSpec,
    SharePayload,
    SurvivorsPayload,
    UnmaskPayload,
    UnmaskRequestPayload,
    aead_context,
    min_threshold,
)
from pharmafl.secure.quantize import MAX_CLAMPED_FRACTION, quantize
from pharmafl.secure.store import ExchangeStore

logger = logging.getLogger(__name__)


#: Partner stages, in order.
CLIENT_STAGES: tuple[str, ...] = ("advertise", "share_keys", "submit", "confirm", "unmask")
#: Seconds between two looks for the operator's abort notice while a partner waits.
ABORT_CHECK_S = 1.0
#: Signed header of an abort notice: the SHA-256 of the round spec it aborts.
ROUND_SPEC_HEADER = "round_spec_sha256"


@dataclass
class ClientStats(StageStats):
    """Where a partner's protocol time went (seconds per stage, mask throughput)."""

    mask_bytes: int = 0
    mask_seconds: float = 0.0
    mask_cpu_seconds: float = 0.0
    upload_bytes: int = 0
    masked_envelope_bytes: int = 0


class SecAggClient:
    """One partner in one secure-aggregation round.

    Parameters
    ----------
    identity
        The partner's signing identity (must be a partner in ``roster``).
    roster
        The consortium roster; it is verified here (and against ``pinned_fingerprint``).
    store
        The exchange store shared with the operator.
    round_id
        The round to take part in; envelopes of any other round are refused.
    pinned_fingerprint
        The roster fingerprint this partner pinned (recommended).
    min_threshold
        Lowest threshold this partner accepts (default: a strict majority of the round).
    rng
        Generator for differential-privacy noise (only used when the round has DP).
    before_reveal
        Called with the confirmed contributors U3 right before this partner reveals its
        shares (stage 4), after which the operator may hold their aggregate: a partner
        records that durably and never contributes the same update to another aggregate.
    """

    def __init__(
        self,
        identity: Identity,
        roster: Roster,
        store: ExchangeStore,
        round_id: str,
        *,
        pinned_fingerprint: str | None = None,
        min_threshold: int | None = None,
        rng: np.random.Generator | None = None,
        before_reveal: Callable[[tuple[str, ...]], None] | None = None,
    ) -> None:
        self.roster = roster.verify(pinned_fingerprint)
        if roster.member(identity.id).role != "partner":
            raise SecureAggregationError(f"{identity.id!r} is not a partner in the roster.")
        if roster.member(identity.id).public_key != identity.public.public_key:
            raise SecureAggregationError(
                f"the roster holds a different public key for {identity.id!r}.",
                fix="load the key file whose .pub.json went into the roster.",
            )
        self.identity = identity
        self.me = identity.id
        self.store = store
        self.round_id = round_id
        self.operator = roster.operator
        self.guard = EnvelopeGuard(roster, me=self.me, round_id=round_id)
        self.stats = ClientStats()
        self.stage = "advertise"
        self._min_threshold = min_threshold
        self._rng = rng
        self._before_reveal = before_reveal
        self._skip: set[str] = set()
        self._abort_checked_at = -math.inf
        self._input: tuple[np.ndarray, int] | None = None
        self.spec: RoundSpec | None = None
        self._c_sk = self._s_sk = self._b = b""
        self._my_advert: AdvertisePayload | None = None
        self._adverts: dict[str, AdvertisePayload] = {}
        self._shares: dict[str, tuple[bytes, bytes]] = {}  # owner -> (s share, b share)
        self.u1: tuple[str, ...] = ()
        self.u2: tuple[str, ...] = ()
        self.u3: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"SecAggClient(me={self.me!r}, round={self.round_id!r}, stage={self.stage!r})"

    # --- plumbing ------------------------------------------------------------------------

    def _fetch(self, kind: EnvelopeKind, recipient: str | None = None) -> Envelope | None:
        """The first valid operator envelope of ``kind`` addressed to me (or to
        ``recipient``, e.g. the consortium broadcast), or None."""
        for key in self.store.keys(self.round_id, kind, recipient or self.me):
            if key in self._skip:
                continue
            self._skip.add(key)  # each stored file is judged once
            try:
                env = self.store.get(key)
            except EnvelopeRejectedError as exc:
                self.guard.reject(None, exc.message, kind=kind)
                continue
            try:
                return self.guard.check(
                    env, kind=kind, senders={self.operator}, recipient=recipient
                )
            except EnvelopeRejectedError:
                continue
        return None

    def _send(self, kind: EnvelopeKind, recipient: str, payload: bytes, **headers: str) -> None:
        env = seal(
            self.identity,
            round_id=self.round_id,
            kind=kind,
            recipient=recipient,
            payload=payload,
            headers=headers,
        )
        self.store.put(env)
        self.stats.upload_bytes += len(payload)
        if kind == "masked":
            self.stats.masked_envelope_bytes = len(env.to_bytes())

    def _need(self, cond: bool, what: str) -> None:
        if not cond:
            raise SecureAggregationError(
                f"{self.me} leaves round {self.round_id} at stage {self.stage}: {what}.",
                fix="the round aborts for this partner; the operator starts a new round.",
            )

    def _spec(self) -> RoundSpec:
        assert self.spec is not None
        return self.spec

    def _timed(self, stage: str, start: tuple[float, float]) -> None:
        self.stats.record(stage, start)

    # --- stages --------------------------------------------------------------------------

    def _check_policy(self, spec: RoundSpec) -> None:
        """Refuse a round that breaks the consortium's signed security policy."""
        policy = self.roster.security_policy
        n = len(spec.partners)
        violation = (
            policy.violation(n, spec.threshold)
            or policy.dp_violation(spec.dp, n)
            or policy.ring_violation(spec.quantization.ring_bits)
            or policy.groups_violation(spec.partners, "round's invited partners")
        )
        self._refuse_if(
            violation,
            "the operator must follow the policy signed in the roster "
            "every partner pinned (pharmafl.secure.policy).",
        )

    def _refuse_if(self, violation: str | None, fix: str) -> None:
        if violation is not None:
            logger.warning("%s refuses round %s: %s", self.me, self.round_id, violation)
            raise PolicyViolationError(
                f"{self.me} refuses round {self.round_id}: {violation}.", fix=fix
            )

    def advertise(self) -> bool:
        """Stage 0: check the round spec, advertise two fresh signed X25519 public keys."""
        env = self._fetch("round_spec")
        if env is None:
            return False
        start = now()
        spec = RoundSpec.from_payload(env.payload)
        n = len(spec.partners)
        floor = self._min_threshold if self._min_threshold is not None else min_threshold(n)
        self._need(spec.round_id == self.round_id, "the spec names another round")
        self._need(spec.roster_fingerprint == self.roster.fingerprint(), "unpinned roster")
        self._need(spec.operator == self.operator, "the spec names another operator")
        self._need(self.me in spec.partners, "I am not invited")
        self._need(set(spec.partners) <= set(self.roster.partners), "the spec invites non-partners")
        self._need(spec.threshold >= floor, f"threshold {spec.threshold} is below {floor}")
        self._check_policy(spec)
        self.spec = spec
        self._c_sk, c_pk = crypto.x25519_generate()
        self._s_sk, s_pk = crypto.x25519_generate()
        self._my_advert = AdvertisePayload(
            c_pk=c_pk.hex(), s_pk=s_pk.hex(), spec_sha256=spec.digest()
        )
        self._send("advertise", self.operator, self._my_advert.to_payload())
        self.stage = "share_keys"
        self._timed("advertise", start)
        return True

    def share_keys(self) -> bool:
        """Stage 1: verify U1's signed keys; send Shamir shares of s_u and b_u to each peer."""
        env = self._fetch("keys")
        if env is None:
            return False
        start = now()
        spec = self._spec()
        doc = KeysPayload.from_payload(env.payload)
        adverts: dict[str, AdvertisePayload] = {}
        for inner in unpack_envelopes(doc.envelopes):
            self.guard.check(
                inner, kind="advertise", senders=spec.partners, recipient=self.operator
            )
            adverts[inner.sender] = AdvertisePayload.from_payload(inner.payload)
        u1 = tuple(sorted(adverts))
        self._need(u1 == doc.advertised, "the key list does not match its signed adverts")
        self._need(adverts.get(self.me) == self._my_advert, "my advertised keys were altered")
        # An operator that sent one partner another clip, ring or DP than the rest would
        # decode that partner's own update from the "sum": every spec must be the same.
        self._need(
            all(a.spec_sha256 == spec.digest() for a in adverts.values()),
            "partners were sent different round specs",
        )
        self._need(len(u1) >= spec.threshold, f"only {len(u1)} partners advertised keys")
        self._need(
            len({a.c_pk for a in adverts.values()} | {a.s_pk for a in adverts.values()})
            == 2 * len(u1),
            "advertised keys are reused",
        )
        self.u1, self._adverts = u1, adverts
        self._b = crypto.random_bytes(shamir.SECRET_BYTES)
        xs = [spec.index(v) for v in u1]
        s_shares = shamir.split(self._s_sk, spec.threshold, xs)
        b_shares = shamir.split(self._b, spec.threshold, xs)
        for v in u1:
            s_v, b_v = s_shares[spec.index(v)], b_shares[spec.index(v)]
            if v == self.me:
                self._shares[v] = (s_v, b_v)
                continue
            body = SharePayload(
                sender=self.me, recipient=v, s_share=s_v.hex(), b_share=b_v.hex()
            ).to_payload()
            key = self._share_key(v)
            sealed = crypto.aead_encrypt(
                key, body, aead_context("shares", self.round_id, self.me, v)
            )
            self._send("shares", v, sealed)
        self.stage = "submit"
        self._timed("share_keys", start)
        return True

    def _share_key(self, peer: str) -> bytes:
        shared = crypto.x25519_exchange(self._c_sk, bytes.fromhex(self._adverts[peer].c_pk))
        lo, hi = sorted((self.me, peer))
        return masking.derive_key("share-key", shared, self.round_id, lo, hi)

    def _sealed_count(self, num_examples: int) -> str:
        """My example count, AEAD-encrypted (hex) to the operator's key of this round."""
        shared = crypto.x25519_exchange(self._c_sk, bytes.fromhex(self._spec().operator_key))
        key = masking.derive_key("count-key", shared, self.round_id, self.me, self.operator)
        body = f"{int(num_examples):020d}".encode("ascii")  # fixed width: its size says nothing
        # (the operator accepts exactly 20 digits, pharmafl.secure.server._take_masked)
        ad = aead_context("count", self.round_id, self.me, self.operator)
        return crypto.aead_encrypt(key, body, ad).hex()

    def provide_input(self, update: np.ndarray, num_examples: int) -> None:
        """Set the trunk update (float, ``vector_length`` entries) and its example count."""
        self._input = (update, int(num_examples))

    def submit(self) -> bool:
        """Stage 2: take the shares relayed to me, then send my masked, quantized update."""
        if self._input is None:
            return False
        env = self._fetch("relay")
        if env is None:
            return False
        self._stop_if_aborted(force=True)  # training may have outlasted the round
        start = now()
        spec = self._spec()
        doc = RelayPayload.from_payload(env.payload)
        u2 = doc.shared
        self._need(self.me in u2 and set(u2) <= set(self.u1), "U2 is not a subset of U1")
        self._need(len(u2) >= spec.threshold, f"only {len(u2)} partners shared keys")
        got: set[str] = set()
        for inner in unpack_envelopes(doc.envelopes):
            self.guard.check(inner, kind="shares", senders=set(u2) - {self.me})
            got.add(inner.sender)
            try:
                body = crypto.aead_decrypt(
                    self._share_key(inner.sender),
                    inner.payload,
                    aead_context("shares", self.round_id, inner.sender, self.me),
                )
                share = SharePayload.from_payload(body)
                if (share.sender, share.recipient) != (inner.sender, self.me):
                    raise SecureAggregationError("share addressed to another pair")
            except SecureAggregationError as exc:
                # A signed envelope whose ciphertext fails: the sender misbehaved. Keep going
                # without its shares (others hold enough); record why.
                self.guard.reject(inner, f"cannot decrypt shares ({exc.message})")
                continue
            self._shares[inner.sender] = (
                bytes.fromhex(share.s_share),
                bytes.fromhex(share.b_share),
            )
        self._need(got == set(u2) - {self.me}, "the relay misses shares of U2 members")
        self.u2 = u2
        update, num_examples = self._input
        self._need(
            int(np.size(update)) == spec.vector_length,
            f"update has {np.size(update)} entries, the round expects {spec.vector_length}",
        )
        vec = quantize(
            update,
            num_examples,
            spec.quantization,
            len(spec.partners),
            dp=spec.dp,
            rng=self._rng,
            max_clamped=MAX_CLAMPED_FRACTION,
        )
        masks = [(masking.self_mask_key(self._b, self.round_id, self.me), 1)]
        for v in u2:
            if v != self.me:
                shared = crypto.x25519_exchange(self._s_sk, bytes.fromhex(self._adverts[v].s_pk))
                key = masking.pair_mask_key(shared, self.round_id, self.me, v)
                masks.append((key, masking.pair_sign(self.me, v)))
        cpu = time.thread_time()
        nbytes, seconds = masking.apply_masks(vec, masks)
        self.stats.mask_cpu_seconds += time.thread_time() - cpu
        self.stats.mask_bytes += nbytes
        self.stats.mask_seconds += seconds
        self._send(
            "masked",
            self.operator,
            vec.tobytes(),
            dtype=vec.dtype.str,
            length=str(vec.size),
            seed_commitment=masking.seed_commitment(self._b, self.round_id, self.me),
            # Signed, and sealed to the operator's round key: the operator checks the
            # decoded sum against it; the store never reads a count.
            sealed_examples=self._sealed_count(num_examples),
        )
        self._input = None
        self.stage = "confirm"
        self._timed("submit", start)
        return True

    def confirm(self) -> bool:
        """Stage 3 (consistency check): sign the survivor set U3 the operator announced."""
        env = self._fetch("survivors")
        if env is None:
            return False
        start = now()
        spec = self._spec()
        doc = SurvivorsPayload.from_payload(env.payload)
        u3 = doc.survivors
        self._need(set(u3) <= set(self.u2), "U3 is not a subset of U2")
        self._need(self.me in u3, "the operator did not accept my masked input")
        self._need(len(u3) >= spec.threshold, f"only {len(u3)} masked inputs arrived")
        policy = self.roster.security_policy
        fewest = policy.fewest_participants()
        too_few = (  # the aggregate would hold too few inputs to hide mine
            f"{len(u3)} contributors, the consortium's policy needs at least {fewest}"
            if len(u3) < fewest
            else None
        )
        self._refuse_if(
            too_few
            # too few contributors to carry the promised noise
            or (policy.dp_violation(spec.dp, len(u3)) if spec.dp is not None else None)
            or policy.groups_violation(u3, "round's contributors"),
            "the round needs more surviving partners (whole valuation groups, where the "
            "policy declares them).",
        )
        self.u3 = u3
        self._send("confirm", self.operator, SurvivorsPayload(survivors=u3).to_payload())
        self.stage = "unmask"
        self._timed("confirm", start)
        return True

    def unmask(self) -> bool:
        """Stage 4: check ≥ t confirmations of U3, reveal one kind of share per peer."""
        env = self._fetch("unmask_request")
        if env is None:
            return False
        start = now()
        spec = self._spec()
        doc = UnmaskRequestPayload.from_payload(env.payload)
        self._need(doc.survivors == self.u3, "the unmask request names another U3")
        confirmed: set[str] = set()
        for inner in unpack_envelopes(doc.confirmations):
            self.guard.check(inner, kind="confirm", senders=self.u3, recipient=self.operator)
            if SurvivorsPayload.from_payload(inner.payload).survivors != self.u3:
                raise self.guard.reject(inner, "confirms a different survivor set")
            confirmed.add(inner.sender)
        self._need(len(confirmed) >= spec.threshold, f"only {len(confirmed)} confirmations")
        survivors = set(self.u3)
        b_shares = {u: s[1].hex() for u, s in self._shares.items() if u in survivors}
        s_shares = {
            u: s[0].hex() for u, s in self._shares.items() if u in self.u2 and u not in survivors
        }
        body = UnmaskPayload(b_shares=b_shares, s_shares=s_shares).to_payload()
        if self._before_reveal is not None:  # e.g. record "revealed" durably first
            self._before_reveal(tuple(self.u3))
        shared = crypto.x25519_exchange(self._c_sk, bytes.fromhex(spec.operator_key))
        key = masking.derive_key("unmask-key", shared, self.round_id, self.me, self.operator)
        sealed = crypto.aead_encrypt(
            key, body, aead_context("unmask", self.round_id, self.me, self.operator)
        )
        self._send("unmask", self.operator, sealed)
        self._forget()
        self.stage = "done"
        self._timed("unmask", start)
        return True

    def _forget(self) -> None:
        self._c_sk = self._s_sk = self._b = b""
        self._shares.clear()

    # --- drivers -------------------------------------------------------------------------

    def step(self) -> bool:
        """Run the current stage if its operator message is there; True if it progressed.

        Raises
        ------
        SecureAggregationError
            If the operator announced that the round aborted: looked for while waiting (at
            most every :data:`ABORT_CHECK_S`) and always right before the masked input leaves.
        """
        stage = {
            "advertise": self.advertise,
            "share_keys": self.share_keys,
            "submit": self.submit,
            "confirm": self.confirm,
            "unmask": self.unmask,
        }.get(self.stage)
        if stage is not None and stage():
            return True
        self._stop_if_aborted()
        return False

    def _stop_if_aborted(self, force: bool = False) -> None:
        """Leave the round if the operator's signed abort notice for this round
        (``round_aborted``, sealed to its participants, bound to the round spec this partner
        read) is in the store: the next stage will never come."""
        t = time.monotonic()
        if self.stage in ("done", "aborted") or (
            not force and t - self._abort_checked_at < ABORT_CHECK_S
        ):
            return
        self._abort_checked_at = t
        while (env := self._fetch("round_aborted", BROADCAST)) is not None:
            reason = self._abort_reason(env)
            if reason is None:
                continue
            stage, self.stage = self.stage, "aborted"
            self._forget()
            raise SecureAggregationError(
                f"{self.me}: the operator aborted round {self.round_id} at stage {stage}: "
                f"{reason[:300]}",
                fix="nothing to do here: the operator retries the round under a fresh round "
                "id or stops the run.",
            )

    def _abort_reason(self, env: Envelope) -> str | None:
        """The reason of a valid abort notice, or None (logged) for one this partner cannot
        open or that names another round spec (a store replaying an earlier run's notice
        under a reused round id)."""
        if self.spec is not None and env.headers.get(ROUND_SPEC_HEADER) != self.spec.digest():
            self.guard.reject(env, "abort notice for another round spec")
            return None
        try:
            return open_payload(env, self.identity).decode(errors="replace")
        except EnvelopeRejectedError as exc:
            self.guard.reject(env, f"unreadable abort notice: {exc.message}")
            return None

    def run(
        self,
        update: np.ndarray,
        num_examples: int,
        *,
        timeout_s: float = 3600.0,
        poll_s: float = 0.5,
    ) -> ClientStats:
        """Take part in the whole round, polling the store; return the timing stats.

        Raises
        ------
        SecureAggregationError
            If the round does not finish within ``timeout_s`` or a check fails.
        """
        self.provide_input(update, num_examples)
        deadline = time.monotonic() + timeout_s
        while self.stage != "done":
            if not self.step():
                if time.monotonic() > deadline:
                    raise SecureAggregationError(
                        f"{self.me}: timed out in round {self.round_id} at stage {self.stage}.",
                        fix="check that the operator is running and can reach the store.",
                    )
                time.sleep(poll_s)
        return self.stats


__all__ = ["ABORT_CHECK_S", "CLIENT_STAGES", "ROUND_SPEC_HEADER", "ClientStats", "SecAggClient"]
