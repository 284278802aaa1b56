"""Attack: one malicious partner silently corrupts the sum (issue 12, finding 7).

Clamping runs on the sender's side only, so a partner that skips it can (a) set its count
entry so that Σ n_u = 1, multiplying the FedAvg mean by the true total weight, or (b) send
entries near 2^31 that wrap the ring. Before the checks both rounds "succeeded" and the round
report showed nothing. Now the operator checks the decoded aggregate (count within s..s·W,
every entry within ±s·(C·scale + ½) for s contributors) and the decoded count against the
counts the contributors signed in their round reports; a violation aborts the round with a
named reason, and the aggregate is never applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import pharmafl.secure.client as client_module
from pharmafl.common.errors import AggregateCheckError, SecureAggregationError
from pharmafl.secure import QuantizationConfig, run_secagg_round

PARTNERS = ("alpha", "bravo", "charlie", "delta")
COUNTS = {"alpha": 100, "bravo": 200, "charlie": 300, "delta": 777}  # delta is the attacker
Q = QuantizationConfig()


@pytest.fixture
def updates() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {p: rng.normal(0, 0.01, 64) for p in PARTNERS}


@pytest.fixture
def attacker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Callable], None]]:
    """Install a rewrite of delta's encoded vector (identified by its example count)."""
    real = client_module.quantize

    def install(rewrite: Callable[[np.ndarray], None]) -> None:
        def quantize(update: np.ndarray, num_examples: int, *args: Any, **kw: Any) -> np.ndarray:
            out = real(update, num_examples, *args, **kw)
            if num_examples == COUNTS["delta"]:
                rewrite(out)
            return out

        monkeypatch.setattr(client_module, "quantize", quantize)

    yield install


def test_an_honest_round_at_the_clamp_passes_the_checks(updates: dict[str, np.ndarray]) -> None:
    # Entries at ±C after weighting: the largest honest aggregate is inside the bound. (Only a
    # few: a partner refuses a clip that clamps more than 5 % of its entries.)
    big = {
        p: np.r_[np.full(3, 1e9 if i % 2 else -1e9), np.full(61, 1e-6)]
        for i, p in enumerate(PARTNERS)
    }
    result = run_secagg_round(big, COUNTS, quantization=Q).result
    assert result.report.total_examples == sum(COUNTS.values())


def test_a_count_that_makes_the_total_tiny_is_refused(
    updates: dict[str, np.ndarray], attacker: Callable[[Callable], None]
) -> None:
    honest_others = sum(n for p, n in COUNTS.items() if p != "delta")

    def tiny_total(out: np.ndarray) -> None:  # Σ n_u = 1: the mean is multiplied ×1,377
        out[-1] = np.array(1 - honest_others, dtype=np.int64).astype(out.dtype)

    attacker(tiny_total)
    with pytest.raises(AggregateCheckError, match="counts 1 examples, the contributors' signed"):
        run_secagg_round(updates, COUNTS, quantization=Q)


def test_entries_that_wrap_the_ring_are_refused(
    updates: dict[str, np.ndarray], attacker: Callable[[Callable], None]
) -> None:
    def wrap(out: np.ndarray) -> None:
        out[:8] = np.array(2**31 - 1, dtype=np.int64).astype(out.dtype)

    attacker(wrap)
    with pytest.raises(AggregateCheckError, match="aggregate entry is outside"):
        run_secagg_round(updates, COUNTS, quantization=Q)


