"""Secure aggregation of trunk updates: identities, envelopes, exchange store, protocol, DP.

Practical secure aggregation after Bonawitz et al. (CCS 2017) for a cross-silo consortium:
signed per-round X25519 keys, Shamir t-of-n shares sealed with ChaCha20-Poly1305, ChaCha20
keystream masks in Z_{2^32}, dropout recovery, and a consistency check. The whole package
is free of torch and RDKit (the operator's side works on numpy arrays only). See
``docs/security.md`` for the threat model and parameters.
"""

from pydantic import BaseModel

from pharmafl.secure.client import CLIENT_STAGES, ROUND_SPEC_HEADER, ClientStats, SecAggClient
from pharmafl.secure.dp import DPConfig, add_gaussian_noise, clip_l2, dp_epsilon, privatize
from pharmafl.secure.envelope import (
    ENVELOPE_KINDS,
    Envelope,
    EnvelopeGuard,
    EnvelopeKind,
    Rejection,
    pack_envelopes,
    seal,
    unpack_envelopes,
)
from pharmafl.secure.exchange import (
    BROADCAST,
    collect,
    fetch,
    open_payload,
    publish,
    sealed_recipients,
)
from pharmafl.secure.identity import (
    Identity,
    PublicIdentity,
    Roster,
    build_roster,
    export_public_identity,
    generate_identity,
    load_identity,
    load_identity_dir,
    load_public_identity,
    load_roster,
    write_identity,
    write_roster,
)
from pharmafl.secure.local_round import SimulationResult, run_secagg_round
from pharmafl.secure.masking import apply_masks, expand_mask, pair_mask_key, self_mask_key
from pharmafl.secure.messages import (
    AdvertisePayload,
    KeysPayload,
    RelayPayload,
    RoundSpec,
    SecAggRoundReport,
    SharePayload,
    SurvivorsPayload,
    UnmaskPayload,
    UnmaskRequestPayload,
    default_threshold,
    min_threshold,
)
from pharmafl.secure.policy import DEFAULT_POLICY, SecurityPolicy
from pharmafl.secure.quantize import (
    QuantizationConfig,
    dequantize,
    fedavg_mean,
    next_clip,
    quantize,
)
from pharmafl.secure.server import SERVER_STAGES, AggregateResult, SecAggServer, ServerStats
from pharmafl.secure.store import ExchangeStore

#: Schema file stem → model, for every document that crosses a party boundary.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "envelope": Envelope,
    "public_identity": PublicIdentity,
    "roster": Roster,
    "secagg_advertise": AdvertisePayload,
    "secagg_keys": KeysPayload,
    "secagg_relay": RelayPayload,
    "secagg_round_report": SecAggRoundReport,
    "secagg_round_spec": RoundSpec,
    "secagg_share": SharePayload,
    "secagg_survivors": SurvivorsPayload,
    "secagg_unmask": UnmaskPayload,
    "secagg_unmask_request": UnmaskRequestPayload,
    "security_policy": SecurityPolicy,
}

__all__ = [
    "AdvertisePayload",
    "AggregateResult",
    "BROADCAST",
    "CLIENT_STAGES",
    "ClientStats",
    "DEFAULT_POLICY",
    "DPConfig",
    "ENVELOPE_KINDS",
    "Envelope",
    "EnvelopeGuard",
    "EnvelopeKind",
    "ExchangeStore",
    "Identity",
    "KeysPayload",
    "PublicIdentity",
    "QuantizationConfig",
    "ROUND_SPEC_HEADER",
    "Rejection",
    "RelayPayload",
    "Roster",
    "RoundSpec",
    "SCHEMA_MODELS",
    "SERVER_STAGES",
    "SecAggClient",
    "SecAggRoundReport",
    "SecAggServer",
    "SecurityPolicy",
    "ServerStats",
    "SharePayload",
    "SimulationResult",
    "SurvivorsPayload",
    "UnmaskPayload",
    "UnmaskRequestPayload",
    "add_gaussian_noise",
    "apply_masks",
    "build_roster",
    "clip_l2",
    "collect",
    "default_threshold",
    "dequantize",
    "dp_epsilon",
    "expand_mask",
    "export_public_identity",
    "fedavg_mean",
    "fetch",
    "generate_identity",
    "load_identity",
    "load_identity_dir",
    "load_public_identity",
    "load_roster",
    "min_threshold",
    "next_clip",
    "open_payload",
    "pack_envelopes",
    "pair_mask_key",
    "privatize",
    "publish",
    "quantize",
    "run_secagg_round",
    "seal",
    "sealed_recipients",
    "self_mask_key",
    "unpack_envelopes",
    "write_identity",
    "write_roster",
]
