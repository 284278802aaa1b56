"""How much each partner's data the consortium's aggregates have released: ε per partner.

Every aggregate a partner's update went into counts: each completed round of every run it
contributed to (the main run, every contribution-study coalition, every retry), read from
the ledger (``update_submitted`` entries), plus every round that failed after partners may
have revealed their shares (its aggregate may have been decoded; counted for every invited
partner). Each run's DP settings come from its ``training_started`` entry. Rounds are
composed with the Rényi-DP accountant at the replace-one multiplier z / 2
(:meth:`pharmafl.secure.DPConfig.epsilon`); one aggregate without DP makes ε unbounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.ledger import (
    LedgerEntry,
    LedgerEvent,
    RoundAbortedPayload,
    RoundStartedPayload,
    TrainingStartedPayload,
    UpdateSubmittedPayload,
)
from pharmafl.secure import DPConfig

#: Round-aborted reasons after which an aggregate may have been decoded.
_RELEASED_ABORTS = ("aggregate check failed", "aborted while revealing")


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


def _run_dp(entries: Sequence[LedgerEntry]) -> dict[str, DPConfig | None]:
    out: dict[str, DPConfig | None] = {}
    for e in entries:
        if e.event is LedgerEvent.TRAINING_STARTED:
            started = TrainingStartedPayload.model_validate(e.payload)
            dp = started.parameters.get("dp")
            out[started.run_id] = None if dp is None else DPConfig.model_validate(dp)
    return out


def _released(entries: Sequence[LedgerEntry]) -> dict[str, Counter[str]]:
    """Partner → run → aggregates its updates went into."""
    out: dict[str, Counter[str]] = {}
    invited: dict[tuple[str, int], list[str]] = {}
    for e in entries:
        if e.event is LedgerEvent.ROUND_STARTED:
            started = RoundStartedPayload.model_validate(e.payload)
            invited[(started.run_id, started.round)] = list(started.participants)
        elif e.event is LedgerEvent.UPDATE_SUBMITTED:
            up = UpdateSubmittedPayload.model_validate(e.payload)
            out.setdefault(up.partner, Counter())[up.run_id] += 1
        elif e.event is LedgerEvent.ROUND_ABORTED:
            ab = RoundAbortedPayload.model_validate(e.payload)
            if any(tag in ab.reason for tag in _RELEASED_ABORTS):
                for p in invited.get((ab.run_id, ab.round), []):
                    out.setdefault(p, Counter())[ab.run_id] += 1
    return out


def partner_privacy(entries: Sequence[LedgerEntry]) -> list[PartnerPrivacy]:
    """ε per partner from a (verified) ledger; see the module doc."""
    dp_of = _run_dp(entries)
    rows = []
    for partner, by_run in sorted(_released(entries).items()):
        configs = [dp_of.get(run) for run in by_run]
        total = sum(by_run.values())
        if any(c is None for c in configs):
            eps, delta = None, None
        else:
            eps, delta = _compose(
                [(c, n) for c, n in zip(configs, by_run.values(), strict=True) if c is not None]
            )
        rows.append(
            PartnerPrivacy(
                partner=partner, aggregates=total, runs=len(by_run), epsilon=eps, delta=delta
            )
        )
    return rows


def _compose(runs: Sequence[tuple[DPConfig, int]]) -> tuple[float | None, float]:
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    delta = max(c.delta for c, _ in runs)
    accountant = RdpAccountant()
    for config, count in runs:
        if config.noise_multiplier <= 0:
            return None, delta
        accountant.compose(dp_accounting.GaussianDpEvent(config.effective_noise_multiplier), count)
    return float(accountant.get_epsilon(delta)), delta


__all__ = ["PartnerPrivacy", "partner_privacy"]
