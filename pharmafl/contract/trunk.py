"""The trunk byte format both sides use: named float32 arrays ↔ one flat vector ↔ ``.npz``.

Partners export their trunk by parameter name (``trunk.*`` only, never a head); the operator
flattens it in sorted-name order to aggregate, and publishes it back as an ``.npz`` whose
SHA-256 every partner checks. Pure numpy (no torch on the aggregator side).
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import FederationError
from pharmafl.common.io import sha256_bytes

TRUNK_PREFIX = "trunk."


class TrunkLayout(BaseModel):
    """Parameter names and shapes of a trunk, in flattening order (sorted by name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    names: tuple[str, ...] = Field(description="Parameter names, all starting with 'trunk.'.")
    shapes: tuple[tuple[int, ...], ...] = Field(description="Shape of each parameter.")

    @property
    def size(self) -> int:
        """Total number of parameters."""
        return int(sum(int(np.prod(s)) for s in self.shapes))

    @classmethod
    def of(cls, state: Mapping[str, np.ndarray]) -> TrunkLayout:
        """The layout of a named trunk state (refuses any non-trunk parameter)."""
        bad = [n for n in state if not n.startswith(TRUNK_PREFIX)]
        if bad:
            raise FederationError(
                f"{len(bad)} parameter(s) outside the trunk (e.g. {bad[0]!r}) in a trunk state.",
                fix="export with pharmafl.model.export_trunk: heads never leave a partner.",
            )
        names = tuple(sorted(state))
        return cls(names=names, shapes=tuple(tuple(np.shape(state[n])) for n in names))


def flatten_trunk(state: Mapping[str, np.ndarray], layout: TrunkLayout) -> np.ndarray:
    """One float32 vector of ``state`` in ``layout`` order (checks names and shapes)."""
    if TrunkLayout.of(state) != layout:
        raise FederationError(
            "trunk parameters do not match the consortium's trunk layout.",
            fix="every partner must build the trunk from the same model config.",
        )
    return np.concatenate([np.asarray(state[n], dtype=np.float32).ravel() for n in layout.names])


def unflatten_trunk(vector: np.ndarray, layout: TrunkLayout) -> dict[str, np.ndarray]:
    """Split a flat vector back into named float32 arrays."""
    if vector.shape != (layout.size,):
        raise FederationError(
            f"trunk vector has shape {vector.shape}, the layout needs ({layout.size},)."
        )
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        n = int(np.prod(shape))
        out[name] = vector[offset : offset + n].astype(np.float32).reshape(shape)
        offset += n
    return out


def trunk_to_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    """Serialise a named trunk as ``.npz`` bytes (deterministic for equal arrays)."""
    buf = io.BytesIO()
    np.savez(buf, **{n: np.asarray(state[n], dtype=np.float32) for n in sorted(state)})  # type: ignore[arg-type]
    return buf.getvalue()


def trunk_from_bytes(data: bytes, *, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Read ``.npz`` trunk bytes, checking their SHA-256 first when one is expected."""
    if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
        raise FederationError(
            "the global trunk's hash differs from the signed round spec.",
            fix="the exchange store returned altered or stale data; re-fetch or report it.",
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        state = {n: z[n] for n in z.files}
    TrunkLayout.of(state)
    if any(a.dtype != np.float32 for a in state.values()) or trunk_to_bytes(state) != data:
        # One trunk, one encoding: a partner's records of the trunks it revealed updates
        # from are keyed on these bytes' hash, so a trunk re-encoded (float64, compressed,
        # reordered) must not pass for a new one (docs/security.md, differencing).
        raise FederationError(
            "the global trunk is not in its canonical encoding (float32 arrays, np.savez, "
            "sorted names).",
            fix="the operator writes trunks with pharmafl.contract.trunk_to_bytes; report "
            "an operator that sends anything else.",
        )
    return state


__all__ = [
    "TRUNK_PREFIX",
    "TrunkLayout",
    "flatten_trunk",
    "trunk_from_bytes",
    "trunk_to_bytes",
    "unflatten_trunk",
]
