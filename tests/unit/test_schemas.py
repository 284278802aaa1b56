"""Committed JSON Schemas are exactly what the pydantic models generate."""

from __future__ import annotations

import json

from pharmafl.schema_registry import SCHEMA_DIR, all_schema_models, stale_schemas


def test_committed_schemas_are_fresh() -> None:
    assert stale_schemas() == [], "run `pharmafl schemas generate` and commit schemas/"


def test_every_schema_is_valid_json_with_a_title() -> None:
    for stem in all_schema_models():
        doc = json.loads((SCHEMA_DIR / f"{stem}.schema.json").read_text())
        assert doc["title"]
        assert doc["$schema"].startswith("https://json-schema.org/")


def test_stale_schema_is_detected(tmp_path) -> None:
    from pharmafl.schema_registry import generate_schemas

    generate_schemas(tmp_path)
    first = sorted(tmp_path.glob("*.schema.json"))[0]
    first.write_text(first.read_text().replace('"title"', '"titel"', 1))
    (tmp_path / "orphan.schema.json").write_text("{}")
    assert stale_schemas(tmp_path) == sorted([first.name, "orphan.schema.json"])
