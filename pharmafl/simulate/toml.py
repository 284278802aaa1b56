"""A minimal TOML writer for partner configs (the standard library only reads TOML).

Handles what configs contain: strings, booleans, integers, finite floats, lists of
scalars, tables and arrays of tables (with sub-tables). ``None`` values are left out (TOML
has no null).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError("TOML config values must be finite")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def _is_table(v: Any) -> bool:
    return isinstance(v, Mapping)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and bool(v) and all(_is_table(x) for x in v)


def _emit(lines: list[str], path: list[str], table: Mapping[str, Any], header: str | None) -> None:
    if header is not None:
        if lines:
            lines.append("")
        lines.append(header)
    for k, v in table.items():
        if v is None or _is_table(v) or _is_table_array(v):
            continue
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in table.items():
        if _is_table(v):
            sub = [*path, k]
            _emit(lines, sub, v, "[" + ".".join(_key(x) for x in sub) + "]")
    for k, v in table.items():
        if _is_table_array(v):
            sub = [*path, k]
            for item in v:
                _emit(lines, sub, item, "[[" + ".".join(_key(x) for x in sub) + "]]")


def toml_dumps(doc: Mapping[str, Any]) -> str:
    """Serialise ``doc`` as TOML text (``tomllib.loads`` gives ``doc`` back, minus Nones)."""
    lines: list[str] = []
    _emit(lines, [], doc, None)
    return "\n".join(lines) + "\n"


__all__ = ["toml_dumps"]
