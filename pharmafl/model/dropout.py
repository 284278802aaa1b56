"""Dropout that draws its masks from a generator the caller owns, not torch's global RNG.

torch's CPU generator is process-global: two models training in threads of one process (the
embedded launcher's partners) that seed it per step would draw each other's masks. A
:class:`SeededDropout` draws from the ``torch.Generator`` that :func:`dropout_seeded` attaches
for one step, so each trainer's masks depend on its own ``(seed, step)`` only and partners can
train concurrently with the same result as one after another.

It is an ``nn.Dropout`` (same module tree, no state: saved models load unchanged); without an
attached generator it behaves exactly as ``nn.Dropout``. Modules that draw from the global RNG
by themselves (PyG's AttentiveFP) are reported by :func:`uses_global_rng`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch
from torch import nn

#: Serialises the few places that still seed torch's global RNG (model construction, and
#: training or scoring a model for which :func:`uses_global_rng` is true).
GLOBAL_RNG_LOCK = threading.RLock()


class SeededDropout(nn.Dropout):
    """``nn.Dropout`` whose training masks come from :attr:`generator` when one is attached."""

    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if g is None or not self.training or self.p == 0.0:
            return super().forward(x)
        if self.p >= 1.0:
            return torch.zeros_like(x)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=g)
        return x * keep / (1.0 - self.p)


@contextlib.contextmanager
def dropout_seeded(model: nn.Module, seed: int) -> Iterator[None]:
    """Attach one generator seeded with ``seed`` to every :class:`SeededDropout` of ``model``
    for the duration of the block (masks drawn in module order, so a seed fixes them all)."""
    g = torch.Generator().manual_seed(seed)
    drops = [m for m in model.modules() if isinstance(m, SeededDropout)]
    for m in drops:
        m.generator = g
    try:
        yield
    finally:
        for m in drops:
            m.generator = None


@contextlib.contextmanager
def seeded_randomness(model: nn.Module, seed: int) -> Iterator[None]:
    """All of ``model``'s randomness for one step from ``seed``: its :class:`SeededDropout`
    masks from a generator of its own and, only for a model with modules that draw from the
    global RNG (:func:`uses_global_rng`), that RNG forked and seeded under
    :data:`GLOBAL_RNG_LOCK` (such models take turns across threads)."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(dropout_seeded(model, seed))
        if uses_global_rng(model):
            stack.enter_context(GLOBAL_RNG_LOCK)
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(seed)
        yield


def uses_global_rng(model: nn.Module) -> bool:
    """Whether ``model`` has random modules that draw from torch's global RNG (a plain
    ``nn.Dropout`` or PyG's AttentiveFP): training it must seed that RNG under
    :data:`GLOBAL_RNG_LOCK`."""
    for m in model.modules():
        if isinstance(m, nn.Dropout) and not isinstance(m, SeededDropout) and m.p > 0:
            return True
        if type(m).__name__ == "AttentiveFP":
            return True
    return False


__all__ = [
    "GLOBAL_RNG_LOCK",
    "SeededDropout",
    "dropout_seeded",
    "seeded_randomness",
    "uses_global_rng",
]
