"""``pharmafl report``: the consortium's summary.json and report.html, after any run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    consortium_dir: Annotated[
        Path, typer.Argument(help="Consortium folder (operator/, partners/), trained.")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default: CONSORTIUM_DIR/report)."),
    ] = None,
) -> None:
    """Verify the ledger, gather every partner's local, federated and pooled scores, its
    participation and contribution, and write summary.json and a self-contained report.html.
    A partner whose metrics are not in the folder is left out with a note."""
    from pharmafl.report import partner_table, write_report

    files = write_report(consortium_dir, out)
    typer.echo(partner_table(files.summary))
    ledger = files.summary.ledger
    if ledger is not None and not ledger.verified:
        typer.echo(f"ledger NOT verified: {ledger.issue}", err=True)
    for note in files.summary.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {files.summary_path} and {files.report_path}")


def register(app: typer.Typer) -> None:
    """Attach ``report`` to ``app``."""
    app.command("report")(report)
