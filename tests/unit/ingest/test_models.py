"""The T0/T1/T2 row models, their committed JSON Schemas, and ingested sample rows."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from pydantic import ValidationError

from pharmafl.ingest import SCHEMA_MODELS, T0Assay, T1Activity, T2Structure
from pharmafl.schema_registry import SCHEMA_DIR, render_schema

T0_OK = {
    "input_assay_id": 3,
    "assay_type": "OTHER",
    "use_in_regression": True,
    "is_binary": False,
    "expert_threshold_1": 6.5,
    "direction": "high",
}


def _schema(stem: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{stem}.schema.json").read_text())


def test_schema_models_are_registered_under_the_shared_names() -> None:
    assert {"t0_assay", "t1_activity", "t2_structure", "partner_config"} <= set(SCHEMA_MODELS)


@pytest.mark.parametrize("stem", ["t0_assay", "t1_activity", "t2_structure", "partner_config"])
def test_committed_schema_matches_the_model(stem: str) -> None:
    assert (SCHEMA_DIR / f"{stem}.schema.json").read_text() == render_schema(SCHEMA_MODELS[stem])


def test_t0_rules() -> None:
    assert T0Assay.model_validate(T0_OK).expert_threshold_2 is None
    with pytest.raises(ValidationError, match="only allowed for CATALOG-PANEL"):
        T0Assay.model_validate({**T0_OK, "catalog_assay_id": 7.0})
    T0Assay.model_validate({**T0_OK, "assay_type": "CATALOG-PANEL", "catalog_assay_id": 7.0})
    with pytest.raises(ValidationError):
        T0Assay.model_validate({**T0_OK, "assay_type": "BINDING"})
    with pytest.raises(ValidationError, match="finite"):
        T0Assay.model_validate({**T0_OK, "expert_threshold_1": math.inf})
    panel = {**T0_OK, "assay_type": "CATALOG-PANEL"}
    with pytest.raises(ValidationError, match="catalog_assay_id must be a finite number"):
        T0Assay.model_validate({**panel, "catalog_assay_id": math.nan})
    with pytest.raises(ValidationError):
        T0Assay.model_validate({**T0_OK, "direction": "up"})
    with pytest.raises(ValidationError):
        T0Assay.model_validate({**T0_OK, "parent_assay_id": 1})


def test_t1_and_t2_rules() -> None:
    T1Activity.model_validate(
        {
            "input_compound_id": 1,
            "input_assay_id": 2,
            "standard_qualifier": "<",
            "standard_value": 4.5,
        }
    )
    with pytest.raises(ValidationError):
        T1Activity.model_validate(
            {
                "input_compound_id": 1,
                "input_assay_id": 2,
                "standard_qualifier": "<=",
                "standard_value": 4.5,
            }
        )
    with pytest.raises(ValidationError, match="finite"):
        T1Activity.model_validate(
            {
                "input_compound_id": 1,
                "input_assay_id": 2,
                "standard_qualifier": "=",
                "standard_value": math.nan,
            }
        )
    with pytest.raises(ValidationError):
        T2Structure.model_validate({"input_compound_id": -1, "smiles": "CCO"})
    with pytest.raises(ValidationError):
        T2Structure.model_validate({"input_compound_id": 1, "smiles": ""})


def _plain(row: dict) -> dict:
    """A pandas row as JSON-able Python values (NaN → None, numpy → builtins)."""
    out = {}
    for k, v in row.items():
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and math.isnan(v):
            v = None
        out[k] = v
    return out


def test_ingested_rows_validate_against_models_and_committed_schemas(partner) -> None:
    partner.write("s.csv", "id,smiles\nx1,CCO\nx2,CCN\n")
    partner.write("a.csv", "id,assay,q,value\nx1,K1,>,30000\nx2,K1,=,12\n")
    partner.write(
        "t0.csv", "input_assay_id,assay_type,expert_threshold_1,direction\nK1,OTHER,6,low\n"
    )
    r = partner.ingest(
        {
            "name": "p",
            "structures": [{"path": "s.csv", "columns": {"input_compound_id": "id"}}],
            "activities": [
                {
                    "path": "a.csv",
                    "unit": "nM",
                    "columns": {
                        "input_compound_id": "id",
                        "input_assay_id": "assay",
                        "standard_qualifier": "q",
                        "standard_value": "value",
                    },
                }
            ],
            "assays": [{"path": "t0.csv"}],
        }
    )
    for stem, model, frame in (
        ("t0_assay", T0Assay, r.t0),
        ("t1_activity", T1Activity, r.t1),
        ("t2_structure", T2Structure, r.t2),
    ):
        validator = jsonschema.Draft202012Validator(_schema(stem))
        for record in frame.to_dict("records"):
            row = _plain(record)
            model.model_validate(row)
            validator.validate(row)
    # ...and a wrong row fails both.
    bad = {
        "input_compound_id": 0,
        "input_assay_id": 0,
        "standard_qualifier": ">=",
        "standard_value": 1.0,
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema("t1_activity"))
    with pytest.raises(ValidationError):
        T1Activity.model_validate(bad)


def test_simulated_configs_validate_against_the_committed_schema(tmp_path) -> None:
    from pharmafl.ingest.config import PartnerConfig

    doc = {
        "name": "alpha",
        "structures": [{"path": "raw/s.csv", "allow_repeated_ids": True}],
        "activities": [{"path": "raw/a.csv", "unit_column": "u"}],
        "assay_defaults": {"assay_type": "OTHER"},
    }
    jsonschema.validate(doc, _schema("partner_config"))
    PartnerConfig.model_validate(doc)
