"""The round contract: what the partner side and the operator side agree on.

Flower keeps ``common`` between ``client`` and ``server``; this is pharmafl's. Both sides
import it, it imports neither (tested), and it is torch-free and RDKit-free:

- :mod:`~pharmafl.contract.plan`: the federation plan, local training and server optimizer
  settings;
- :mod:`~pharmafl.contract.spec`: the signed spec of each round;
- :mod:`~pharmafl.contract.heads`: the operator's ledger head each spec carries, and the
  partner's record of it;
- :mod:`~pharmafl.contract.reports`: the scalars a partner signs back;
- :mod:`~pharmafl.contract.runs`: run ids and round ids;
- :mod:`~pharmafl.contract.trunk_config`: the shared trunk's configuration;
- :mod:`~pharmafl.contract.trunk`: the trunk byte format (named float32 arrays ↔ one vector);
- :mod:`~pharmafl.contract.deployment`: the partner-round flow and deployment names.
"""

from pharmafl.contract.deployment import PARTNER_ROUND_FLOW, partner_deployment
from pharmafl.contract.heads import (
    EMPTY_LEDGER_HASH,
    LedgerHead,
    LedgerHeadRecord,
    head_contradiction,
    parse_ledger_heads,
    read_ledger_heads,
)
from pharmafl.contract.plan import (
    FederationPlan,
    LocalTrainingSpec,
    ServerOptimizerConfig,
    ServerOptimizerName,
)
from pharmafl.contract.reports import (
    GAIN_SE_MIN_TASKS,
    PartnerRoundReport,
    PartnerUtilityReport,
)
from pharmafl.contract.runs import (
    MAIN_RUN_ID,
    ROUND_ID_PATTERN,
    RUN_ID_PATTERN,
    format_round_id,
    round_prefix,
    run_id_of,
)
from pharmafl.contract.spec import TrainSpec
from pharmafl.contract.trunk import (
    TRUNK_PREFIX,
    TrunkLayout,
    flatten_trunk,
    trunk_from_bytes,
    trunk_to_bytes,
    unflatten_trunk,
)
from pharmafl.contract.trunk_config import GraphTrunkConfig, SparseTrunkConfig, TrunkConfig

SCHEMA_MODELS = {
    "federation_plan": FederationPlan,
    "ledger_head_record": LedgerHeadRecord,
    "partner_round_report": PartnerRoundReport,
    "partner_utility_report": PartnerUtilityReport,
    "train_spec": TrainSpec,
}

__all__ = [
    "EMPTY_LEDGER_HASH",
    "FederationPlan",
    "GAIN_SE_MIN_TASKS",
    "GraphTrunkConfig",
    "LedgerHead",
    "LedgerHeadRecord",
    "LocalTrainingSpec",
    "MAIN_RUN_ID",
    "PARTNER_ROUND_FLOW",
    "PartnerRoundReport",
    "PartnerUtilityReport",
    "ROUND_ID_PATTERN",
    "RUN_ID_PATTERN",
    "SCHEMA_MODELS",
    "ServerOptimizerConfig",
    "ServerOptimizerName",
    "SparseTrunkConfig",
    "TRUNK_PREFIX",
    "TrainSpec",
    "TrunkConfig",
    "TrunkLayout",
    "flatten_trunk",
    "format_round_id",
    "head_contradiction",
    "parse_ledger_heads",
    "partner_deployment",
    "read_ledger_heads",
    "round_prefix",
    "run_id_of",
    "trunk_from_bytes",
    "trunk_to_bytes",
    "unflatten_trunk",
]
