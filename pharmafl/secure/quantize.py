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

**Compressed rings (b = 8 or 16; issue 16).** A message of b bits per parameter is b/32 of the
float32 update (8 bits: 0.25×). Every parameter is still sent, so no sparsity pattern says
anything about a partner, and the ring sum is exact; only the encoding is coarser:

    q_u[i] = SR(s · clamp(x_u[i], −C, C)),   s = L / C,   L = ⌊(2^(b−1) − 1) / n⌋

with SR stochastic rounding (⌊v + U⌋, U uniform on [0, 1) from the partner's own generator:
unbiased, E[SR(v)] = v). Partners are weighted equally (the mean is Σ_u q_u / (s·|U3|)):
with FedAvg weights n_u / W the entries of a small partner would fall below one step of so
short a ring. With batches a share of each partner's rows, every partner takes the same
steps a round, so on a compressed ring a partner's size no longer weighs (docs/security.md;
the policy's ``min_ring_bits`` can forbid compressed rings).

- *No wrap:* |s·clamp(x)| ≤ L and L is an integer; rounded entries are clamped to ±L again
  (⌊L + U⌋ may give L + 1 in float64), so |q_u[i]| ≤ L and the signed sum of n partners lies
  within ±n·L ≤ 2^(b−1) − 1.
- *Error:* |SR(v) − v| < 1, so each decoded mean entry is within 1/s = C/L of the mean of
  the clamped updates (its standard deviation at most 1/(2s·√|U3|)); the bias is clamping
  only. Example (b = 8, n = 4): L = 31, error < C/31.
- *Count:* n_u is sent in k base-B digits after the P entries, B = ⌊(2^b − 1)/n⌋ + 1 and
  B^k > W, so the n digit sums never wrap (n·(B − 1) ≤ 2^b − 1) and decode to Σ n_u exactly.
