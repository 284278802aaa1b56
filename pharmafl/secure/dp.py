"""Optional differential privacy: per-partner L2 clipping and Gaussian noise before masking.

Distributed Gaussian mechanism under secure aggregation (DP-FedAvg, McMahan et al., ICLR
2018; distributed noise as in Kairouz et al., ICML 2021): each partner clips its update to
L2 norm C, weights it by w_u ≤ 1 and adds N(0, σ²·I) with σ = z·C / √m. The operator only
sees the sum, which carries noise of standard deviation ≥ z·C as long as at least m honest
partners contribute. Participation and Σ n_u are public, so one partner's data changes the
weighted sum by up to 2C (replace one partner's data): ε is accounted at z / 2. The privacy
loss over rounds is computed with the Rényi-DP accountant of ``dp_accounting`` (Mironov, CSF
2017) and reported as ε for a given δ.

Not covered: the total example count (revealed in clear to the operator), and noise from
partners that collude with the operator (set m to the number of partners you trust).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import SecureAggregationError

logger = logging.getLogger(__name__)


class DPConfig(BaseModel):
    """Differential-privacy parameters, identical for every partner of a round."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip_norm: float = Field(gt=0, le=1e6, description="L2 bound C on each partner's update.")
    noise_multiplier: float = Field(
        ge=0, le=1e4, description="z: the aggregate carries Gaussian noise of std z·C."
    )
    min_contributors: int = Field(
        1,
        ge=1,
        le=10_000,
        description="m: noise is split so that any m honest partners together add std z·C.",
    )
    delta: float = Field(1e-6, gt=0, lt=1, description="δ at which ε is reported.")

    @property
    def partner_noise_std(self) -> float:
        """Standard deviation each partner adds per coordinate: z·C/√m."""
        return self.noise_multiplier * self.clip_norm / math.sqrt(self.min_contributors)

    @property
    def effective_noise_multiplier(self) -> float:
        """Noise std over sensitivity: z / 2. Who takes part and Σ n_u are public, so the
        neighbouring relation is *replace* one partner's data (its clipped, weighted update
        moves by up to 2C), not add/remove (C)."""
        return self.noise_multiplier / 2

    def epsilon(self, rounds: int, *, sampling_rate: float = 1.0) -> float:
        """ε after ``rounds`` rounds a partner contributed to, at this config's δ
        (:func:`dp_epsilon` at the replace-one multiplier z / 2)."""
        return dp_epsilon(
            self.effective_noise_multiplier, rounds, self.delta, sampling_rate=sampling_rate
        )


def l2_norm(x: np.ndarray, *, chunk: int = 1 << 20) -> float:
    """L2 norm of a float vector, accumulated in float64 chunk by chunk (no full copy)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    total = 0.0
    for lo in range(0, flat.size, chunk):
        part = flat[lo : lo + chunk].astype(np.float64)
        total += float(np.dot(part, part))
    return math.sqrt(total)


def clip_factor(norm: float, clip_norm: float) -> float:
    """The factor min(1, C / ‖x‖) that clips a vector of norm ``norm`` to ``clip_norm``."""
    return 1.0 if norm <= clip_norm else clip_norm / norm


def clip_l2(x: np.ndarray, clip_norm: float) -> float:
    """Scale float vector ``x`` in place to L2 norm ≤ ``clip_norm``; return the original norm."""
    norm = l2_norm(x)
    if norm > clip_norm:
        x *= clip_norm / norm
    return norm


def add_gaussian_noise(x: np.ndarray, std: float, rng: np.random.Generator) -> None:
    """Add N(0, std²) to every entry of float64 vector ``x`` in place."""
    if std > 0:
        x += rng.normal(0.0, std, size=x.shape)


def privatize(
    weighted: np.ndarray, weight: float, config: DPConfig, rng: np.random.Generator
) -> np.ndarray:
    """Clip ``weighted / weight`` to norm C, re-weight, add the partner's noise share.

    ``weighted`` is the partner's float64 update already multiplied by its weight
    ``w_u ≤ 1``; it is modified in place and returned.
    """
    if not 0 < weight <= 1:
        raise SecureAggregationError(f"DP weight must be in (0, 1], got {weight}.")
    norm = clip_l2(weighted, config.clip_norm * weight)
    add_gaussian_noise(weighted, config.partner_noise_std, rng)
    logger.info(
        "DP: clipped weighted update (norm %s bound), added noise std %.3g",
        "above" if norm > config.clip_norm * weight else "within",
        config.partner_noise_std,
    )
    return weighted


def dp_epsilon(
    noise_multiplier: float, rounds: int, delta: float, *, sampling_rate: float = 1.0
) -> float:
    """ε of ``rounds`` Gaussian mechanisms with noise multiplier z at δ (RDP accountant).

    Parameters
    ----------
    noise_multiplier
        z = noise std / sensitivity. 0 gives ε = ∞.
    rounds
        Number of aggregation rounds a partner takes part in.
    delta
        Target δ.
    sampling_rate
        Probability that a partner is sampled into a round (1: every round, no
        amplification; < 1: Poisson subsampling).
    """
    if rounds < 0 or not 0 < delta < 1 or not 0 < sampling_rate <= 1:
        raise SecureAggregationError(
            "dp_epsilon needs rounds >= 0, 0 < delta < 1 and 0 < sampling_rate <= 1."
        )
    if rounds == 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    # Imported here: dp_accounting pulls in scipy, which the aggregator's hot path never needs.
    import dp_accounting
    from dp_accounting.rdp import RdpAccountant

    event: dp_accounting.DpEvent = dp_accounting.GaussianDpEvent(noise_multiplier)
    if sampling_rate < 1:
        event = dp_accounting.PoissonSampledDpEvent(sampling_rate, event)
    accountant = RdpAccountant()
    accountant.compose(event, rounds)
    return float(accountant.get_epsilon(delta))


__all__ = [
    "DPConfig",
    "add_gaussian_noise",
    "clip_factor",
    "clip_l2",
    "dp_epsilon",
    "l2_norm",
    "privatize",
]
