"""The operator side of secure aggregation: collect, decide survivors, unmask, sum.

Works on numpy arrays only (no torch, no RDKit). The operator learns the sum of the
surviving partners' weighted, quantized updates and their total example count — nothing
about any single update (Bonawitz et al., CCS 2017). Per stage the orchestrator calls
:meth:`SecAggServer.receive` (non-blocking: take what is in the store) until
:meth:`SecAggServer.pending` is empty or its deadline passes, then
:meth:`SecAggServer.advance`, which closes the stage: fewer than t partners left aborts
the round with :class:`~pharmafl.common.errors.SecureAggregationError`; envelopes of a
closed stage that arrive later are rejected as late. :meth:`SecAggServer.run` does exactly
that with wall-clock timeouts.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from pharmafl.common import crypto
from pharmafl.common.errors import (
    AggregateCheckError,
    EnvelopeRejectedError,
    SecureAggregationError,
)
from pharmafl.secure import masking, shamir
from pharmafl.secure._timing import StageStats, now
from pharmafl.secure.dp import DPConfig
from pharmafl.secure.envelope import Envelope, EnvelopeGuard, EnvelopeKind, pack_envelopes, seal
from pharmafl.secure.identity import Identity, Roster
from pharmafl.secure.messages import (
    AdvertisePayload,
    KeysPayload,
    RejectionRecord,
    RelayPayload,
    RoundSpec,
    SecAggRoundReport,
    SurvivorsPayload,
    UnmaskPayload,
    UnmaskRequestPayload,
    aead_context,
    policy_threshold,
)
from pharmafl.secure.quantize import QuantizationConfig, aggregate_violation, dequantize
from pharmafl.secure.store import ExchangeStore

logger = logging.getLogger(__name__)


#: Operator stages: the kind of partner message each one collects.
SERVER_STAGES: tuple[EnvelopeKind, ...] = ("advertise", "shares", "masked", "confirm", "unmask")


@dataclass
class ServerStats(StageStats):
    """Operator seconds per stage (receiving + closing), and unmasking time."""

    unmask_seconds: float = 0.0
    unmask_cpu_seconds: float = 0.0
    mask_bytes: int = 0


@dataclass
class AggregateResult:
    """The outcome of one round: the FedAvg mean (float64) and the round report."""

    mean: np.ndarray
    report: SecAggRoundReport
    max_examples: int

    @property
    def weighted_sum(self) -> np.ndarray:
        """Σ_u w_u·x_u with w_u = n_u / max_examples (computed from the mean on demand); on a
        compressed ring, equal weights: Σ_u clamp(x_u)."""
        if self.report.ring_bits < 32:
            return self.mean * len(self.report.survivors)
        return self.mean * (self.report.total_examples / self.max_examples)

    @property
    def dropped(self) -> tuple[str, ...]:
        """Invited partners whose update is not in the sum."""
        return self.report.dropped


class SecAggServer:
    """The operator in one secure-aggregation round.

    Parameters
    ----------
    identity
        The operator's signing identity (the roster's operator).
    roster
        The verified consortium roster.
    store
        The exchange store.
    round_id
        Unique round id (binds every key derivation, ciphertext and envelope).
    vector_length
        Number of trunk parameters P in every update.
    partners
        Invited partners (default: every partner in the roster).
    threshold
        t (default :func:`~pharmafl.secure.messages.policy_threshold`: the default threshold,
        raised to what the roster's security policy requires).
    quantization, dp
        Shared fixed-point and optional differential-privacy parameters.
    """

    def __init__(
        self,
        identity: Identity,
        roster: Roster,
        store: ExchangeStore,
        round_id: str,
        *,
        vector_length: int,
        partners: tuple[str, ...] | None = None,
        threshold: int | None = None,
        quantization: QuantizationConfig | None = None,
        dp: DPConfig | None = None,
    ) -> None:
        roster.verify()
        if identity.id != roster.operator or roster.member(identity.id) != identity.public:
            raise SecureAggregationError(
                f"{identity.id!r} is not the operator that signed this roster."
            )
        invited = tuple(sorted(partners if partners is not None else roster.partners))
        self._op_sk, op_pk = crypto.x25519_generate()
        try:
            self.spec = RoundSpec(
                round_id=round_id,
                roster_fingerprint=roster.fingerprint(),
                operator=identity.id,
                partners=invited,
                threshold=threshold
                if threshold is not None
                else policy_threshold(roster.security_policy, len(invited)),
                vector_length=vector_length,
                quantization=quantization or QuantizationConfig(),
                dp=dp,
                operator_key=op_pk.hex(),
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise SecureAggregationError(
                f"invalid round parameters: {first['msg']}.",
                fix="choose a threshold of at least a majority and a quantization clip that "
                "fits the DP noise (see docs/security.md).",
            ) from None
        self.identity = identity
        self.roster = roster
        self.store = store
        self.round_id = round_id
        self.guard = EnvelopeGuard(roster, me=identity.id, round_id=round_id)
        self.stats = ServerStats()
        self.stage: str = "open"
        self.result: AggregateResult | None = None
        self._seen: set[str] = set()
        self._adverts: dict[str, tuple[Envelope, AdvertisePayload]] = {}
        self._shares: dict[tuple[str, str], Envelope] = {}
        self._commitments: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._masked: dict[str, tuple[str, str]] = {}  # sender → (store key, payload SHA-256)
        self.unmask_requested = False
        q, n = self.spec.quantization, len(self.spec.partners)
        self._acc = np.zeros(vector_length + q.count_entries(n), dtype=q.dtype)
        self._masked_bytes = self._acc.nbytes  # a masked input's exact size: read no more
        self._confirms: dict[str, Envelope] = {}
        self._unmasks: dict[str, UnmaskPayload] = {}
        self.u1: tuple[str, ...] = ()
        self.u2: tuple[str, ...] = ()
        self.u3: tuple[str, ...] = ()
        self.u4: tuple[str, ...] = ()
        self.u5: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"SecAggServer(round={self.round_id!r}, stage={self.stage!r})"

    # --- plumbing ------------------------------------------------------------------------

    def _send(self, kind: EnvelopeKind, recipient: str, payload: bytes) -> None:
        env = seal(
            self.identity, round_id=self.round_id, kind=kind, recipient=recipient, payload=payload
        )
        self.store.put(env)

    def _expected(self) -> tuple[str, ...]:
        return {
            "advertise": self.spec.partners,
            "shares": self.u1,
            "masked": self.u2,
            "confirm": self.u3,
            "unmask": self.u4,
        }.get(self.stage, ())

    def _timed(self, stage: str, start: tuple[float, float]) -> None:
        self.stats.record(stage, start)

    def _abort(self, what: str, have: int) -> SecureAggregationError:
        self.stage = "aborted"
        self._acc = np.zeros(0, dtype=self._acc.dtype)
        logger.error("round %s aborted: %s", self.round_id, what)
        return SecureAggregationError(
            f"round {self.round_id} aborted: {what} ({have} of threshold {self.spec.threshold}).",
            fix="fewer than t partners remain; start a new round when enough partners are up.",
        )

    def open(self) -> RoundSpec:
        """Publish the signed round spec to every invited partner."""
        if self.stage != "open":
            raise SecureAggregationError(f"round {self.round_id} is already open.")
        if any(self.store.keys(self.round_id, "round_spec", p) for p in self.spec.partners):
            raise SecureAggregationError(
                f"round id {self.round_id!r} was already used in {self.store.url}.",
                fix="every round needs a fresh id (it binds keys, ciphertexts and envelopes).",
            )
        start = now()
        for p in self.spec.partners:
            self._send("round_spec", p, self.spec.to_payload())
        self.stage = "advertise"
        self._timed("open", start)
        return self.spec

    def pending(self) -> set[str]:
        """Partners expected in the current stage that have not been accepted yet."""
        have = {
            "advertise": set(self._adverts),
            "shares": {u for u in self.u1 if self._shares_complete(u)},
            "masked": set(self._commitments),
            "confirm": set(self._confirms),
            "unmask": set(self._unmasks),
        }.get(self.stage, set())
        return set(self._expected()) - have

    def _shares_complete(self, u: str) -> bool:
        return all((u, v) in self._shares for v in self.u1 if v != u)

    # --- receiving -----------------------------------------------------------------------

    def receive(self) -> int:
        """Take every new envelope from the store; return how many were accepted.

        Envelopes of the current stage are checked and kept; envelopes of a closed stage
        are rejected as late (logged, in the report), never used.
        """
        start = now()
        accepted = 0
        if self.stage in SERVER_STAGES:
            current = SERVER_STAGES.index(self.stage)
        elif self.stage == "done":  # everything that still arrives is late
            current = len(SERVER_STAGES)
        else:
            return 0
        for i, kind in enumerate(SERVER_STAGES[: current + 1]):
            recipients = self.u1 if kind == "shares" else (self.identity.id,)
            for recipient in recipients:
                for key in self.store.keys(self.round_id, kind, recipient):
                    if key in self._seen:
                        continue
                    self._seen.add(key)
                    accepted += self._take(key, kind, late=i < current)
        self._timed(self.stage, start)
        return accepted

    def _take(self, key: str, kind: EnvelopeKind, *, late: bool) -> int:
        try:
            env = self.store.get(key, max_payload=self._masked_bytes if kind == "masked" else None)
        except EnvelopeRejectedError as exc:
            self.guard.reject(None, exc.message, kind=kind)
            return 0
        if late:
            self.guard.reject(env, f"late: the {kind} stage is closed")
            return 0
        try:
            if kind == "shares":
                self.guard.check(env, kind=kind, senders=self.u1, recipient=env.recipient)
                if env.sender == env.recipient:
                    raise self.guard.reject(env, "shares addressed to the sender itself")
                self._shares[(env.sender, env.recipient)] = env
                return 1
            self.guard.check(env, kind=kind, senders=self._expected())
            getattr(self, f"_take_{kind}")(env)
        except EnvelopeRejectedError:
            return 0
        return 1

    def _take_advertise(self, env: Envelope) -> None:
        self._adverts[env.sender] = (env, AdvertisePayload.from_payload(env.payload))

    def _take_masked(self, env: Envelope) -> None:
        dtype = self._acc.dtype
        if (
            env.headers.get("dtype") != dtype.str
            or env.headers.get("length") != str(self._acc.size)
            or len(env.payload) != self._acc.nbytes
        ):
            raise self.guard.reject(
                env, f"masked input must be {self._acc.size} × {dtype.str} entries"
            )
        commitment = env.headers.get("seed_commitment", "")
        if len(commitment) != 64:
            raise self.guard.reject(env, "masked input lacks its seed commitment")
        count = self._declared_count(env)
        q = self.spec.quantization
        if not re.fullmatch(r"[0-9]{20}", count) or not 1 <= int(count) <= q.max_examples:
            raise self.guard.reject(env, f"masked input must declare 1..{q.max_examples} examples")
        np.add(self._acc, np.frombuffer(env.payload, dtype=dtype), out=self._acc)
        self._masked[env.sender] = (self.store.key_of(env), env.payload_sha256)
        self._commitments[env.sender] = commitment
        self._counts[env.sender] = int(count)

    def _declared_count(self, env: Envelope) -> str:
        """The example count a masked input declares in its signed header, sealed to this
        round's operator key (``sealed_examples``); "" when missing or it does not open."""
        c_pk = bytes.fromhex(self._adverts[env.sender][1].c_pk)
        try:
            key = masking.derive_key(
                "count-key",
                crypto.x25519_exchange(self._op_sk, c_pk),
                self.round_id,
                env.sender,
                self.identity.id,
            )
            body = crypto.aead_decrypt(
                key,
                bytes.fromhex(env.headers.get("sealed_examples", "")),
                aead_context("count", self.round_id, env.sender, self.identity.id),
            )
            return body.decode("ascii")
        except (ValueError, SecureAggregationError):
            return ""

    def _take_confirm(self, env: Envelope) -> None:
        if SurvivorsPayload.from_payload(env.payload).survivors != self.u3:
            raise self.guard.reject(env, "confirms a different survivor set")
        self._confirms[env.sender] = env

    def _take_unmask(self, env: Envelope) -> None:
        c_pk = bytes.fromhex(self._adverts[env.sender][1].c_pk)
        key = masking.derive_key(
            "unmask-key",
            crypto.x25519_exchange(self._op_sk, c_pk),
            self.round_id,
            env.sender,
            self.identity.id,
        )
        try:
            body = crypto.aead_decrypt(
                key,
                env.payload,
                aead_context("unmask", self.round_id, env.sender, self.identity.id),
            )
        except SecureAggregationError as exc:
            raise self.guard.reject(env, f"cannot decrypt shares ({exc.message})") from None
        doc = UnmaskPayload.from_payload(body)
        dropped = set(self.u2) - set(self.u3)
        if not set(doc.b_shares) <= set(self.u3) or not set(doc.s_shares) <= dropped:
            raise self.guard.reject(env, "reveals a share of the wrong kind")
        self._unmasks[env.sender] = doc

    # --- closing stages ------------------------------------------------------------------

    def advance(self) -> None:
        """Close the current stage and send the next operator messages (or finish).

        Raises
        ------
        SecureAggregationError
            If fewer than t partners remain (the round aborts).
        """
        stage = self.stage
        if stage not in SERVER_STAGES:
            raise SecureAggregationError(f"round {self.round_id} has no open stage ({stage}).")
        start = now()
        t = self.spec.threshold
        if stage == "advertise":
            self.u1 = tuple(sorted(self._adverts))
            if len(self.u1) < t:
                raise self._abort("too few partners advertised keys", len(self.u1))
            bundle = pack_envelopes([self._adverts[u][0] for u in self.u1])
            payload = KeysPayload(advertised=self.u1, envelopes=bundle).to_payload()
            for u in self.u1:
                self._send("keys", u, payload)
            self.stage = "shares"
        elif stage == "shares":
            self.u2 = tuple(u for u in self.u1 if self._shares_complete(u))
            if len(self.u2) < t:
                raise self._abort("too few partners shared keys", len(self.u2))
            for v in self.u2:
                inner = [self._shares[(u, v)] for u in self.u2 if u != v]
                doc = RelayPayload(shared=self.u2, envelopes=pack_envelopes(inner))
                self._send("relay", v, doc.to_payload())
            self._shares.clear()
            self.stage = "masked"
        elif stage == "masked":
            self.u3 = self._whole_groups(tuple(sorted(self._commitments)))
            if len(self.u3) < t:
                raise self._abort("too few masked inputs arrived", len(self.u3))
            for u in self.u3:
                self._send("survivors", u, SurvivorsPayload(survivors=self.u3).to_payload())
            self.stage = "confirm"
        elif stage == "confirm":
            self.u4 = tuple(sorted(self._confirms))
            if len(self.u4) < t:
                raise self._abort("too few partners confirmed the survivors", len(self.u4))
            confirmations = pack_envelopes([self._confirms[u] for u in self.u4])
            request = UnmaskRequestPayload(survivors=self.u3, confirmations=confirmations)
            self.unmask_requested = True  # from here partners may reveal their shares
            for u in self.u4:
                self._send("unmask_request", u, request.to_payload())
            self.stage = "unmask"
        else:
            self.u5 = tuple(sorted(self._unmasks))
            if len(self.u5) < t:
                raise self._abort("too few partners revealed shares", len(self.u5))
            self.result = self._finish()
            self.stage = "done"
        self._timed(stage, start)

    def _whole_groups(self, received: tuple[str, ...]) -> tuple[str, ...]:
        """Where the signed policy declares valuation groups, only whole groups contribute
        (partners refuse any other survivor set): the masked inputs of a group that lost a
        member are taken out of the sum again, and their masks later removed as dropouts'."""
        policy = self.roster.security_policy
        if policy.valuation_groups is None:
            return received
        have = set(received)
        keep = tuple(u for u in received if set(policy.group_of(u) or (u,)) <= have)
        for u in sorted(have.difference(keep)):
            key, digest = self._masked.pop(u)
            env = self.store.get(key, max_payload=self._masked_bytes)
            if env.payload_sha256 != digest:
                raise self._abort(f"the masked input of {u} changed in the store", len(keep))
            np.subtract(self._acc, np.frombuffer(env.payload, dtype=self._acc.dtype), out=self._acc)
            del self._commitments[u], self._counts[u]
            logger.warning(
                "round %s: %s left out, its valuation group is incomplete", self.round_id, u
            )
        return keep

    def _reconstruct(self, owner: str, kind: str) -> bytes:
        shares = {
            self.spec.index(v): bytes.fromhex(getattr(doc, f"{kind}_shares")[owner])
            for v, doc in self._unmasks.items()
            if owner in getattr(doc, f"{kind}_shares")
        }
        if len(shares) < self.spec.threshold:
            raise self._abort(f"too few shares to unmask {owner}", len(shares))
        return shamir.combine(shares, self.spec.threshold)

    def _finish(self) -> AggregateResult:
        start = now()
        rid = self.round_id
        dropped = sorted(set(self.u2) - set(self.u3))
        masks: list[tuple[bytes, int]] = []
        for u in self.u3:
            seed = self._reconstruct(u, "b")
            if masking.seed_commitment(seed, rid, u) != self._commitments[u]:
                raise self._abort(f"the reconstructed seed of {u} fails its commitment", 0)
            masks.append((masking.self_mask_key(seed, rid, u), -1))
        for d in dropped:
            s_sk = self._reconstruct(d, "s")
            if crypto.x25519_public_key(s_sk).hex() != self._adverts[d][1].s_pk:
                raise self._abort(f"the reconstructed mask key of {d} is wrong", 0)
            for u in self.u3:
                shared = crypto.x25519_exchange(s_sk, bytes.fromhex(self._adverts[u][1].s_pk))
                # u added pair_sign(u, d)·PRG(s_ud); subtract exactly that.
                masks.append((masking.pair_mask_key(shared, rid, u, d), -masking.pair_sign(u, d)))
        nbytes, _ = masking.apply_masks(self._acc, masks)
        self.stats.mask_bytes += nbytes
        q = self.spec.quantization
        n = len(self.spec.partners)
        declared = sum(self._counts[u] for u in self.u3)
        violation = aggregate_violation(self._acc, q, n, len(self.u3), declared)
        if violation is not None:
            self.stage = "aborted"
            self._acc = np.zeros(0, dtype=self._acc.dtype)
            logger.error("round %s: aggregate check failed: %s", rid, violation)
            raise AggregateCheckError(
                f"round {rid}: aggregate check failed: {violation}.",
                fix="a partner sent values outside the protocol's bounds; the aggregate is "
                "not applied. Find the partner (its own logs, a round without it) before "
                "resuming.",
            )
        mean, total_examples = dequantize(self._acc, q, n)
        self._acc = np.zeros(0, dtype=self._acc.dtype)
        if total_examples <= 0:
            raise self._abort("the aggregate holds no examples", 0)
        mean *= q.mean_factor(total_examples, len(self.u3))  # in place (no second full copy)
        report = SecAggRoundReport(
            round_id=rid,
            operator=self.identity.id,
            partners=self.spec.partners,
            threshold=self.spec.threshold,
            advertised=self.u1,
            shared=self.u2,
            survivors=self.u3,
            confirmed=self.u4,
            responded=self.u5,
            dropped=tuple(p for p in self.spec.partners if p not in self.u3),
            vector_length=self.spec.vector_length,
            total_examples=total_examples,
            ring_bits=q.ring_bits,
            scale=q.scale(n),
            mean_error_bound=q.mean_error_bound(n, total_examples),
            aggregate_sha256=hashlib.sha256(mean.astype(np.float32).tobytes()).hexdigest(),
            rejections=[
                RejectionRecord(kind=r.kind, sender=r.sender, reason=r.reason)
                for r in self.guard.rejections
            ],
        )
        self.stats.unmask_seconds = time.perf_counter() - start[0]
        self.stats.unmask_cpu_seconds = time.thread_time() - start[1]
        logger.info(
            "round %s aggregated %d partners (%d dropped) in %.2f s",
            rid,
            len(self.u3),
            len(report.dropped),
            self.stats.unmask_seconds,
        )
        return AggregateResult(mean=mean, report=report, max_examples=q.max_examples)

    # --- driver --------------------------------------------------------------------------

    def run(self, *, stage_timeout_s: float = 600.0, poll_s: float = 0.5) -> AggregateResult:
        """Run the whole round: each stage waits for all expected partners or the timeout."""
        if self.stage == "open":
            self.open()
        while self.stage in SERVER_STAGES:
            deadline = time.monotonic() + stage_timeout_s
            while True:
                self.receive()
                if not self.pending() or time.monotonic() > deadline:
                    break
                time.sleep(poll_s)
            missing = self.pending()
            if missing:
                logger.warning(
                    "round %s stage %s: %d partners did not answer in time",
                    self.round_id,
                    self.stage,
                    len(missing),
                )
            self.advance()
        assert self.result is not None
        return self.result


__all__ = ["SERVER_STAGES", "AggregateResult", "SecAggServer", "ServerStats"]
