"""How much each partner's data the consortium's aggregates have released: ε per partner.

Every aggregate a partner's update went into counts: each applied aggregate of every run it
contributed to (the main run, every contribution-study coalition; ``aggregate_applied``'s
contributors), plus every round that failed after partners may have revealed their shares
(``round_aborted`` with ``released``; counted for every invited partner). Each round's DP
comes from its ``round_started`` entry (else its run's ``training_started``). Rounds are
composed with the Rényi-DP accountant at the replace-one multiplier z / 2
(:meth:`pharmafl.secure.DPConfig.epsilon`); one aggregate without DP makes ε unbounded.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pharmafl.ledger import (
    AggregateAppliedPayload,
    LedgerEntry,
    LedgerEvent,
    RoundAbortedPayload,
    RoundStartedPayload,
    TrainingStartedPayload,
)
from pharmafl.secure import DPConfig


class PartnerPrivacy(BaseModel):
    """One partner's privacy loss over every aggregate its updates went into."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner: str
    aggregates: int = Field(ge=0, description="Aggregates the partner's updates went into.")
    runs: int = Field(ge=0, description="Training runs it contributed to.")
    epsilon: float | None = Field(
        description="ε at ``delta`` over all of them; None: unbounded (an aggregate without "
        "differential privacy, or with noise multiplier 0)."
    )
    delta: float | None = Field(description="δ of ``epsilon`` (the runs' largest).")


def _dp(value: object) -> DPConfig | None:
    try:
        return None if value is None else DPConfig.model_validate(value)
    except ValidationError:  # not DP settings we can account: unbounded
        return None


def _run_dp(entries: Sequence[LedgerEntry]) -> dict[str, DPConfig | None]:
    """Each run's DP as its ``training_started`` entry recorded it (rounds recorded before
    rounds carried their own DP)."""
    out: dict[str, DPConfig | None] = {}
    for e in entries:
        if e.event is LedgerEvent.TRAINING_STARTED:
            started = TrainingStartedPayload.model_validate(e.payload)
            out[started.run_id] = _dp(started.parameters.get("dp"))
    return out


def _released(entries: Sequence[LedgerEntry]) -> dict[str, list[tuple[str, DPConfig | None]]]:
    """Partner → (run, DP) of every aggregate its update went into: each applied aggregate
    (its contributors, as the operator recorded them) and each round aborted after partners
    may have revealed (every invited partner), with the DP its round_started entry names."""
    run_dp = _run_dp(entries)
    out: dict[str, list[tuple[str, DPConfig | None]]] = {}
    started: dict[tuple[str, int], RoundStartedPayload] = {}
    round_dp: dict[tuple[str, int], DPConfig | None] = {}
    for e in entries:
        if e.event is LedgerEvent.ROUND_STARTED:
            rs = RoundStartedPayload.model_validate(e.payload)
            started[(rs.run_id, rs.round)] = rs
            if "dp" in e.payload:  # entries before rounds recorded their DP fall back to the run
                round_dp[(rs.run_id, rs.round)] = _dp(e.payload["dp"])
            continue
        if e.event is LedgerEvent.AGGREGATE_APPLIED:
            applied = AggregateAppliedPayload.model_validate(e.payload)
            key, who = (applied.run_id, applied.round), applied.contributors
        elif e.event is LedgerEvent.ROUND_ABORTED:
            ab = RoundAbortedPayload.model_validate(e.payload)
            key = (ab.run_id, ab.round)
            who = list(started[key].participants) if ab.released and key in started else []
        else:
            continue
        dp = round_dp[key] if key in round_dp else run_dp.get(key[0])
        for p in who:
            out.setdefault(p, []).append((key[0], dp))
    return out


def partner_privacy(entries: Sequence[LedgerEntry]) -> list[PartnerPrivacy]:
    """ε per partner from a (verified) ledger; see the module doc."""
    rows = []
    for partner, released in sorted(_released(entries).items()):
        configs = [dp for _, dp in released]
        if any(c is None for c in configs):
            eps, delta = None, None
        else:
            eps, delta = _compose([c for c in configs if c is not None])
        rows.append(
            PartnerPrivacy(
                partner=partner,
                aggregates=len(released),
                runs=len({run for run, _ in released}),
                epsilon=eps,
                delta=delta,
            )
        )
    return rows


def _compose(configs: Sequence[DPConfig]) -> tuple[float | None, float]:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    delta = max(c.delta for c in configs)
    accountant = RdpAccountant()
    for config in configs:
        if config.noise_multiplier <= 0:
            return None, delta
        accountant.compose(dp_accounting.GaussianDpEvent(config.effective_noise_multiplier), 1)
    return float(accountant.get_epsilon(delta)), delta


__all__ = ["PartnerPrivacy", "partner_privacy"]
