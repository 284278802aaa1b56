"""pharmafl.secure (being written)."""

SCHEMA_MODELS: dict[str, type] = {}

__all__: list[str] = []
