"""The global trunk on the operator side: named arrays ↔ one flat vector ↔ hashed npz bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from pharmafl.common.errors import FederationError
from pharmafl.common.io import sha256_bytes
from pharmafl.contract.trunk import (
    TrunkLayout,
    flatten_trunk,
    trunk_from_bytes,
    trunk_to_bytes,
    unflatten_trunk,
)


def _trunk(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Deliberately not in sorted order: the layout sorts by name.
    return {
        "trunk.layers.1.weight": rng.normal(size=(4, 3)).astype(np.float32),
        "trunk.layers.0.bias": rng.normal(size=(3,)).astype(np.float32),
        "trunk.layers.0.weight": rng.normal(size=(3, 5)).astype(np.float32),
    }


def test_layout_is_sorted_by_name_and_sized() -> None:
    layout = TrunkLayout.of(_trunk())
    assert layout.names == (
        "trunk.layers.0.bias",
        "trunk.layers.0.weight",
        "trunk.layers.1.weight",
    )
    assert layout.shapes == ((3,), (3, 5), (4, 3))
    assert layout.size == 3 + 15 + 12


def test_flatten_unflatten_round_trip() -> None:
    state = _trunk()
    layout = TrunkLayout.of(state)
    vec = flatten_trunk(state, layout)
    assert vec.dtype == np.float32 and vec.shape == (layout.size,)
    # Sorted-name order: the bias comes first.
    np.testing.assert_array_equal(vec[:3], state["trunk.layers.0.bias"])
    back = unflatten_trunk(vec, layout)
    assert set(back) == set(state)
    for name, arr in state.items():
        assert back[name].dtype == np.float32
        np.testing.assert_array_equal(back[name], arr)


@pytest.mark.parametrize("bad", ["heads.local.cls.weight", "trunkx.w", "layers.0.weight"])
def test_layout_refuses_non_trunk_names(bad: str) -> None:
    state = _trunk() | {bad: np.zeros(2, dtype=np.float32)}
    with pytest.raises(FederationError, match="outside the trunk") as err:
        TrunkLayout.of(state)
    assert "heads never leave" in err.value.fix


def test_flatten_refuses_a_different_layout() -> None:
    state = _trunk()
    layout = TrunkLayout.of(state)
    wrong_shape = dict(state) | {"trunk.layers.0.bias": np.zeros(4, dtype=np.float32)}
    with pytest.raises(FederationError, match="layout"):
        flatten_trunk(wrong_shape, layout)
    missing = {k: v for k, v in state.items() if k != "trunk.layers.1.weight"}
    with pytest.raises(FederationError, match="layout"):
        flatten_trunk(missing, layout)


def test_unflatten_refuses_a_wrong_length() -> None:
    layout = TrunkLayout.of(_trunk())
    with pytest.raises(FederationError, match=rf"\({layout.size},\)"):
        unflatten_trunk(np.zeros(layout.size + 1, dtype=np.float32), layout)


def test_npz_bytes_are_deterministic_and_order_independent() -> None:
    state = _trunk()
    data = trunk_to_bytes(state)
    assert trunk_to_bytes(dict(reversed(list(state.items())))) == data
    # float64 input is stored as float32: same bytes as the float32 state.
    assert trunk_to_bytes({k: v.astype(np.float64) for k, v in state.items()}) == data
    assert trunk_to_bytes(_trunk(seed=1)) != data
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        assert sorted(z.files) == sorted(state)


def test_bytes_round_trip_with_hash_check() -> None:
    state = _trunk()
    data = trunk_to_bytes(state)
    back = trunk_from_bytes(data, expected_sha256=sha256_bytes(data))
    for name, arr in state.items():
        np.testing.assert_array_equal(back[name], arr)


def test_hash_check_rejects_altered_bytes() -> None:
    state = _trunk()
    data = trunk_to_bytes(state)
    digest = sha256_bytes(data)
    altered = _trunk() | {"trunk.layers.0.bias": state["trunk.layers.0.bias"] + 1e-3}
    with pytest.raises(FederationError, match="hash differs"):
        trunk_from_bytes(trunk_to_bytes(altered), expected_sha256=digest)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    with pytest.raises(FederationError, match="hash differs"):
        trunk_from_bytes(bytes(flipped), expected_sha256=digest)


def test_bytes_holding_a_head_are_refused() -> None:
    buf = io.BytesIO()
    np.savez(buf, **{"trunk.w": np.zeros(2, np.float32), "heads.local.w": np.zeros(2, np.float32)})
    data = buf.getvalue()
    with pytest.raises(FederationError, match="outside the trunk"):
        trunk_from_bytes(data, expected_sha256=sha256_bytes(data))


@pytest.mark.parametrize("how", ["float64", "compressed"])
def test_a_trunk_has_one_encoding(how: str) -> None:
    """The same values re-encoded must not pass for another trunk (issue 12: partners key
    their record of revealed starts on the bytes' hash)."""
    state = {"trunk.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
    assert trunk_from_bytes(trunk_to_bytes(state))["trunk.0.weight"].dtype == np.float32
    buf = io.BytesIO()
    if how == "float64":
        np.savez(buf, **{k: v.astype(np.float64) for k, v in state.items()})  # type: ignore[arg-type]
    else:
        np.savez_compressed(buf, **state)  # type: ignore[arg-type]
    with pytest.raises(FederationError, match="canonical encoding"):
        trunk_from_bytes(buf.getvalue())
