"""Aggregator (operator) side: federation plan, rounds, server optimizers, the global trunk.

Imports neither torch nor RDKit (tested).
"""

from pharmafl.server.operator import (
    Launcher,
    OperatorContext,
    TrainingResult,
    load_operator,
    run_training,
)
from pharmafl.server.optimizers import (
    ServerOptimizer,
    ServerOptimizerConfig,
    ServerOptimizerName,
    make_server_optimizer,
)
from pharmafl.server.plan import (
    MAIN_RUN_ID,
    RUN_ID_PATTERN,
    FederationPlan,
    LocalTrainingSpec,
    PartnerRoundReport,
    PartnerUtilityReport,
    TrainSpec,
)
from pharmafl.server.runs import (
    FINAL_TRUNK_FILE,
    INITIAL_TRUNK_FILE,
    LEDGER_FILE,
    PLAN_FILE,
    RUNS_DIR,
    STATE_DIR,
    TrainingState,
    format_round_id,
    prune_run,
    run_dir,
    run_round_ids,
    write_run_plan,
)
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
    "partner_utility_report": PartnerUtilityReport,
    "train_spec": TrainSpec,
}

__all__ = [
    "FINAL_TRUNK_FILE",
    "FederationPlan",
    "INITIAL_TRUNK_FILE",
    "LEDGER_FILE",
    "Launcher",
    "LocalTrainingSpec",
    "MAIN_RUN_ID",
    "OperatorContext",
    "PLAN_FILE",
    "PartnerRoundReport",
    "PartnerUtilityReport",
    "RUNS_DIR",
    "RUN_ID_PATTERN",
    "SCHEMA_MODELS",
    "STATE_DIR",
    "ServerOptimizer",
    "ServerOptimizerConfig",
    "ServerOptimizerName",
    "TRUNK_PREFIX",
    "TrainSpec",
    "TrainingResult",
    "TrainingState",
    "TrunkLayout",
    "flatten_trunk",
    "format_round_id",
    "load_operator",
    "make_server_optimizer",
    "prune_run",
    "run_dir",
    "run_round_ids",
    "run_training",
    "trunk_from_bytes",
    "trunk_to_bytes",
    "unflatten_trunk",
    "write_run_plan",
]
