"""Review of issue 16: partners never checked that they were all sent the same round spec.

An operator that signs the victim a normal clip and every other partner the largest clip the
schema allows gets the others' entries rounded to 0 and decodes the victim's own update
instead of the sum (cosine 0.999 on an 8-bit ring; the same works on 32 bits through the
per-partner scale). Now every partner signs the hash of the spec it was sent into its key
advertisement, and every partner refuses to share its key shares unless all hashes match: the
round aborts before anything that could be unmasked leaves a partner.
"""

from __future__ import annotations

import numpy as np
import pytest

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import (
    ExchangeStore,
    QuantizationConfig,
    RoundSpec,
    SecAggClient,
    SecAggServer,
    SecurityPolicy,
)
from pharmafl.secure.identity import Identity, build_roster

PARTNERS = ("p00", "p01", "p02", "p03")


class SplitSpecServer(SecAggServer):
    """An operator that sends the victim one spec and everyone else another."""

    def open(self) -> RoundSpec:
        for p in self.spec.partners:
            spec = self.spec
            if p != "p00":
                q = spec.quantization.model_copy(update={"clip": 1e6})
                spec = spec.model_copy(update={"quantization": q})
            self._send("round_spec", p, spec.to_payload())
        self.stage = "advertise"
        return self.spec


@pytest.mark.parametrize("ring_bits", [8, 32])
def test_partners_refuse_to_share_when_sent_different_specs(ring_bits: int) -> None:
    rng = np.random.default_rng(0)
    store = ExchangeStore(f"memory://split-spec-{ring_bits}")
    op = Identity.generate("operator", "operator")
    ids = {p: Identity.generate(p, "partner") for p in PARTNERS}
    roster = build_roster(
        op,
        [i.public for i in ids.values()],
        consortium="split",
        policy=SecurityPolicy(collusion_bound=0, min_participants=3),
    )
    q = QuantizationConfig.for_ring(ring_bits, max_examples=8192)
    server = SplitSpecServer(
        op, roster, store, "round-0001", vector_length=500, partners=PARTNERS, quantization=q
    )
    clients = {
        p: SecAggClient(
            ids[p], roster, store, "round-0001", pinned_fingerprint=roster.fingerprint()
        )
        for p in PARTNERS
    }
    for c in clients.values():
        c.provide_input(rng.normal(0, 0.01, 500), 1000)
    server.open()
    for c in clients.values():
        assert c.advertise()  # each spec is valid on its own
    server.receive()
    server.advance()
    for c in clients.values():
        with pytest.raises(SecureAggregationError, match="different round specs"):
            c.share_keys()
    assert not any(store.keys("round-0001", "shares", p) for p in PARTNERS)  # nothing left
