"""Fixed point: documented overflow bound holds at the extremes, error within the bound."""

from __future__ import annotations

import numpy as np
import pytest

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import QuantizationConfig, dequantize, fedavg_mean, quantize
from pharmafl.secure.quantize import aggregate_violation


def _ring_sum(vectors: list[np.ndarray]) -> np.ndarray:
    total = np.zeros_like(vectors[0])
    for v in vectors:
        total += v  # wrap-around, as in the protocol
    return total


@pytest.mark.parametrize("n", [2, 3, 10, 50])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_worst_case_sum_never_wraps(n: int, sign: float) -> None:
    cfg = QuantizationConfig(clip=0.5, max_examples=1000)
    x = np.full(8, sign * 10.0)  # clamped to ±clip
    enc = [quantize(x, cfg.max_examples, cfg, n) for _ in range(n)]
    weighted, total = dequantize(_ring_sum(enc), cfg, n)
    assert total == n * cfg.max_examples
    assert np.allclose(weighted, sign * cfg.clip * n, atol=cfg.sum_error_bound(n))
    limit = 2**31 - 1
    assert n * (cfg.clip * cfg.scale(n) + 0.5) <= limit
    assert 2 * n * (cfg.clip * cfg.scale(n) + 0.5) > limit  # the largest power of two


@pytest.mark.parametrize("ring_bits", [32, 64])
def test_error_within_documented_bound(ring_bits: int) -> None:
    rng = np.random.default_rng(1)
    n = 7
    cfg = QuantizationConfig(clip=1.0, max_examples=5000, ring_bits=ring_bits)
    xs = [rng.normal(0, 0.3, 1000).astype(np.float32) for _ in range(n)]
    counts = rng.integers(1, 5000, n)
    enc = [quantize(x, int(c), cfg, n) for x, c in zip(xs, counts, strict=True)]
    assert enc[0].dtype == cfg.dtype and enc[0].size == 1001
    weighted, total = dequantize(_ring_sum(enc), cfg, n)
    expected = sum(
        np.clip(c / cfg.max_examples * x.astype(np.float64), -1, 1)
        for x, c in zip(xs, counts, strict=True)
    )
    assert total == counts.sum()
    assert np.max(np.abs(weighted - expected)) <= cfg.sum_error_bound(n)
    mean = fedavg_mean(weighted, total, cfg)
    exact_mean = sum(c * x.astype(np.float64) for x, c in zip(xs, counts, strict=True)) / total
    assert np.max(np.abs(mean - exact_mean)) <= cfg.mean_error_bound(n, total)
    if ring_bits == 64:
        assert cfg.sum_error_bound(n) < 1e-12


def test_invalid_inputs() -> None:
    cfg = QuantizationConfig(max_examples=100)
    with pytest.raises(SecureAggregationError, match="NaN"):
        quantize(np.array([0.0, np.nan]), 1, cfg, 3)
    with pytest.raises(SecureAggregationError, match=r"outside 1\.\.100"):
        quantize(np.zeros(3), 101, cfg, 3)
    with pytest.raises(SecureAggregationError, match="ring"):
        QuantizationConfig(max_examples=1 << 30).scale(4)
    with pytest.raises(SecureAggregationError, match="no examples"):
        fedavg_mean(np.zeros(2), 0, cfg)


def test_dp_noise_needs_a_generator() -> None:
    from pharmafl.secure import DPConfig

    dp = DPConfig(clip_norm=1.0, noise_multiplier=1.0)
    with pytest.raises(SecureAggregationError, match="Generator"):
        quantize(np.zeros(4), 1, QuantizationConfig(), 3, dp=dp, rng=None)


def test_a_round_with_too_few_reveals_aborts() -> None:
    from pharmafl.secure import run_secagg_round

    rng = np.random.default_rng(0)
    updates = {p: rng.normal(0, 0.01, 8) for p in ("a", "b", "c")}
    counts = dict.fromkeys(updates, 5)
    with pytest.raises(SecureAggregationError, match="too few partners revealed shares"):
        run_secagg_round(updates, counts, threshold=2, dropouts={"b": "unmask", "c": "unmask"})


# --- compressed rings (issue 16) --------------------------------------------------------------


@pytest.mark.parametrize("ring_bits", [8, 16])
@pytest.mark.parametrize("n", [2, 3, 4, 10, 50, 127])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_compressed_worst_case_never_wraps(ring_bits: int, n: int, sign: float) -> None:
    cfg = QuantizationConfig(clip=0.5, max_examples=1 << 20, ring_bits=ring_bits)
    if ring_bits == 8 and n > 127:
        return
    x = np.full(8, sign * 10.0)  # clamped to ±clip: every partner at ±L
    enc = [quantize(x, cfg.max_examples, cfg, n) for _ in range(n)]
    assert enc[0].dtype == np.dtype(f"<u{ring_bits // 8}")
    assert enc[0].size == 8 + cfg.count_entries(n)
    total = _ring_sum(enc)
    assert aggregate_violation(total, cfg, n, n, n * cfg.max_examples) is None
    weighted, count = dequantize(total, cfg, n)
    assert count == n * cfg.max_examples  # every digit at its largest sum, none wrapped
    assert np.allclose(weighted, sign * cfg.clip * n, rtol=1e-12)
    assert n * cfg.levels(n) <= 2 ** (ring_bits - 1) - 1
    assert (n + 1) * cfg.levels(n) > 2 ** (ring_bits - 1) - 1 or cfg.levels(n) == cfg.levels(n + 1)


