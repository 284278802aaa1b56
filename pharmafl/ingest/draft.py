"""A commented partner config as TOML text: tables of settings, each with why.

``partner inspect`` builds the config as :class:`Table` objects whose lines carry a comment
(what was detected, what to check); :func:`render` writes them as TOML that
``tomllib`` reads back into a valid :class:`~pharmafl.ingest.config.PartnerConfig`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

#: The word that marks a guess the user must check.
CHECK = "CHECK"

Value = str | bool | int | float | list[str]


@dataclass
class Line:
    """``key = value  # comment``; ``off`` writes it commented out (a suggestion)."""

    key: str
    value: Value
    comment: str = ""
    off: bool = False


@dataclass
class Table:
    """A TOML table: ``header`` (``""`` for the top level, ``[[activities]]``,
    ``[activities.columns]``…), its lines, and comment lines written above it."""

    header: str
    lines: list[Line] = field(default_factory=list)
    intro: list[str] = field(default_factory=list)

    def add(self, key: str, value: Value, comment: str = "", *, off: bool = False) -> None:
        """Append a line."""
        self.lines.append(Line(key, value, comment, off))


def toml_value(value: Value) -> str:
    """A TOML literal for ``value`` (strings as basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else toml_value(key)


def _comment_lines(text: str) -> list[str]:
    return [f"# {t}".rstrip() for t in text.splitlines()] if text else []


def _render_line(line: Line) -> str:
    body = f"{toml_key(line.key)} = {toml_value(line.value)}"
    if line.off:
        body = "# " + body
    return f"{body}  # {line.comment}" if line.comment else body


def render(tables: Sequence[Table], *, preamble: str = "") -> str:
    """TOML text of ``tables`` in order, with their comments."""
    out = _comment_lines(preamble)
    for table in tables:
        if out:
            out.append("")
        out.extend(_comment_lines("\n".join(table.intro)))
        if table.header:
            out.append(table.header)
        out.extend(_render_line(line) for line in table.lines)
    return "\n".join(out) + "\n"


def checks(tables: Sequence[Table]) -> list[str]:
    """Every comment that asks the user to check something."""
    found = [c for t in tables for c in t.intro if CHECK in c]
    found += [f"{ln.key}: {ln.comment}" for t in tables for ln in t.lines if CHECK in ln.comment]
    return list(dict.fromkeys(c.replace(f"{CHECK}: ", "").replace(CHECK, "") for c in found))


__all__ = ["CHECK", "Line", "Table", "Value", "checks", "render", "toml_key", "toml_value"]
