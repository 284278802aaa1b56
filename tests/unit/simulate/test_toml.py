"""The small TOML writer round-trips partner-config-like documents through tomllib."""

from __future__ import annotations

import tomllib

import pytest

from pharmafl.simulate import toml_dumps


def test_round_trip_with_tables_and_arrays_of_tables() -> None:
    doc = {
        "name": "alpha",
        "flag": True,
        "n": 3,
        "x": 0.25,
        "tags": ["a", "b c"],
        "assay_defaults": {"assay_type": "OTHER", "expert_thresholds": [6.0, 7.5]},
        "activities": [
            {"path": "raw/a.csv", "columns": {"input_compound_id": "Compound ID"}},
            {"path": "raw/b.csv", "unit": "µM", "columns": {"standard_value": 'say "hi"\\'}},
        ],
    }
    assert tomllib.loads(toml_dumps(doc)) == doc


def test_keys_needing_quotes_and_none_values() -> None:
    doc = {"table": {"key with space": "v", "skip": None}}
    assert tomllib.loads(toml_dumps(doc)) == {"table": {"key with space": "v"}}


def test_refuses_what_toml_cannot_hold() -> None:
    with pytest.raises(ValueError):
        toml_dumps({"x": float("nan")})
    with pytest.raises(TypeError):
        toml_dumps({"x": object()})
