"""A partner coming from MELLODDY points its config at TUNER's own T0/T1/T2 input files.

The fixture is a 28-compound extract of real TUNER year-3 inputs (see
tests/fixtures/ingest/README.md): T0 with ``parent_assay_id`` and empty expert thresholds,
T1 with ``<=``/``>=``/``~`` qualifiers, integer ids.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.errors import ConfigError, IngestError
from pharmafl.ingest import (
    EXPERT_THRESHOLD_COLUMNS,
    T0_COLUMNS,
    ingest_partner,
    load_partner_config,
    parse_partner_config,
)

FIXTURE = Path(__file__).parents[2] / "fixtures" / "ingest" / "melloddy"
PRESET = {"name": "mel", "melloddy": {"t0": "T0.csv", "t1": "T1.csv", "t2": "T2.csv"}}
_TUNER_QUALIFIERS = {"<": "<", "<=": "<", ">": ">", ">=": ">", "=": "=", "~": "="}


@pytest.fixture
def tuner_dir(tmp_path: Path) -> Path:
    for name in ("T0.csv", "T1.csv", "T2.csv"):
        shutil.copy(FIXTURE / name, tmp_path / name)
    return tmp_path


def _inputs(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURE / name, dtype=str, keep_default_na=False)


def test_tuner_inputs_are_taken_as_they_are(tuner_dir: Path) -> None:
    r = ingest_partner(tuner_dir, parse_partner_config(PRESET))
    t0, t1, t2 = _inputs("T0.csv"), _inputs("T1.csv"), _inputs("T2.csv")
    assert r.rejections.empty and len(r.t2) == 28

    # T1: same rows in the same order, ids kept, values bit for bit, TUNER's qualifier map.
    assert r.t1["input_compound_id"].tolist() == [int(x) for x in t1["input_compound_id"]]
    assert r.t1["input_assay_id"].tolist() == [int(x) for x in t1["input_assay_id"]]
    assert (
        r.t1["standard_qualifier"].tolist()
        == t1["standard_qualifier"].map(_TUNER_QUALIFIERS).tolist()
    )
    np.testing.assert_array_equal(
        r.t1["standard_value"].to_numpy(), [float(x) for x in t1["standard_value"]]
    )

    # T2: every structure, ids kept, SMILES unchanged.
    expected_t2 = t2.assign(input_compound_id=t2["input_compound_id"].astype(np.int64))
    got_t2 = r.t2.sort_values("input_compound_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got_t2, expected_t2.sort_values("input_compound_id").reset_index(drop=True)
    )

    # T0: every assay, ids kept, every field as given.
    t0 = t0.assign(input_assay_id=t0["input_assay_id"].astype(np.int64))
    t0 = t0.sort_values("input_assay_id").reset_index(drop=True)
    assert r.t0.columns.tolist() == list(T0_COLUMNS)
    assert r.t0["input_assay_id"].tolist() == t0["input_assay_id"].tolist()
    assert r.t0["assay_type"].tolist() == t0["assay_type"].tolist()
    assert r.t0["use_in_regression"].tolist() == (t0["use_in_regression"] == "True").tolist()
    assert r.t0["is_binary"].tolist() == (t0["is_binary"] == "True").tolist()
    assert r.t0["direction"].tolist() == t0["direction"].tolist()
    for col in (*EXPERT_THRESHOLD_COLUMNS, "catalog_assay_id"):
        expected = pd.to_numeric(t0[col].replace("", np.nan)).to_numpy(dtype=float)
        np.testing.assert_array_equal(r.t0[col].to_numpy(dtype=float), expected)

    # The partner's own ids are the MELLODDY ids.
    assert r.assay_ids["original_id"].tolist() == [str(i) for i in r.assay_ids["input_assay_id"]]


def test_preset_from_a_toml_file_with_several_t1_files(tuner_dir: Path) -> None:
    t1 = (tuner_dir / "T1.csv").read_text().splitlines(keepends=True)
    (tuner_dir / "T1.csv").write_text("".join(t1[:200]))
    (tuner_dir / "T1_more.csv").write_text("".join([t1[0], *t1[200:]]))
    (tuner_dir / "partner.toml").write_text(
        'name = "mel"\n\n[melloddy]\nt0 = "T0.csv"\nt1 = ["T1.csv", "T1_more.csv"]\nt2 = "T2.csv"\n'
    )
    cfg = load_partner_config(tuner_dir / "partner.toml")
    assert [s.path for s in cfg.activity_sources()] == ["T1.csv", "T1_more.csv"]
    r = ingest_partner(tuner_dir)
    assert len(r.t1) == len(t1) - 1 and r.rejections.empty


def test_preset_beside_a_new_export(tuner_dir: Path) -> None:
    (tuner_dir / "new.csv").write_text("cid,smiles,assay,value\nN1,CCO,hERG,>30\nN2,CCN,hERG,2\n")
    doc = {
        **PRESET,
        "structures": [
            {"path": "new.csv", "columns": {"input_compound_id": "cid"}, "extra_columns": "ignore"}
        ],
        "activities": [
            {
                "path": "new.csv",
                "unit": "uM",
                "columns": {
                    "input_compound_id": "cid",
                    "input_assay_id": "assay",
                    "standard_value": "value",
                },
                "ignore_columns": ["smiles"],
                "assay_defaults": {"assay_type": "OTHER"},
            }
        ],
    }
    r = ingest_partner(tuner_dir, parse_partner_config(doc))
    assert len(r.t2) == 30
    new = r.assay_ids.loc[r.assay_ids["original_id"] == "hERG", "input_assay_id"]
    assert r.t1.loc[r.t1["input_assay_id"].isin(new), "standard_qualifier"].tolist() == ["<", "="]


def test_a_t1_assay_missing_from_t0_names_file_and_row(tuner_dir: Path) -> None:
    lines = (tuner_dir / "T0.csv").read_text().splitlines(keepends=True)
    (tuner_dir / "T0.csv").write_text("".join([lines[0], *lines[2:]]))  # drop the first assay
    with pytest.raises(IngestError) as err:
        ingest_partner(tuner_dir, parse_partner_config(PRESET))
    assert "T1.csv, row 1:" in str(err.value) and "no assay file" in str(err.value)


def test_preset_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        parse_partner_config({"name": "m", "melloddy": {"t0": "T0.csv", "t1": "T1.csv"}})
    assert "melloddy.t2" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_partner_config({"name": "m"})
    assert "no structures files" in str(err.value) and "[melloddy]" in str(err.value)
    bad = {"name": "m", "melloddy": {"t0": "a", "t1": "b", "t2": "c", "encoding": "nope"}}
    with pytest.raises(ConfigError) as err:
        parse_partner_config(bad)
    assert "unknown encoding" in str(err.value)
