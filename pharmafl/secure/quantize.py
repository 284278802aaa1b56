"""Fixed-point encoding of weighted trunk updates into the ring Z_{2^b} (b = 32 by default).

A partner with ``n_u`` examples and float update ``x_u`` (length P) encodes

    q_u[i] = round(scale · clamp(w_u · x_u[i], −C, C)) mod 2^b,   w_u = n_u / W   (i < P)
    q_u[P] = n_u

where C is the clipping bound (``clip``) and W the public bound on a partner's example
count (``max_examples``), so 0 < w_u ≤ 1. (With differential privacy on, the weighted
update is L2-clipped and noised as in :mod:`pharmafl.secure.dp` before the clamp.)
Summing the q_u of the n surviving partners mod 2^b and reading the first P entries as
signed b-bit integers gives scale · Σ_u clamp(w_u·x_u) exactly as long as nothing wraps;
the last entry gives Σ_u n_u, and the FedAvg mean (McMahan et al., AISTATS 2017) is
Σ_u w_u x_u / Σ_u w_u.

**Overflow bound.** |q_u[i]| ≤ C·scale + 1/2, so the signed sum never wraps when
n·(C·scale + 1/2) ≤ 2^(b−1) − 1. :meth:`QuantizationConfig.scale` returns the largest power
of two that satisfies this for the round's n (and at most 2^52 / C, so the float64 product
is exact to the integer). The count entry needs n·W ≤ 2^(b−1) − 1.

**Error bound.** Rounding costs at most 1/2 per partner and coordinate, so the decoded
weighted sum is within n / (2·scale) of Σ_u clamp(w_u·x_u) per coordinate, and the decoded
mean within n·W / (2·scale·Σ_u n_u). Example (b = 32, C = 1, n = 10): scale = 2^27,
sum error ≤ 3.7e-8.

Clamping is a bias, not noise: choose C above the largest expected update entry (the
number of clamped entries is logged, never their values).
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure.dp import DPConfig, clip_factor, l2_norm

logger = logging.getLogger(__name__)


class QuantizationConfig(BaseModel):
    """Fixed-point parameters shared by every partner and the operator of a round."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clip: float = Field(
        1.0, gt=0, le=1e6, description="Clamp each weighted entry to [-clip, clip] to encode."
    )
    max_examples: int = Field(
        1 << 20,
        ge=1,
        le=1 << 40,
        description="Public bound W on one partner's example count; weights are n_u / W.",
    )
    ring_bits: Literal[32, 64] = Field(
        32, description="Ring Z_{2^b}: 32 bits keeps a masked update the size of float32."
    )

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        """Unsigned dtype of the ring (little-endian on the wire)."""
        return np.dtype("<u4") if self.ring_bits == 32 else np.dtype("<u8")

    @property
    def signed_dtype(self) -> np.dtype[np.signedinteger]:
        """Signed dtype of the same width, to decode a sum."""
        return np.dtype("<i4") if self.ring_bits == 32 else np.dtype("<i8")

    def check(self, n_partners: int) -> None:
        """Raise :class:`SecureAggregationError` if ``n_partners`` would overflow the ring."""
        limit = (1 << (self.ring_bits - 1)) - 1
        if n_partners < 1 or n_partners * self.max_examples > limit:
            raise SecureAggregationError(
                f"{n_partners} partners × max_examples {self.max_examples} exceeds the "
                f"{self.ring_bits}-bit ring's signed range.",
                fix="lower max_examples or use ring_bits=64.",
            )
        if n_partners * (0.5 + self.clip) > limit:
            raise SecureAggregationError(
                f"clip {self.clip} is too large for {n_partners} partners in the ring."
            )

    def dp_violation(self, dp: DPConfig | None) -> str | None:
        """Why this clip would clamp ``dp``'s noise, or None: it must hold C + 6·noise std."""
        if dp is None:
            return None
        need = dp.clip_norm + 6 * dp.partner_noise_std
        if self.clip >= need:
            return None
        return (
            f"with DP, quantization.clip must be >= clip_norm + 6·noise std = {need:.4g} "
            f"(it is {self.clip}) so that noise is (almost) never clamped"
        )

    def scale(self, n_partners: int) -> float:
        """Largest power-of-two scale that cannot overflow with ``n_partners`` (see module)."""
        self.check(n_partners)
        limit = (1 << (self.ring_bits - 1)) - 1
        bound = (limit / n_partners - 0.5) / self.clip
        exp = min(math.floor(math.log2(bound)), math.floor(math.log2(2.0**52 / self.clip)))
        scale = 2.0**exp
        assert n_partners * (self.clip * scale + 0.5) <= limit
        return scale

    def sum_error_bound(self, n_partners: int) -> float:
        """Max absolute error per coordinate of the decoded weighted sum."""
        return n_partners / (2.0 * self.scale(n_partners))

    def mean_error_bound(self, n_partners: int, total_examples: int) -> float:
        """Max absolute error per coordinate of the decoded FedAvg mean."""
        return self.sum_error_bound(n_partners) * self.max_examples / total_examples


#: Elements per step: a float64 chunk of 512 KiB stays in cache through every operation.
_CHUNK = 1 << 16


def _finite_or_raise(ok: bool) -> None:
    if not ok:
        raise SecureAggregationError(
            "the update holds NaN or infinite values; it cannot be aggregated.",
            fix="check local training (learning rate, loss) before submitting.",
        )


