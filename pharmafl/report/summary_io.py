"""Reading and writing ``summary.json`` (atomically)."""

from __future__ import annotations

from pathlib import Path

from pharmafl.common.errors import AccountingError
from pharmafl.common.io import atomic_write_text, read_model
from pharmafl.layout import SUMMARY_FILE
from pharmafl.report.models import ConsortiumSummary

#: File name of the summary inside the report folder.
SUMMARY_FILENAME = SUMMARY_FILE


def write_summary(summary: ConsortiumSummary, out_dir: str | Path) -> Path:
    """Write ``out_dir/summary.json`` atomically and return its path."""
    return atomic_write_text(
        Path(out_dir) / SUMMARY_FILENAME, summary.model_dump_json(indent=2) + "\n"
    )


def load_summary(path: str | Path) -> ConsortiumSummary:
    """Read a ``summary.json`` (or the report folder holding one).

    Raises
    ------
    AccountingError
        If the file is missing or does not match the ``consortium_summary`` schema.
    """
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_FILENAME
    return read_model(
        p,
        ConsortiumSummary,
        what="summary",
        error=AccountingError,
        fix="compare with schemas/consortium_summary.schema.json.",
    )


__all__ = ["SUMMARY_FILENAME", "load_summary", "write_summary"]