def test_compressed_ring_refuses_more_partners_than_levels() -> None:
    cfg = QuantizationConfig(ring_bits=8)
    assert cfg.levels(127) == 1
    with pytest.raises(SecureAggregationError, match="no level"):
        cfg.check(128)


@pytest.mark.parametrize("ring_bits", [8, 16])
def test_compressed_error_within_documented_bound_and_unbiased(ring_bits: int) -> None:
    rng = np.random.default_rng(2)
    n, size = 4, 4000
    cfg = QuantizationConfig(clip=0.1, max_examples=5000, ring_bits=ring_bits)
    xs = [rng.normal(0, 0.03, size).astype(np.float32) for _ in range(n)]
    counts = [int(c) for c in rng.integers(1, 5000, n)]
    clamped = sum(np.clip(x.astype(np.float64), -cfg.clip, cfg.clip) for x in xs)
    errors = []
    for rep in range(20):
        gen = np.random.default_rng(rep)
        enc = [quantize(x, c, cfg, n, rng=gen) for x, c in zip(xs, counts, strict=True)]
        total = _ring_sum(enc)
        assert aggregate_violation(total, cfg, n, n, sum(counts)) is None
        weighted, count = dequantize(total, cfg, n)
        assert count == sum(counts)
        assert np.max(np.abs(weighted - clamped)) < cfg.sum_error_bound(n)
        mean = fedavg_mean(weighted, count, cfg, n_survivors=n)
        assert np.max(np.abs(mean - clamped / n)) < cfg.mean_error_bound(n, count)
        errors.append(weighted - clamped)
    # Stochastic rounding is unbiased: the mean error over 20 × 4,000 entries is ~0, far
    # below one step (nearest rounding of these small entries would be biased towards 0).
    step = 1.0 / cfg.scale(n)
    assert abs(float(np.mean(errors))) < 0.01 * step
    assert abs(float(np.mean(np.mean(errors, axis=0) * np.sign(clamped)))) < 0.02 * step


def test_compressed_message_is_a_quarter_of_float32() -> None:
    cfg = QuantizationConfig(ring_bits=8, max_examples=1 << 20)
    update = np.zeros(100_000, dtype=np.float32)
    enc = quantize(update, 10, cfg, 10)
    assert enc.nbytes <= 0.25 * update.nbytes + 16
    assert QuantizationConfig(ring_bits=16).count_entries(10) == 2  # B = 6,554: 2 digits


def test_compressed_aggregate_checks_catch_a_wrapping_partner() -> None:
    cfg = QuantizationConfig(clip=1.0, ring_bits=8, max_examples=1000)
    n = 4
    honest = [quantize(np.zeros(5), 10, cfg, n) for _ in range(3)]
    evil = quantize(np.zeros(5), 10, cfg, n)
    evil[0] = np.uint8(127)  # outside ±L; the sum is outside ±n·L = ±124 (as on wide rings,
    # a sum that wraps back inside the honest range cannot be told from an honest one)
    assert aggregate_violation(_ring_sum([*honest, evil]), cfg, n, n, 40) is not None
    digit = quantize(np.zeros(5), 10, cfg, n)
    digit[6] = np.uint8(255)  # a count digit whose sum exceeds n·(B − 1) = 252
    assert "count digit" in str(aggregate_violation(_ring_sum([*honest, digit]), cfg, n, n, 40))


def test_next_clip_follows_the_aggregate() -> None:
    from pharmafl.secure import next_clip

    cfg = QuantizationConfig(clip=1.0, ring_bits=8)
    rng = np.random.default_rng(0)
    mean = np.zeros(100_000)
    mean[:20_000] = rng.normal(0, 0.01, 20_000)  # most entries never moved (absent features)
    c = next_clip(mean, cfg, ceiling=4.0)
    assert c == 0.25  # shrinks at most fourfold a round
    c2 = next_clip(mean, cfg.model_copy(update={"clip": 0.1}), ceiling=4.0)
    assert 0.08 < c2 < 0.2  # ≈ 4 × the 99.9th percentile of the moved entries (≈ 0.13)
    assert next_clip(np.zeros(10), cfg, ceiling=4.0) == cfg.clip


def test_one_partner_cannot_pump_the_clip() -> None:
    """Review finding: in-range values on 0.2 % of coordinates (the aggregate check cannot
    see them) tripled the clip every round until partners refused every spec. Now the clip
    grows at most twofold a round and never past the ceiling."""
    from pharmafl.secure import next_clip

    n, size = 4, 50_000
    cfg = QuantizationConfig(clip=0.05, ring_bits=8)
    rng = np.random.default_rng(3)
    clips = []
    for _ in range(20):
        honest = [rng.normal(0, 0.003, size) for _ in range(n - 1)]
        enc = [quantize(x, 10, cfg, n) for x in honest]
        evil = quantize(np.zeros(size), 10, cfg, n)
        evil.view(cfg.signed_dtype)[: size // 500] = 3 * cfg.levels(n)  # 3L: within ±n·L
        total = _ring_sum([*enc, evil])
        assert aggregate_violation(total, cfg, n, n, 40) is None  # invisible to the check
        weighted, count = dequantize(total, cfg, n)
        c = next_clip(fedavg_mean(weighted, count, cfg, n), cfg, ceiling=4 * 0.05)
        assert c <= 2 * cfg.clip
        clips.append(c)
        cfg = cfg.model_copy(update={"clip": c})
    assert max(clips) <= 0.2  # the ceiling: 4 × round 0's clip
    assert clips[-1] == 0.2  # (without the bounds it reached 1e6 and the run died)
