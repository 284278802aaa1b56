"""Command-line interface (``pharmafl``)."""

__all__: list[str] = []
