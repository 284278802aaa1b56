"""The partner config: formats, schema checks and error messages with file, field and fix."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

import pharmafl.ingest.config as config_module
from pharmafl.common.errors import ConfigError
from pharmafl.ingest import (
    PartnerConfig,
    find_partner_config,
    infer_format,
    load_partner_config,
    parse_partner_config,
    partner_config_path,
)

MINIMAL = {
    "name": "alpha",
    "structures": [{"path": "raw/s.csv"}],
    "activities": [{"path": "raw/a.csv", "unit": "nM"}],
    "assay_defaults": {},
}


def _config_error(doc) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        parse_partner_config(doc, source="partner.toml")
    assert err.value.file == "partner.toml"
    assert err.value.fix
    return err.value


def test_docstring_example_is_a_valid_config() -> None:
    doc = config_module.__doc__ or ""
    example = re.search(
        r"Example \(TOML\)::\n\n(.*?)\n\"\"\"|Example \(TOML\)::\n\n(.*)", doc, re.S
    )
    assert example is not None
    text = "\n".join(line[4:] for line in (example.group(1) or example.group(2)).splitlines())
    cfg = parse_partner_config(tomllib.loads(text))
    assert cfg.activities[0].unit == "nM"


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".yml", ".json"])
def test_config_loads_from_each_format(tmp_path: Path, suffix: str) -> None:
    from pharmafl.simulate import toml_dumps

    path = tmp_path / f"partner{suffix}"
    text = {
        ".toml": toml_dumps(MINIMAL),
        ".yaml": yaml.safe_dump(MINIMAL),
        ".yml": yaml.safe_dump(MINIMAL),
        ".json": json.dumps(MINIMAL),
    }[suffix]
    path.write_text(text)
    cfg = load_partner_config(path)
    assert cfg == PartnerConfig.model_validate(MINIMAL)
    assert cfg.key_file == "key.json" and cfg.consortium_file == "consortium.json"
    assert cfg.parameters_path(tmp_path) == tmp_path / "consortium.json"
    assert cfg.key_path(tmp_path) == tmp_path / "key.json"


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_partner_config(tmp_path / "partner.toml")
    assert "not found" in str(err.value) and err.value.fix


def test_unparsable_toml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "partner.toml").write_text('name = "x"\nstructures = [\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_partner_config(tmp_path / "partner.toml")
    (tmp_path / "partner.yaml").write_text("name: x\n  bad: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_partner_config(tmp_path / "partner.yaml")


def test_unknown_field_suggests_the_right_one() -> None:
    doc = {**MINIMAL, "structures": [{"path": "raw/s.csv", "colums": {}}]}
    err = _config_error(doc)
    assert "field 'structures[0].colums'" in err.message and "unknown field" in err.message
    assert "did you mean 'columns'" in (err.fix or "")


@pytest.mark.parametrize(
    ("activity", "needle"),
    [
        ({"path": "raw/a.csv"}, "exactly one of unit and unit_column"),
        ({"path": "raw/a.csv", "unit": "nM", "unit_column": "u"}, "exactly one of unit"),
        ({"path": "raw/a.xlsx", "unit": "nM"}, "cannot infer the format"),
        ({"path": "raw/a.sdf", "unit": "pIC50"}, "SDF activity files are wide"),
        ({"path": "raw/a.csv", "unit": "nM", "layout": "wide"}, "assay_columns and prefix"),
        (
            {
                "path": "raw/a.csv",
                "unit": "nM",
                "layout": "wide",
                "assay_column_prefix": "p ",
                "assay_id": "A",
            },
            "wide layout takes neither assay_id nor unit_column",
        ),
        (
            {
                "path": "raw/a.csv",
                "unit": "nM",
                "layout": "wide",
                "assay_column_prefix": "p ",
                "columns": {"standard_value": "v"},
            },
            "wide layout: standard_value is not a column",
        ),
        (
            {"path": "raw/a.csv", "unit": "nM", "columns": {"input_compund_id": "x"}},
            "unknown standard name",
        ),
        (
            {
                "path": "raw/a.csv",
                "unit": "nM",
                "assay_id": "A",
                "columns": {"input_assay_id": "x"},
            },
            "either assay_id or columns.input_assay_id",
        ),
        (
            {
                "path": "raw/a.csv",
                "unit": "nM",
                "qualifier_in_value": True,
                "columns": {"standard_qualifier": "q"},
            },
            "exclude each other",
        ),
    ],
)
def test_inconsistent_activity_sources(activity: dict, needle: str) -> None:
    err = _config_error({**MINIMAL, "activities": [activity]})
    assert "activities[0]" in err.message and needle in err.message


def test_assays_must_be_described() -> None:
    doc = {k: v for k, v in MINIMAL.items() if k != "assay_defaults"}
    err = _config_error(doc)
    assert "no assay description" in err.message
    ok = {**doc, "activities": [{"path": "raw/a.csv", "unit": "nM", "assay_defaults": {}}]}
    assert parse_partner_config(ok).activities[0].assay_defaults is not None


def test_bad_names_and_shapes() -> None:
    assert "name" in _config_error({**MINIMAL, "name": "has space"}).message
    assert "not a table" in _config_error(["x"]).message
    binary_regression = {
        **MINIMAL,
        "assay_defaults": {"is_binary": True, "use_in_regression": True},
    }
    assert "binary assays make no regression task" in _config_error(binary_regression).message


def test_binary_defaults_switch_regression_off() -> None:
    cfg = parse_partner_config({**MINIMAL, "assay_defaults": {"is_binary": True}})
    assert cfg.assay_defaults is not None and cfg.assay_defaults.regression is False


def test_config_discovery(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no partner config"):
        partner_config_path(tmp_path)
    (tmp_path / "partner.yaml").write_text(yaml.safe_dump(MINIMAL))
    assert partner_config_path(tmp_path).name == "partner.yaml"
    assert find_partner_config(tmp_path).name == "alpha"
    (tmp_path / "partner.toml").write_text("")
    with pytest.raises(ConfigError, match="several partner configs"):
        partner_config_path(tmp_path)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "csv"),
        ("A.CSV.GZ", "csv"),
        ("a.tsv", "tsv"),
        ("a.txt", "tsv"),
        ("a.parquet", "parquet"),
        ("a.sdf", "sdf"),
        ("a.sdf.gz", "sdf"),
        ("a.xlsx", None),
    ],
)
def test_format_inference(name: str, fmt: str | None) -> None:
    assert infer_format(name) == fmt


def test_explicit_format_overrides_the_suffix() -> None:
    cfg = parse_partner_config(
        {**MINIMAL, "structures": [{"path": "raw/structures.dat", "format": "tsv"}]}
    )
    assert cfg.structures[0].file_format == "tsv"
