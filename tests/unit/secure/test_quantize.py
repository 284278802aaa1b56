"""Fixed point: documented overflow bound holds at the extremes, error within the bound."""

from __future__ import annotations

import numpy as np
import pytest

from pharmafl.common.errors import SecureAggregationError
from pharmafl.secure import QuantizationConfig, dequantize, fedavg_mean, quantize


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
