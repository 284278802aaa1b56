"""Aggregator (operator) side: the training loop, its rounds, server optimizers, run folders.

What the operator shares with partners (plan, specs, reports, the trunk format) lives in
:mod:`pharmafl.contract`. Imports neither torch nor RDKit, nor any partner module (tested).
"""

from pharmafl.server.context import OperatorContext, load_operator
from pharmafl.server.launcher import (
    DROPOUT_CAUSES,
    Launcher,
    LauncherBase,
    cause_of,
    exception_failure,
    failure,
)
from pharmafl.server.operator import TrainingResult, final_phase, run_round, run_training
from pharmafl.server.optimizers import ServerOptimizer, make_server_optimizer
from pharmafl.server.rounds import SecureRound, publish_round, secure_round
from pharmafl.server.runs import (
    RoundResult,
    TrainingState,
    prune_run,
    run_dir,
    run_round_ids,
    write_run_plan,
)

__all__ = [
    "DROPOUT_CAUSES",
    "Launcher",
    "LauncherBase",
    "OperatorContext",
    "RoundResult",
    "SecureRound",
    "ServerOptimizer",
    "TrainingResult",
    "TrainingState",
    "cause_of",
    "exception_failure",
    "failure",
    "final_phase",
    "load_operator",
    "make_server_optimizer",
    "prune_run",
    "publish_round",
    "run_dir",
    "run_round",
    "run_round_ids",
    "run_training",
    "secure_round",
    "write_run_plan",
]
