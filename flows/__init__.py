"""Prefect flows: orchestration only; each task wraps one pharmafl library call."""

__all__: list[str] = []
