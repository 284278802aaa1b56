"""Human-readable views of ledger entries (rich tables, one-line payload digests)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import JsonValue
from rich.table import Table
from rich.text import Text

from pharmafl.ledger.entry import LedgerEntry

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_MAX_VALUE = 48


def _short(value: JsonValue) -> str:
    if isinstance(value, str):
        return value[:12] + "…" if _HEX64.match(value) else value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        text = ",".join(_short(v) for v in value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"


def describe_payload(entry: LedgerEntry) -> str:
    """One line ``key=value …`` for an entry's payload; hashes shortened, long values cut."""
    return " ".join(f"{k}={_short(v)}" for k, v in sorted(entry.payload.items()))


def ledger_table(entries: Sequence[LedgerEntry], *, payload: bool = True) -> Table:
    """A rich table of entries: index; UTC time and entry-hash prefix; event, actor, payload.

    Each entry takes one row whose cells hold two lines, so the table stays readable in a
    narrow terminal.
    """
    table = Table(title=f"ledger: {len(entries)} entries", show_lines=True)
    table.add_column("#", justify="right", style="bold")
    table.add_column("time (UTC) / hash", no_wrap=True)
    table.add_column("event by actor" + (" / payload" if payload else ""), overflow="fold")
    for e in entries:
        when = Text(e.timestamp.strftime("%Y-%m-%d %H:%M:%S"))
        when.append("\n" + e.entry_hash()[:16], style="dim")
        what = Text(e.event.value, style="green")
        what.append(" by ")
        what.append(e.actor, style="cyan")
        if payload:
            what.append("\n" + describe_payload(e), style="dim")
        table.add_row(str(e.index), when, what)
    return table


__all__ = ["describe_payload", "ledger_table"]
