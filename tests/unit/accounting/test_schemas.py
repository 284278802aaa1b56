"""The committed JSON Schemas of the accounting models are fresh."""

from __future__ import annotations

import pytest

from pharmafl.accounting import SCHEMA_MODELS
from pharmafl.schema_registry import SCHEMA_DIR, render_schema


@pytest.mark.parametrize("stem", sorted(SCHEMA_MODELS))
def test_committed_schema_is_fresh(stem: str) -> None:
    path = SCHEMA_DIR / f"{stem}.schema.json"
    assert path.is_file(), f"missing {path.name}: regenerate the schemas"
    assert path.read_text(encoding="utf-8") == render_schema(SCHEMA_MODELS[stem])
