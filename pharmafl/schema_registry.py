"""Every pydantic model that crosses a boundary, and the JSON Schemas generated from them.

Each sub-package exports ``SCHEMA_MODELS``: a mapping from a schema file stem (e.g.
``"t0_assay"``) to its pydantic model. ``schemas/<stem>.schema.json`` is generated from the
model (``pharmafl schemas generate``) and a test fails when a committed file is stale.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from pydantic import BaseModel

from pharmafl.common.errors import ConfigError
from pharmafl.common.io import atomic_write_text

#: Sub-packages that own shared models, in data-flow order.
SCHEMA_PACKAGES: tuple[str, ...] = (
    "pharmafl.common",
    "pharmafl.ingest",
    "pharmafl.simulate",
    "pharmafl.chem",
    "pharmafl.data",
    "pharmafl.contract",
    "pharmafl.partner",
    "pharmafl.model",
    "pharmafl.evaluation",
    "pharmafl.secure",
    "pharmafl.ledger",
    "pharmafl.accounting",
    "pharmafl.report",
)

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


def all_schema_models() -> dict[str, type[BaseModel]]:
    """Collect ``SCHEMA_MODELS`` from every package in :data:`SCHEMA_PACKAGES`."""
    out: dict[str, type[BaseModel]] = {}
    for name in SCHEMA_PACKAGES:
        module = importlib.import_module(name)
        models: dict[str, type[BaseModel]] = module.SCHEMA_MODELS
        for stem, model in models.items():
            if stem in out:
                raise ConfigError(f"schema name {stem!r} is defined twice ({name}).")
            out[stem] = model
    return dict(sorted(out.items()))


def render_schema(model: type[BaseModel]) -> str:
    """Return the JSON Schema text of ``model`` exactly as it is committed."""
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate_schemas(out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Write ``<stem>.schema.json`` for every model and remove stale ones; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    models = all_schema_models()
    for stem, model in models.items():
        written.append(atomic_write_text(out_dir / f"{stem}.schema.json", render_schema(model)))
    for old in out_dir.glob("*.schema.json"):
        if old.name.removesuffix(".schema.json") not in models:
            old.unlink()
    return written


def stale_schemas(out_dir: Path = SCHEMA_DIR) -> list[str]:
    """Names of committed schema files that differ from (or lack) the generated text."""
    stale = []
    models = all_schema_models()
    for stem, model in models.items():
        path = out_dir / f"{stem}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render_schema(model):
            stale.append(path.name)
    for old in out_dir.glob("*.schema.json"):
        if old.name.removesuffix(".schema.json") not in models:
            stale.append(old.name)
    return sorted(stale)


__all__ = [
    "SCHEMA_DIR",
    "SCHEMA_PACKAGES",
    "all_schema_models",
    "generate_schemas",
    "render_schema",
    "stale_schemas",
]
