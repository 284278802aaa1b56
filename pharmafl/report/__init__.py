"""The consortium summary (``summary.json``) and its self-contained HTML report.

- :class:`ConsortiumSummary` and its parts: what each partner got (local / federated /
  pooled scores, benefit aggregates, ECDF differences) and gave (Shapley and leave-one-out
  values, data, participation, compute), learning curves and the ledger's state;
- :func:`write_summary`, :func:`load_summary`;
- :func:`render_report` → ``report.html`` (embedded PNG figures, no external resources);
- :func:`summary_tables_markdown` for Prefect markdown artifacts.

Operator side: nothing here imports torch or RDKit; matplotlib is imported only when
figures are drawn.
"""

from pydantic import BaseModel

from pharmafl.report.html import REPORT_FILENAME, render_report, report_html
from pharmafl.report.markdown import (
    contribution_markdown,
    performance_markdown,
    summary_tables_markdown,
)
from pharmafl.report.models import (
    HEADLINE_METRICS,
    ConsortiumContribution,
    ConsortiumSummary,
    DataContribution,
    EcdfDifference,
    LedgerSummary,
    ModelMetrics,
    Participation,
    PartnerContribution,
    PartnerSummary,
    RoundMetrics,
    compute_gap_capture,
    learning_curves_from_ledger,
)
from pharmafl.report.summary_io import SUMMARY_FILENAME, load_summary, write_summary

#: Schema file stem → model.
SCHEMA_MODELS: dict[str, type[BaseModel]] = {"consortium_summary": ConsortiumSummary}

__all__ = [
    "ConsortiumContribution",
    "ConsortiumSummary",
    "DataContribution",
    "EcdfDifference",
    "HEADLINE_METRICS",
    "LedgerSummary",
    "ModelMetrics",
    "Participation",
    "PartnerContribution",
    "PartnerSummary",
    "REPORT_FILENAME",
    "RoundMetrics",
    "SCHEMA_MODELS",
    "SUMMARY_FILENAME",
    "compute_gap_capture",
    "contribution_markdown",
    "learning_curves_from_ledger",
    "load_summary",
    "performance_markdown",
    "render_report",
    "report_html",
    "summary_tables_markdown",
    "write_summary",
]
