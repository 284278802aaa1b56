"""The consortium summary (``summary.json``) and its self-contained HTML report.

- :class:`ConsortiumSummary` and its parts: what each partner got (local / federated /
  pooled scores, benefit aggregates, ECDF differences) and gave (Shapley and leave-one-out
  values, data, participation, compute), learning curves and the ledger's state;
- :func:`build_summary` / :func:`write_report`: the summary of a consortium folder, from
  its files alone (ledger, partners' metrics, pooled reference, contribution study), and
  ``summary.json`` + ``report.html`` (what ``pharmafl report`` and the demo call);
- :func:`write_summary`, :func:`load_summary`;
- :func:`render_report` → ``report.html`` (embedded PNG figures, no external resources);
- :func:`partner_table` for the console, :func:`summary_tables_markdown` for Prefect
  markdown artifacts;
- :func:`contribution_rows` and :func:`contribution_study_markdown`: the contribution study's
  result as table rows and as a Markdown summary (console and Prefect artifacts).

Operator side: nothing here imports torch or RDKit; matplotlib is imported only when
figures are drawn.
"""

from pydantic import BaseModel

from pharmafl.report.build import ReportFiles, build_summary, write_report
from pharmafl.report.console import partner_table
from pharmafl.report.contribution import contribution_rows, contribution_study_markdown
from pharmafl.report.html import REPORT_FILENAME, render_report, report_html
from pharmafl.report.main_run import MainRun, main_run_from_ledger
from pharmafl.report.markdown import (
    contribution_markdown,
    performance_markdown,
    summary_tables_markdown,
)
from pharmafl.report.models import (
    HEADLINE_METRICS,
    MIN_GAP,
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
from pharmafl.report.partners import PartnerLeftOutError, partner_summary
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
    "MIN_GAP",
    "MainRun",
    "ModelMetrics",
    "Participation",
    "PartnerContribution",
    "PartnerLeftOutError",
    "PartnerSummary",
    "REPORT_FILENAME",
    "ReportFiles",
    "RoundMetrics",
    "SCHEMA_MODELS",
    "SUMMARY_FILENAME",
    "build_summary",
    "compute_gap_capture",
    "contribution_markdown",
    "contribution_rows",
    "contribution_study_markdown",
    "learning_curves_from_ledger",
    "load_summary",
    "main_run_from_ledger",
    "partner_summary",
    "partner_table",
    "performance_markdown",
    "render_report",
    "report_html",
    "summary_tables_markdown",
    "write_report",
    "write_summary",
]