- *Scale:* C is public. The plan's clip is round 0's; from round 1 the operator sets each
  round's C from the previous round's decoded mean (:func:`next_clip`, bounded). That C is
  the same for all partners is checked by the partners (each signs the spec's hash into its
  key advert), not assumed; a partner refuses a C that clamps too many of its entries
  (:data:`MAX_CLAMPED_FRACTION`). The store, which reads the round spec, sees each C.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import PolicyViolationError, SecureAggregationError
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
    ring_bits: Literal[8, 16, 32, 64] = Field(
        32,
        description="Ring Z_{2^b}: 32 bits keeps a masked update the size of float32; 8 or 16 "
        "compress it to 0.25× or 0.5× (stochastic rounding, partners weighted equally, the "
        "operator adapts clip per round; see pharmafl.secure.quantize).",
    )

    @property
    def compressed(self) -> bool:
        """A ring narrower than float32: stochastic rounding, equal weights, digit count."""
        return self.ring_bits < 32

    def levels(self, n_partners: int) -> int:
        """Compressed rings: each partner's entries lie in ±L, n·L ≤ 2^(b−1) − 1."""
        return ((1 << (self.ring_bits - 1)) - 1) // max(n_partners, 1)

    def count_base(self, n_partners: int) -> int:
        """Compressed rings: base B of the count digits, n·(B − 1) ≤ 2^b − 1."""
        return ((1 << self.ring_bits) - 1) // max(n_partners, 1) + 1

    def count_entries(self, n_partners: int) -> int:
        """Ring entries after the P update entries that carry the example count."""
        if not self.compressed:
            return 1
        base, k = self.count_base(n_partners), 1
        while base**k <= self.max_examples:
            k += 1
        return k

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        """Unsigned dtype of the ring (little-endian on the wire)."""
        return np.dtype(f"<u{self.ring_bits // 8}")

    @property
    def signed_dtype(self) -> np.dtype[np.signedinteger]:
        """Signed dtype of the same width, to decode a sum."""
        return np.dtype(f"<i{self.ring_bits // 8}")

    @classmethod
    def for_ring(cls, ring_bits: int, clip: float | None = None, **kw: Any) -> QuantizationConfig:
        """The config of a ring with its default clip: 1 on weighted entries for 32/64 bits,
        :data:`COMPRESSED_CLIP` on update entries (round 0's) for a compressed ring."""
        if clip is None:
            clip = COMPRESSED_CLIP if ring_bits < 32 else 1.0
        return cls(ring_bits=ring_bits, clip=clip, **kw)  # type: ignore[arg-type]

    def check(self, n_partners: int) -> None:
        """Raise :class:`SecureAggregationError` if ``n_partners`` would overflow the ring."""
        if self.compressed:
            if n_partners < 1 or self.levels(n_partners) < 1:
                raise SecureAggregationError(
                    f"{n_partners} partners leave no level of the {self.ring_bits}-bit ring "
                    "to each partner.",
                    fix="use a wider ring (ring_bits 16 or 32).",
                )
            return
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

    @staticmethod
    def dp_floor(dp: DPConfig | None) -> float:
        """The smallest clip that (almost) never clamps ``dp``'s noise: C + 6·noise std."""
        return 0.0 if dp is None else dp.clip_norm + 6 * dp.partner_noise_std

    def dp_violation(self, dp: DPConfig | None) -> str | None:
        """Why this clip would clamp ``dp``'s noise, or None: it must hold C + 6·noise std."""
        if dp is None:
            return None
        need = self.dp_floor(dp)
        if self.clip >= need:
            return None
        return (
            f"with DP, quantization.clip must be >= clip_norm + 6·noise std = {need:.4g} "
            f"(it is {self.clip}) so that noise is (almost) never clamped"
        )

    def scale(self, n_partners: int) -> float:
        """Largest power-of-two scale that cannot overflow with ``n_partners`` (see module);
        L / C on a compressed ring."""
        self.check(n_partners)
        if self.compressed:
            return self.levels(n_partners) / self.clip
        limit = (1 << (self.ring_bits - 1)) - 1
        bound = (limit / n_partners - 0.5) / self.clip
        exp = min(math.floor(math.log2(bound)), math.floor(math.log2(2.0**52 / self.clip)))
        scale = 2.0**exp
        assert n_partners * (self.clip * scale + 0.5) <= limit
        return scale

    def sum_error_bound(self, n_partners: int) -> float:
        """Max absolute error per coordinate of the decoded weighted sum (the sum of the
        clamped updates on a compressed ring)."""
        per_partner = 1.0 if self.compressed else 0.5  # stochastic vs nearest rounding
        return n_partners * per_partner / self.scale(n_partners)

    def mean_error_bound(self, n_partners: int, total_examples: int) -> float:
        """Max absolute error per coordinate of the decoded mean (FedAvg; the equal-weight
        mean of the clamped updates on a compressed ring)."""
        if self.compressed:
            return 1.0 / self.scale(n_partners)
        return self.sum_error_bound(n_partners) * self.max_examples / total_examples

    def mean_factor(self, total_examples: int, n_survivors: int) -> float:
        """The decoded sum times this is the mean: Σ w_u / W → FedAvg, or 1 / |U3|."""
        if total_examples <= 0 or (self.compressed and n_survivors <= 0):
            raise SecureAggregationError("the aggregate holds no examples; cannot average.")
        if self.compressed:
            return 1.0 / n_survivors
        return self.max_examples / total_examples


#: The largest share of a partner's nonzero update entries a round's clip may clamp before
#: the partner refuses to send (:func:`quantize`'s ``max_clamped``). Honest clips clamp far
#: fewer: the 32-bit ring's clip 1 on weighted entries none, and on the demo consortium's
#: 8-bit run (docs/benchmarks.md) no partner clamped a single entry in 8 rounds.
MAX_CLAMPED_FRACTION = 0.05

