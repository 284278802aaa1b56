"""Aggregator (operator) side: server optimizers, rounds. Imports neither torch nor RDKit."""

from pharmafl.server.optimizers import (
    ServerOptimizer,
    ServerOptimizerConfig,
    ServerOptimizerName,
    make_server_optimizer,
)

SCHEMA_MODELS: dict[str, type] = {}

__all__ = [
    "SCHEMA_MODELS",
    "ServerOptimizer",
    "ServerOptimizerConfig",
    "ServerOptimizerName",
    "make_server_optimizer",
]
