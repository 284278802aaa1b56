"""Partner-side orchestration: the library functions behind a partner's flows.

Its names load on first use (PEP 562): a partner's flow run, and the thin client that hands
it to the warm engine (:mod:`pharmafl.partner.warm_engine`), import one submodule without
paying for RDKit, pandas and the preparation code behind the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: Where the exported names live, lightest first: a name loads the first that has it.
_HOMES = ("manifest", "heads", "evaluation_report", "prepare")


def __getattr__(name: str) -> Any:
    if name == "SCHEMA_MODELS":
        from pharmafl.partner.evaluation_report import NewDataEvaluation
        from pharmafl.partner.manifest import PrepareManifest, RunReport

        return {
            "new_data_evaluation": NewDataEvaluation,
            "prepare_manifest": PrepareManifest,
            "prepare_run_report": RunReport,
        }
    for home in _HOMES if name in __all__ else ():
        module = importlib.import_module(f"{__name__}.{home}")
        if hasattr(module, name):
            globals()[name] = value = getattr(module, name)
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