def quantize(
    update: np.ndarray,
    num_examples: int,
    config: QuantizationConfig,
    n_partners: int,
    *,
    dp: DPConfig | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Encode one partner's update; return a ring vector of length ``update.size + 1``.

    Works chunk by chunk in float64 (exact products, cache-resident temporaries), reading
    the float update once and writing the ring vector once.

    Parameters
    ----------
    update
        Float update (any shape; flattened in C order).
    num_examples
        The partner's example count n_u (FedAvg weight), 1..max_examples.
    config
        Shared fixed-point parameters.
    n_partners
        Partners in the round (sets the scale; see :meth:`QuantizationConfig.scale`).
    dp, rng
        Optional differential privacy: L2-clip the update to ``dp.clip_norm`` and add
        Gaussian noise of std ``dp.partner_noise_std`` to the weighted update, drawn from
        ``rng`` (see :mod:`pharmafl.secure.dp`).

    Raises
    ------
    SecureAggregationError
        If the update holds NaN or infinity, or ``num_examples`` is outside 1..max_examples.
    """
    if not 1 <= num_examples <= config.max_examples:
        raise SecureAggregationError(
            f"num_examples {num_examples} is outside 1..{config.max_examples}.",
            fix="raise the consortium's max_examples (a public bound) or check the count.",
        )
    flat = np.ascontiguousarray(update).reshape(-1)
    scale = config.scale(n_partners)
    factor = scale * (num_examples / config.max_examples)
    noise_std = 0.0
    if dp is not None:
        if rng is None:
            raise SecureAggregationError("differential privacy needs a numpy Generator (rng).")
        norm = l2_norm(flat)
        _finite_or_raise(math.isfinite(norm))
        factor *= clip_factor(norm, dp.clip_norm)
        noise_std = dp.partner_noise_std * scale
    limit = config.clip * scale
    out = np.empty(flat.size + 1, dtype=config.dtype)
    signed = out[:-1].view(config.signed_dtype)
    buf = np.empty(min(_CHUNK, max(flat.size, 1)), dtype=np.float64)
    clipped = 0
    for lo in range(0, flat.size, _CHUNK):
        hi = min(flat.size, lo + _CHUNK)
        b = buf[: hi - lo]
        b[...] = flat[lo:hi]  # to float64 first: a float32 product would lose the integer
        b *= factor
        if noise_std > 0:
            b += rng.normal(0.0, noise_std, size=b.size)  # type: ignore[union-attr]
        hi_val, lo_val = float(b.max()), float(b.min())
        _finite_or_raise(math.isfinite(hi_val) and math.isfinite(lo_val))
        if hi_val > limit or lo_val < -limit:
            clipped += int(np.count_nonzero(np.abs(b) > limit))
            np.clip(b, -limit, limit, out=b)
        np.rint(b, out=b)
        np.copyto(signed[lo:hi], b, casting="unsafe")
    out[-1] = num_examples
    if clipped:
        logger.info("clamped %d of %d weighted entries to ±%g", clipped, flat.size, config.clip)
    return out


def dequantize(
    total: np.ndarray, config: QuantizationConfig, n_partners: int
) -> tuple[np.ndarray, int]:
    """Decode a ring sum of ``n_partners`` encodings: ``(weighted_sum, total_examples)``."""
    ring = np.ascontiguousarray(total, dtype=config.dtype)
    weighted = ring[:-1].view(config.signed_dtype).astype(np.float64)
    weighted *= 1.0 / config.scale(n_partners)  # a power of two: exact
    return weighted, int(ring[-1])


def aggregate_violation(
    total: np.ndarray,
    config: QuantizationConfig,
    n_partners: int,
    n_survivors: int,
    declared_examples: int | None = None,
) -> str | None:
    """Why a ring sum of ``n_survivors`` honest encodings cannot be ``total``, or None.

    Honest partners encode each entry within ±(C·scale + ½) and a count in 1..W, so the sum
    of s survivors lies within ±s·(C·scale + ½) per entry and its count within s..s·W. A
    partner that sends anything else (a count that makes Σ n_u tiny and multiplies the mean,
    entries near 2^(b−1) that wrap) moves the sum outside these bounds unless other entries
    cancel it exactly; values inside the bounds cannot be told apart from honest ones (no
    per-partner range proofs). ``declared_examples`` (the counts the contributors signed in
    their masked inputs' headers) must equal the decoded count.
    """
    ring = np.ascontiguousarray(total, dtype=config.dtype)
    signed = ring.view(config.signed_dtype)
    count = int(signed[-1])
    if declared_examples is not None and count != declared_examples:
        return (
            f"the aggregate counts {count} examples, the contributors' signed inputs declare "
            f"{declared_examples}"
        )
    if not n_survivors <= count <= n_survivors * config.max_examples:
        return (
            f"the total example count {count} is outside {n_survivors}..{n_survivors} × "
            f"max_examples for {n_survivors} contributors"
        )
    # In integers: each clamped, rounded entry is at most round(C·scale) (a float product
    # above 2^53 would lose the last units and refuse honest sums on 64-bit rings).
    bound = n_survivors * int(np.rint(config.clip * config.scale(n_partners)))
    entries = signed[:-1]
    if entries.size and (int(entries.max()) > bound or int(entries.min()) < -bound):
        return (
            f"an aggregate entry is outside ±{n_survivors} × clip ({config.clip}) for "
            f"{n_survivors} contributors"
        )
    return None


def fedavg_mean(
    weighted_sum: np.ndarray, total_examples: int, config: QuantizationConfig
) -> np.ndarray:
    """FedAvg mean Σ w_u x_u / Σ w_u from a decoded weighted sum and example total."""
    if total_examples <= 0:
        raise SecureAggregationError("the aggregate holds no examples; cannot average.")
    return weighted_sum * (config.max_examples / total_examples)


__all__ = [
    "QuantizationConfig",
    "aggregate_violation",
    "dequantize",
    "fedavg_mean",
    "quantize",
]
