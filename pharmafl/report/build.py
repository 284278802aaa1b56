"""Build ``summary.json`` and ``report.html`` of a consortium from its files alone.

Any command can call it after any run (``pharmafl report CONSORTIUM_DIR``, the demo, a flow):

- the ledger (``operator/ledger.jsonl``) is verified against the roster, and the main run's
  rounds, stop reason, wall time and each partner's participation are read from its entries
  (:mod:`pharmafl.report.main_run`), the learning curves from its shared validation scalars;
- each partner's row comes from its own folder (:mod:`pharmafl.report.partners`), the
  pooled reference from ``operator/pooled/`` and the contribution study from
  ``operator/contribution.json``, when present.

A partner without its metrics here is left out with a note; a folder that is not a
consortium, or whose main run never finished, is an :class:`~pharmafl.common.errors.
AccountingError` that says what to run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from pharmafl.accounting import ContributionResult, partner_privacy
from pharmafl.common.errors import AccountingError
from pharmafl.common.io import read_model
from pharmafl.evaluation.documents import PooledReport
from pharmafl.layout import MAIN_RUN_ID, METRICS_FILE, ConsortiumLayout
from pharmafl.ledger import LedgerEntry, VerificationResult, read_entries, verify_ledger
from pharmafl.report.html import render_report
from pharmafl.report.main_run import MainRun, main_run_from_ledger
from pharmafl.report.models import (
    ConsortiumContribution,
    ConsortiumSummary,
    LedgerSummary,
    RoundMetrics,
    learning_curves_from_ledger,
)
from pharmafl.report.partners import partner_rows
from pharmafl.report.summary_io import write_summary
from pharmafl.secure.identity import load_roster

_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class ReportFiles:
    """A built summary and where it was written."""

    summary: ConsortiumSummary
    summary_path: Path
    report_path: Path


def _optional(path: Path, model: type[_M]) -> _M | None:
    """An optional document: None when absent, an error naming the file when invalid."""
    if not path.is_file():
        return None
    return read_model(
        path,
        model,
        what=model.__name__,
        error=AccountingError,
        fix="rerun the step that wrote it, or remove the file to leave it out of the report.",
    )


def _ledger(layout: ConsortiumLayout) -> tuple[list[LedgerEntry], VerificationResult]:
    """The ledger's entries and its verification against the roster."""
    op = layout.operator
    if not op.roster.is_file():
        raise AccountingError(
            "not a consortium folder: it has no operator roster.",
            file=op.roster,
            fix="pass the folder `pharmafl consortium simulate` or `pharmafl federation setup` "
            "wrote (it holds operator/ and partners/).",
        )
    if not op.ledger.is_file():
        raise AccountingError(
            "the consortium has no ledger: it has not been trained.",
            file=op.ledger,
            fix="run `pharmafl train CONSORTIUM_DIR` first.",
        )
    verification = verify_ledger(op.ledger, load_roster(op.roster))
    return read_entries(op.ledger), verification


def _main_run(entries: Sequence[LedgerEntry], ledger: Path) -> MainRun:
    run = main_run_from_ledger(entries, MAIN_RUN_ID)
    if run is None:
        raise AccountingError(
            f"the ledger records no finished main training run ({MAIN_RUN_ID!r}), so there is "
            "no federated model to report on.",
            file=ledger,
            fix="run `pharmafl train CONSORTIUM_DIR` (or resume it with --resume) first.",
        )
    return run


def _curves(entries: Sequence[LedgerEntry], names: Iterable[str]) -> list[RoundMetrics]:
    """The main run's learning curves, restricted to the partners with a row."""
    keep = set(names)
    curves = []
    for c in learning_curves_from_ledger(entries, MAIN_RUN_ID):
        metrics = {m: {p: v for p, v in by.items() if p in keep} for m, by in c.metrics.items()}
        curves.append(
            RoundMetrics(
                round=c.round, metrics={m: v for m, v in metrics.items() if v}, dropped=c.dropped
            )
        )
    return curves


def _auxiliary(layout: ConsortiumLayout) -> set[str]:
    """Names of the simulation's auxiliary public partners (none without a readable
    ``simulation.json``: a real consortium's folder has none)."""
    try:
        partners = json.loads(layout.simulation.read_text()).get("partners", [])
        return {p["name"] for p in partners if p.get("auxiliary") is True}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return set()  # not a manifest this version wrote: nobody is marked


def build_summary(
    consortium_dir: str | Path,
    *,
    name: str | None = None,
    notes: Sequence[str] = (),
    wall_seconds: float | None = None,
) -> ConsortiumSummary:
    """The consortium summary, from the files of a consortium folder (see the module doc).

    Parameters
    ----------
    consortium_dir
        The consortium folder (``operator/``, ``partners/``).
    name
        Consortium name shown in the report (default: the roster's).
    notes
        Remarks to put first among the summary's notes (e.g. the demo's timings).
    wall_seconds
        Wall time to report (default: the main run's, from its ledger entries).

    Raises
    ------
    AccountingError
        Not a consortium folder, no finished main run, or an invalid pooled or contribution
        document.
    """
    layout = ConsortiumLayout(Path(consortium_dir))
    entries, verification = _ledger(layout)
    run = _main_run(entries, layout.operator.ledger)
    contribution = _optional(layout.operator.contribution, ContributionResult)
    rows, left_out = partner_rows(
        {p: layout.partner(p) for p in run.participants},
        run.participation,
        pooled=_optional(layout.operator.pooled / METRICS_FILE, PooledReport),
        contribution=contribution,
    )
    aux = _auxiliary(layout)
    rows = [r.model_copy(update={"auxiliary": r.name in aux}) for r in rows]
    return ConsortiumSummary(
        consortium=name or load_roster(layout.operator.roster).consortium,
        secure_aggregation=run.secure_aggregation,
        rounds=run.rounds,
        wall_seconds=run.wall_seconds if wall_seconds is None else wall_seconds,
        partners=rows,
        learning_curves=_curves(entries, (r.name for r in rows)),
        contribution=None
        if contribution is None
        else ConsortiumContribution.from_result(contribution),
        ledger=LedgerSummary.from_verification(verification),
        privacy=partner_privacy(entries),
        notes=[*notes, f"federated stop: {run.stop_reason}", *left_out],
    )


def write_report(
    consortium_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    name: str | None = None,
    notes: Sequence[str] = (),
    wall_seconds: float | None = None,
) -> ReportFiles:
    """Build the summary (:func:`build_summary`) and write ``summary.json`` and
    ``report.html`` atomically into ``out_dir`` (default ``CONSORTIUM_DIR/report/``)."""
    summary = build_summary(consortium_dir, name=name, notes=notes, wall_seconds=wall_seconds)
    out = ConsortiumLayout(Path(consortium_dir)).report if out_dir is None else Path(out_dir)
    summary_path = write_summary(summary, out)
    report_path = render_report(summary, out)
    return ReportFiles(summary, summary_path, report_path)


__all__ = ["ReportFiles", "build_summary", "write_report"]
