"""Partner-side orchestration: the library functions behind a partner's flows."""

from pharmafl.partner.evaluation_report import NewDataEvaluation
from pharmafl.partner.heads import record_ledger_head
from pharmafl.partner.manifest import (
    OutputFile,
    PrepareCounts,
    PrepareManifest,
    RejectionRow,
    RunReport,
    StepReport,
)
from pharmafl.partner.prepare import (
    Describer,
    PartnerContext,
    PrepareOptions,
    PrepareResult,
    load_partner_context,
    prepare_partner,
    render_summary,
)

SCHEMA_MODELS = {
    "new_data_evaluation": NewDataEvaluation,
    "prepare_manifest": PrepareManifest,
    "prepare_run_report": RunReport,
}

__all__ = [
    "Describer",
    "NewDataEvaluation",
    "OutputFile",
    "PartnerContext",
    "PrepareCounts",
    "PrepareManifest",
    "PrepareOptions",
    "PrepareResult",
    "RejectionRow",
    "RunReport",
    "SCHEMA_MODELS",
    "StepReport",
    "load_partner_context",
    "prepare_partner",
    "record_ledger_head",
    "render_summary",
]
