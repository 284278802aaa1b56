"""Aggregator (operator) side: federation plan, rounds, server optimizers, the global trunk.

Imports neither torch nor RDKit (tested).
"""

from pharmafl.server.operator import (
    INITIAL_TRUNK_FILE,
    LEDGER_FILE,
    PLAN_FILE,
    Launcher,
    OperatorContext,
    TrainingResult,
    TrainingState,
    load_operator,
    run_training,
)
from pharmafl.server.optimizers import (
    ServerOptimizer,
    ServerOptimizerConfig,
    ServerOptimizerName,
    make_server_optimizer,
)
from pharmafl.server.plan import FederationPlan, LocalTrainingSpec, PartnerRoundReport, TrainSpec
from pharmafl.server.trunk import (
    TRUNK_PREFIX,
    TrunkLayout,
    flatten_trunk,
    trunk_from_bytes,
    trunk_to_bytes,
    unflatten_trunk,
)

SCHEMA_MODELS = {
    "federation_plan": FederationPlan,
    "partner_round_report": PartnerRoundReport,
    "train_spec": TrainSpec,
}

__all__ = [
    "FederationPlan",
    "INITIAL_TRUNK_FILE",
    "LEDGER_FILE",
    "Launcher",
    "LocalTrainingSpec",
    "OperatorContext",
    "PLAN_FILE",
    "PartnerRoundReport",
    "SCHEMA_MODELS",
    "ServerOptimizer",
    "ServerOptimizerConfig",
    "ServerOptimizerName",
    "TRUNK_PREFIX",
    "TrainSpec",
    "TrainingResult",
    "TrainingState",
    "TrunkLayout",
    "flatten_trunk",
    "load_operator",
    "make_server_optimizer",
    "run_training",
    "trunk_from_bytes",
    "trunk_to_bytes",
    "unflatten_trunk",
]
