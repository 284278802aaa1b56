"""The committed JSON Schemas of the ledger's models are fresh and validate real entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pharmafl.ledger import SCHEMA_MODELS, LedgerEntry, read_entries
from pharmafl.schema_registry import SCHEMA_DIR, render_schema


@pytest.mark.parametrize("stem", sorted(SCHEMA_MODELS))
def test_committed_schema_is_fresh(stem: str) -> None:
    path = SCHEMA_DIR / f"{stem}.schema.json"
    assert path.is_file(), f"missing {path.name}: regenerate the schemas"
    assert path.read_text(encoding="utf-8") == render_schema(SCHEMA_MODELS[stem])


def test_schema_matches_written_entries(ledger_path: Path) -> None:
    schema = json.loads((SCHEMA_DIR / "ledger_entry.schema.json").read_text())
    required = set(schema["required"])
    for entry in read_entries(ledger_path):
        doc = json.loads(entry.line())
        assert required <= set(doc) <= set(schema["properties"])
        assert LedgerEntry.model_validate(doc) == entry
