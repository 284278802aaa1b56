"""The federation plan (``pharmafl.contract.plan``): refused before any round when a round
would be refused, or would silently spoil its own guarantee."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pharmafl.contract import FederationPlan
from pharmafl.secure import DPConfig, QuantizationConfig

DP = DPConfig(clip_norm=1.0, noise_multiplier=1.0, min_contributors=3)
TRUNK = {"kind": "sparse", "hidden_sizes": [8], "dropouts": [0.0]}


def test_a_clip_that_would_clamp_the_dp_noise_is_refused() -> None:
    """With the quantization clip below C + 6·noise std, the aggregate's noise would be cut
    off: less noise than the privacy accounting assumes. Refused when the plan is made."""
    tight = QuantizationConfig(clip=1.0)
    assert tight.dp_violation(DP) is not None
    with pytest.raises(ValidationError, match=r"quantization.clip must be >= clip_norm \+ 6"):
        FederationPlan(trunk=TRUNK, quantization=tight, dp=DP)
    plan = FederationPlan(trunk=TRUNK, quantization=tight).with_dp(
        DP
    )  # the supported way: raised to fit
    assert plan.dp == DP and plan.quantization.clip >= QuantizationConfig.dp_floor(DP)
    assert plan.quantization.dp_violation(DP) is None