#: Round 0's clip on a compressed ring, before any aggregate sets it: local Adam steps move
#: an entry by about the learning rate (1e-3 by default), so tens of steps a round stay
#: well inside ±0.05 (measured on the demo consortium: see docs/benchmarks.md).
COMPRESSED_CLIP = 0.05

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
    max_clamped: float | None = None,
) -> np.ndarray:
    """Encode one partner's update; return a ring vector of ``update.size`` entries and the
    count's (:meth:`QuantizationConfig.count_entries`: one on a 32/64-bit ring).

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
        ``rng`` (see :mod:`pharmafl.secure.dp`). On a compressed ring ``rng`` also draws the
        stochastic rounding (fresh OS entropy when None and no DP).
    max_clamped
        Refuse (:class:`PolicyViolationError`) when more than this share of the update's
        nonzero entries would be clamped: a clip far below a partner's entries turns the sum
        into per-partner sign votes (partners pass :data:`MAX_CLAMPED_FRACTION`).

    Raises
    ------
    SecureAggregationError
        If the update holds NaN or infinity, or ``num_examples`` is outside 1..max_examples.
    PolicyViolationError
        If more than ``max_clamped`` of the nonzero entries would be clamped.
    """
    if not 1 <= num_examples <= config.max_examples:
        raise SecureAggregationError(
            f"num_examples {num_examples} is outside 1..{config.max_examples}.",
            fix="raise the consortium's max_examples (a public bound) or check the count.",
        )
    if dp is not None and rng is None:
        raise SecureAggregationError("differential privacy needs a numpy Generator (rng).")
    flat = np.ascontiguousarray(update).reshape(-1)
    scale = config.scale(n_partners)
    factor = scale if config.compressed else scale * (num_examples / config.max_examples)
    noise_std = 0.0
    if dp is not None:
        norm = l2_norm(flat)
        _finite_or_raise(math.isfinite(norm))
        factor *= clip_factor(norm, dp.clip_norm)
        noise_std = dp.partner_noise_std * scale
    out = np.empty(flat.size + config.count_entries(n_partners), dtype=config.dtype)
    encode = _Encoder(config, n_partners, factor, noise_std, rng)
    signed = out[: flat.size].view(config.signed_dtype)
    for lo in range(0, flat.size, _CHUNK):
        hi = min(flat.size, lo + _CHUNK)
        np.copyto(signed[lo:hi], encode(flat[lo:hi]), casting="unsafe")
    out[flat.size :] = _count_digits(num_examples, config, n_partners)
    if encode.clipped:
        logger.info(
            "clamped %d of %d weighted entries (%d nonzero) to ±%g",
            encode.clipped,
            flat.size,
            encode.moved,
            config.clip,
        )
    if max_clamped is not None and encode.clipped > max_clamped * max(encode.moved, 1):
        raise PolicyViolationError(
            f"the round's clip {config.clip:g} would clamp {encode.clipped} of this "
            f"partner's {encode.moved} nonzero update entries (more than {max_clamped:.0%}): "
            "so low a clip reveals which way each partner moved, not only the sum.",
            fix="the operator sets clips from the plan (quantization.clip) and the last "
            "aggregate; raise the plan's clip, or find why the operator sent this one.",
        )
    return out


class _Encoder:
    """Scale, (noise,) clamp and round one chunk into a reused float64 buffer."""

    def __init__(
        self,
        config: QuantizationConfig,
        n_partners: int,
        factor: float,
        noise_std: float,
        rng: np.random.Generator | None,
    ) -> None:
        self.factor, self.noise_std, self.clipped, self.moved = factor, noise_std, 0, 0
        self.stochastic = config.compressed
        scale = config.scale(n_partners)
        # Compressed: clamp to the integer L itself (clip·(L/clip) may round above L).
        self.limit = float(config.levels(n_partners)) if self.stochastic else config.clip * scale
        self.rng = rng if rng is not None or not self.stochastic else np.random.default_rng()
        self.buf = np.empty(_CHUNK, dtype=np.float64)

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        b = self.buf[: chunk.size]
        b[...] = chunk  # to float64 first: a float32 product would lose the integer
        self.moved += int(np.count_nonzero(b))
        b *= self.factor
        if self.noise_std > 0:
            b += self.rng.normal(0.0, self.noise_std, size=b.size)  # type: ignore[union-attr]
        if b.size:
            hi_val, lo_val = float(b.max()), float(b.min())
            _finite_or_raise(math.isfinite(hi_val) and math.isfinite(lo_val))
            if hi_val > self.limit or lo_val < -self.limit:
                self.clipped += int(np.count_nonzero(np.abs(b) > self.limit))
                np.clip(b, -self.limit, self.limit, out=b)
        if self.stochastic:  # ⌊v + U⌋: v's ceiling with probability frac(v), never past ±L
            b += self.rng.random(b.size)  # type: ignore[union-attr]
            np.floor(b, out=b)
            # v + U may round up to L + 1 in float64 when v = L (probability ~L·2^-53):
            # clamp again so the no-wrap bound holds for every draw.
            np.clip(b, -self.limit, self.limit, out=b)
        else:
            np.rint(b, out=b)
        return b


def _count_digits(num_examples: int, config: QuantizationConfig, n_partners: int) -> list[int]:
    """n_u as the ring's count entries: itself, or its base-B digits (least first)."""
    if not config.compressed:
        return [num_examples]
    base, digits, rest = config.count_base(n_partners), [], num_examples
    for _ in range(config.count_entries(n_partners)):
        rest, d = divmod(rest, base)
        digits.append(d)
    return digits


def _split(
    total: np.ndarray, config: QuantizationConfig, n_partners: int
) -> tuple[np.ndarray, np.ndarray]:
    """A ring vector's signed update entries and its unsigned count entries."""
    ring = np.ascontiguousarray(total, dtype=config.dtype)
    k = config.count_entries(n_partners)
    return ring[:-k].view(config.signed_dtype), ring[-k:]