def test_before_the_checks_the_attack_went_through_silently(
    updates: dict[str, np.ndarray],
    attacker: Callable[[Callable], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the attacker got before: with the check disabled the round "succeeds" and the
    # FedAvg mean is scaled by the whole true weight (here ×1,377), unnoticed.
    import pharmafl.secure.server as server_module

    honest_others = sum(n for p, n in COUNTS.items() if p != "delta")
    attacker(lambda out: out.__setitem__(-1, (1 - honest_others) % 2**32))
    monkeypatch.setattr(server_module, "aggregate_violation", lambda *a, **k: None)
    result = run_secagg_round(updates, COUNTS, quantization=Q).result
    honest = run_secagg_round(updates, {**COUNTS, "delta": 776}, quantization=Q)  # no marker
    assert result.report.total_examples == 1
    ratio = np.linalg.norm(result.mean) / np.linalg.norm(honest.result.mean)
    assert ratio > 100


def test_a_count_other_than_the_signed_declaration_is_refused(
    updates: dict[str, np.ndarray], attacker: Callable[[Callable], None]
) -> None:
    # Inside the range s..s·W, but not what delta declared in its signed masked input.
    attacker(lambda out: out.__setitem__(-1, out[-1] + 5000))
    with pytest.raises(AggregateCheckError, match="signed inputs declare 1377"):
        run_secagg_round(updates, COUNTS, quantization=Q)


def test_an_input_without_a_valid_declared_count_is_rejected(
    updates: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The declaration is part of the signed envelope (sealed to the operator's round key):
    # without a valid one the input never counts.
    real = client_module.SecAggClient._sealed_count

    def sealed_count(self: Any, num_examples: int) -> str:
        return real(self, 0 if self.me == "delta" else num_examples)

    monkeypatch.setattr(client_module.SecAggClient, "_sealed_count", sealed_count)
    # The operator left delta's input out of U3: delta is never asked to confirm.
    with pytest.raises(SecureAggregationError, match="delta found no operator message for confirm"):
        run_secagg_round(updates, COUNTS, quantization=Q)


@pytest.mark.parametrize("sealed", ["", "00" * 40, "not hex"], ids=["missing", "junk", "not-hex"])
def test_a_count_the_operator_cannot_open_is_rejected(
    updates: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch, sealed: str
) -> None:
    # The count travels sealed: a missing, altered or malformed one never counts either.
    real = client_module.SecAggClient._sealed_count

    def sealed_count(self: Any, num_examples: int) -> str:
        return sealed if self.me == "delta" else real(self, num_examples)

    monkeypatch.setattr(client_module.SecAggClient, "_sealed_count", sealed_count)
    with pytest.raises(SecureAggregationError, match="delta found no operator message for confirm"):
        run_secagg_round(updates, COUNTS, quantization=Q)


def test_a_partner_weighing_itself_above_the_weight_cap_is_refused(
    updates: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``weight_cap`` the round's public bound on a weight is the cap: a partner whose
    own (modified) client declares its 777 rows instead of at most 300, to steer the trunk,
    has its masked input refused; the round completes with the others."""
    from pharmafl.contract import FederationPlan, LocalTrainingSpec

    plan = FederationPlan(
        trunk={"kind": "sparse", "hidden_sizes": [16], "dropouts": [0.0]},
        local=LocalTrainingSpec(weight_cap=300),
    )
    q = plan.round_quantization()
    assert q.max_examples == 300 and plan.quantization.max_examples == Q.max_examples
    real = client_module.quantize

    def greedy(update: np.ndarray, num_examples: int, config: Any, *a: Any, **kw: Any) -> Any:
        if num_examples == COUNTS["delta"]:  # delta's client skips its own bound check
            config = config.model_copy(update={"max_examples": Q.max_examples})
        return real(update, num_examples, config, *a, **kw)

    monkeypatch.setattr(client_module, "quantize", greedy)
    honest = {p: min(n, 300) for p, n in COUNTS.items() if p != "delta"}
    counts = honest | {"delta": 777}
    # delta's input is refused, so the operator leaves it out of the confirm stage
    result = run_secagg_round(updates, counts, quantization=q, dropouts={"delta": "confirm"}).result
    assert result.report.survivors == ("alpha", "bravo", "charlie")
    assert result.report.total_examples == sum(honest.values())
    reasons = [r.reason for r in result.report.rejections]
    assert any("declare 1..300 examples" in r for r in reasons), reasons
