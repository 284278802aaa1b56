"""One secure-aggregation round simulated in one process (tests, benchmarks, demos).

Every party is a real :class:`~pharmafl.secure.client.SecAggClient` or
:class:`~pharmafl.secure.server.SecAggServer` with its own identity, and every message goes
through the exchange store; only the scheduling is in-process (lock-step stages) instead
of polling. Dropouts are simulated by a partner that stops before a given stage.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure.client import CLIENT_STAGES, ClientStats, SecAggClient
from pharmafl.secure.dp import DPConfig
from pharmafl.secure.identity import Identity, build_roster
from pharmafl.secure.policy import SecurityPolicy
from pharmafl.secure.quantize import QuantizationConfig
from pharmafl.secure.server import AggregateResult, SecAggServer, ServerStats
from pharmafl.secure.store import ExchangeStore

logger = logging.getLogger(__name__)


@dataclass
class SimulationResult:
    """A simulated round: the operator's result plus every party's timing."""

    result: AggregateResult
    client_stats: dict[str, ClientStats]
    server_stats: ServerStats


def run_secagg_round(
    updates: Mapping[str, np.ndarray],
    num_examples: Mapping[str, int],
    *,
    round_id: str = "round-0001",
    threshold: int | None = None,
    quantization: QuantizationConfig | None = None,
    dp: DPConfig | None = None,
    dropouts: Mapping[str, str] | None = None,
    store: ExchangeStore | str | None = None,
    seed: int | None = None,
    policy: SecurityPolicy | None = None,
    bystanders: Sequence[str] = (),
) -> SimulationResult:
    """Run one full round among ``updates``' partners through an exchange store.

    Parameters
    ----------
    updates
        Partner id → float update (all the same length).
    num_examples
        Partner id → example count (FedAvg weight).
    round_id, threshold, quantization, dp
        As for :class:`~pharmafl.secure.server.SecAggServer`.
    dropouts
        Partner id → the client stage it never reaches (one of
        :data:`~pharmafl.secure.client.CLIENT_STAGES`): ``"advertise"`` drops before
        advertising keys, ``"submit"`` after sharing keys but before its masked input,
        ``"unmask"`` after confirming but before revealing shares.
    store
        Store or URL (default: a fresh ``memory://`` store, purged afterwards).
    seed
        Seed of the DP noise generators (partner i uses ``seed + i``).
    policy
        The security policy signed into the roster (default: none, the default policy).
    bystanders
        Further roster partners not invited to the round.

    Raises
    ------
    SecureAggregationError
        If fewer than the threshold remain at some stage (the round aborts).
    """
    partners = tuple(sorted(updates))
    dropouts = dict(dropouts or {})
    for p, stage in dropouts.items():
        if p not in updates or stage not in CLIENT_STAGES:
            raise SecureAggregationError(
                f"bad dropout {p!r} → {stage!r}; stages: {', '.join(CLIENT_STAGES)}."
            )
    own_store = store is None
    if store is None:
        store = ExchangeStore(f"memory://pharmafl-secagg-{uuid.uuid4().hex}")
    elif isinstance(store, str):
        store = ExchangeStore(store)
    operator = Identity.generate("operator", "operator")
    identities = {p: Identity.generate(p, "partner") for p in (*partners, *bystanders)}
    roster = build_roster(
        operator,
        [i.public for i in identities.values()],
        consortium="simulation",
        policy=policy,
    )
    vector_length = int(np.size(next(iter(updates.values()))))
    server = SecAggServer(
        operator,
        roster,
        store,
        round_id,
        vector_length=vector_length,
        partners=partners,
        threshold=threshold,
        quantization=quantization,
        dp=dp,
    )
    clients = {
        p: SecAggClient(
            identities[p],
            roster,
            store,
            round_id,
            pinned_fingerprint=roster.fingerprint(),
            rng=np.random.default_rng(None if seed is None else seed + i),
        )
        for i, p in enumerate(partners)
    }
    for p, c in clients.items():
        c.provide_input(updates[p], num_examples[p])
    try:
        server.open()
        for stage in CLIENT_STAGES:
            for p, client in clients.items():
                alive = p not in dropouts or CLIENT_STAGES.index(stage) < CLIENT_STAGES.index(
                    dropouts[p]
                )
                if alive and client.stage == stage and not client.step():
                    raise SecureAggregationError(f"{p} found no operator message for {stage}.")
            server.receive()
            server.advance()
    finally:
        if own_store:
            store.purge(round_id)
    assert server.result is not None
    return SimulationResult(
        result=server.result,
        client_stats={p: c.stats for p, c in clients.items()},
        server_stats=server.stats,
    )


__all__ = ["SimulationResult", "run_secagg_round"]
