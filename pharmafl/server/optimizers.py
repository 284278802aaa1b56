"""Server optimizers applied to the securely aggregated trunk update (operator side).

The operator only ever sees the *mean* client update Δ (the secure sum divided by the total
example weight). FedAvg applies it directly (McMahan et al., AISTATS 2017); FedAvgM adds server
momentum (Hsu et al. 2019); FedAdam and FedYogi treat −Δ as a pseudo-gradient with adaptive
server learning rates (Reddi et al., "Adaptive Federated Optimization", ICLR 2021).
Pure numpy: the aggregator side imports neither torch nor RDKit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pharmafl.common.errors import ConfigError
from pharmafl.contract.plan import ServerOptimizerConfig, ServerOptimizerName


class ServerOptimizer:
    """Stateful server update ``w ← step(w, Δ)``; its state is checkpointable."""

    def __init__(self, config: ServerOptimizerConfig) -> None:
        self.config = config
        self.state: dict[str, np.ndarray] = {}

    def step(self, weights: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Return new global weights from the current ones and the mean client update."""
        if weights.shape != delta.shape:
            raise ConfigError(
                f"update has shape {delta.shape}, global trunk has {weights.shape}.",
                fix="all partners must train the same trunk architecture.",
            )
        return _STEPS[self.config.name](self, weights.astype(np.float64), delta.astype(np.float64))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Moments, for checkpoints (resume reaches the same trunk)."""
        return {k: v.copy() for k, v in self.state.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore moments saved by :meth:`state_dict`."""
        self.state = {k: np.asarray(v, dtype=np.float64).copy() for k, v in state.items()}


def _fedavg(opt: ServerOptimizer, w: np.ndarray, d: np.ndarray) -> np.ndarray:
    return w + opt.config.lr * d


def _fedavgm(opt: ServerOptimizer, w: np.ndarray, d: np.ndarray) -> np.ndarray:
    m = opt.state.get("m", np.zeros_like(w))
    m = opt.config.momentum * m + d
    opt.state["m"] = m
    return w + opt.config.lr * m


def _adaptive(yogi: bool) -> Callable[[ServerOptimizer, np.ndarray, np.ndarray], np.ndarray]:
    def step(opt: ServerOptimizer, w: np.ndarray, d: np.ndarray) -> np.ndarray:
        c = opt.config
        m = opt.state.get("m", np.zeros_like(w))
        v = opt.state.get("v", np.full_like(w, c.tau**2))
        m = c.beta1 * m + (1 - c.beta1) * d
        d2 = d * d
        v = v - (1 - c.beta2) * d2 * np.sign(v - d2) if yogi else c.beta2 * v + (1 - c.beta2) * d2
        opt.state["m"], opt.state["v"] = m, v
        return w + c.lr * m / (np.sqrt(v) + c.tau)

    return step


_STEPS: dict[str, Callable[[ServerOptimizer, np.ndarray, np.ndarray], np.ndarray]] = {
    "fedavg": _fedavg,
    "fedavgm": _fedavgm,
    "fedadam": _adaptive(yogi=False),
    "fedyogi": _adaptive(yogi=True),
}


def make_server_optimizer(config: ServerOptimizerConfig | str) -> ServerOptimizer:
    """Build a server optimizer from its config or name; unknown names list the valid ones."""
    if isinstance(config, str):
        if config not in _STEPS:
            raise ConfigError(
                f"unknown server optimizer {config!r}.",
                fix=f"choose one of {', '.join(sorted(_STEPS))}.",
            )
        config = ServerOptimizerConfig(name=config)  # type: ignore[arg-type]
    return ServerOptimizer(config)


__all__ = [
    "ServerOptimizer",
    "ServerOptimizerConfig",
    "ServerOptimizerName",
    "make_server_optimizer",
]
