"""Reading and writing ``summary.json`` (atomically)."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from pharmafl.common.errors import AccountingError
from pharmafl.common.io import atomic_write_text
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
    try:
        return ConsortiumSummary.model_validate_json(p.read_bytes())
    except FileNotFoundError:
        raise AccountingError("summary not found.", file=p) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        raise AccountingError(
            f"summary is invalid at {'.'.join(map(str, first['loc']))}: {first['msg']}.",
            file=p,
            fix="compare with schemas/consortium_summary.schema.json.",
        ) from None


__all__ = ["SUMMARY_FILENAME", "load_summary", "write_summary"]