def _count(digits: np.ndarray, config: QuantizationConfig, n_partners: int) -> int:
    if not config.compressed:
        return int(digits.view(config.signed_dtype)[0])
    base = config.count_base(n_partners)
    return sum(int(d) * base**j for j, d in enumerate(digits))


def dequantize(
    total: np.ndarray, config: QuantizationConfig, n_partners: int
) -> tuple[np.ndarray, int]:
    """Decode a ring sum of ``n_partners`` encodings: ``(weighted_sum, total_examples)``
    (on a compressed ring: the sum of the clamped, unweighted updates)."""
    entries, digits = _split(total, config, n_partners)
    weighted = entries.astype(np.float64)
    weighted *= 1.0 / config.scale(n_partners)  # a power of two (exact) on 32/64-bit rings
    return weighted, _count(digits, config, n_partners)


def aggregate_violation(
    total: np.ndarray,
    config: QuantizationConfig,
    n_partners: int,
    n_survivors: int,
    declared_examples: int | None = None,
) -> str | None:
    """Why a ring sum of ``n_survivors`` honest encodings cannot be ``total``, or None.

    Honest partners encode each entry within ±(C·scale + ½) (±L on a compressed ring) and a
    count in 1..W, so the sum of s survivors lies within ±s·(C·scale + ½) per entry and its
    count within s..s·W. A partner that sends anything else (a count that makes Σ n_u tiny
    and multiplies the mean, entries near 2^(b−1) that wrap) moves the sum outside these
    bounds unless other entries cancel it exactly; values inside the bounds cannot be told
    apart from honest ones (no per-partner range proofs). ``declared_examples`` (the counts
    the contributors signed in their masked inputs' headers) must equal the decoded count.
    """
    entries, digits = _split(total, config, n_partners)
    if config.compressed and int(digits.max()) > n_survivors * (config.count_base(n_partners) - 1):
        return f"a count digit of the aggregate exceeds what {n_survivors} contributors can sum to"
    count = _count(digits, config, n_partners)
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
    per_partner = (
        config.levels(n_partners)
        if config.compressed
        else int(np.rint(config.clip * config.scale(n_partners)))
    )
    bound = n_survivors * per_partner
    if entries.size and (int(entries.max()) > bound or int(entries.min()) < -bound):
        return (
            f"an aggregate entry is outside ±{n_survivors} × clip ({config.clip}) for "
            f"{n_survivors} contributors"
        )
    return None


def fedavg_mean(
    weighted_sum: np.ndarray,
    total_examples: int,
    config: QuantizationConfig,
    n_survivors: int | None = None,
) -> np.ndarray:
    """The mean from a decoded sum: FedAvg Σ w_u x_u / Σ w_u, or the equal-weight mean of
    ``n_survivors`` clamped updates on a compressed ring."""
    return weighted_sum * config.mean_factor(total_examples, n_survivors or 0)


def next_clip(mean: np.ndarray, config: QuantizationConfig, ceiling: float) -> float:
    """A compressed ring's clip for the next round, from this round's decoded mean Δ̄.

    Set so that one step of the ring, C / L, is a fixed share of Δ̄'s typical large entry:
    C = NEXT_CLIP_FACTOR · q where q is the 99.9th percentile of Δ̄'s nonzero |entries|.
    Partners' own entries may exceed C and are clamped (each partner counts them and refuses
    to send when too many are, :data:`MAX_CLAMPED_FRACTION`). Bounded so that no partner
    can pump it with in-range values (which the aggregate check cannot see): at most twice
    the previous clip and at most ``ceiling`` (the operator passes 4 × the plan's clip), at
    least a quarter of the previous clip.
    """
    moved = np.abs(mean[mean != 0])  # entries no partner moved say nothing about the scale
    if moved.size == 0:
        return config.clip
    c = NEXT_CLIP_FACTOR * float(np.quantile(moved, NEXT_CLIP_QUANTILE))
    if not math.isfinite(c) or c <= 0:
        return config.clip
    c = min(max(c, config.clip / 4), 2 * config.clip, ceiling)
    return float(f"{c:.6g}")


#: The percentile of |Δ̄| and its multiple that set the next round's clip (see next_clip).
NEXT_CLIP_QUANTILE = 0.999
NEXT_CLIP_FACTOR = 4.0


__all__ = [
    "QuantizationConfig",
    "aggregate_violation",
    "dequantize",
    "fedavg_mean",
    "next_clip",
    "quantize",
]
