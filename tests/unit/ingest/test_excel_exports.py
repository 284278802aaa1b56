"""Exports as they come from Excel or an ELN: ``;`` and Latin-1, decimal commas, and
qualifiers inside values — no censored value is lost without a word."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pharmafl.common.errors import ConfigError
from pharmafl.ingest import parse_partner_config

STRUCT = "id,smiles\nc1,CCO\nc2,CCN\nc3,CCC\n"


def _doc(**activity: Any) -> dict[str, Any]:
    return {
        "name": "p",
        "structures": [{"path": "s.csv", "columns": {"input_compound_id": "id"}}],
        "activities": [
            {
                "path": "a.csv",
                "unit": "nM",
                "columns": {
                    "input_compound_id": "id",
                    "input_assay_id": "assay",
                    "standard_value": "value",
                },
                **activity,
            }
        ],
        "assay_defaults": {},
    }


def _t1(r) -> list[tuple[str, float]]:
    pairs = zip(r.t1["standard_qualifier"], r.t1["standard_value"], strict=True)
    return [(q, round(v, 3)) for q, v in pairs]


def test_qualifiers_inside_values_are_split_by_default(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id,assay,value\nc1,A,>10000\nc2,A,<= 5\nc3,A,>1e4\nc1,B,100\n")
    r = partner.ingest(_doc())
    # nM → pXC50 mirrors the qualifier: "> 10000 nM" is "pXC50 < 5".
    assert _t1(r) == [("<", 5.0), (">", 8.301), ("<", 5.0), ("=", 7.0)]
    assert r.rejections.empty


def test_excel_semicolon_latin1_export_with_decimal_commas(partner) -> None:
    partner.write("s.csv", STRUCT)
    text = "Verbindung;Test;Wert (µM)\nc1;Kinase A;>10\nc2;Kinase A;0,5\nc3;Kinase B;<0,01\n"
    partner.write("a.csv", text.encode("latin-1"))
    doc = _doc(
        unit="uM",
        delimiter=";",
        encoding="latin-1",
        decimal=",",
        columns={
            "input_compound_id": "Verbindung",
            "input_assay_id": "Test",
            "standard_value": "Wert (µM)",
        },
    )
    r = partner.ingest(doc)
    assert _t1(r) == [("<", 5.0), ("=", 6.301), (">", 8.0)]
    assert r.assay_ids["original_id"].tolist() == ["Kinase A", "Kinase B"]


def test_decimal_commas_read_with_a_point_stop_the_run_naming_the_setting(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id;assay;value\nc1;A;12,5\nc2;A;3\nc3;A;0,1\n")
    err = partner.error(_doc())
    assert err.file == "a.csv" and err.row == 1
    assert "2 value(s) in column(s) ['value'] use a decimal comma" in err.message
    assert 'decimal = ","' in (err.fix or "")


def test_qualified_values_beside_a_qualifier_column_stop_the_run(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id,assay,q,value\nc1,A,,>10000\nc2,A,=,5\nc3,A,,>30000\n")
    doc = _doc()
    doc["activities"][0]["columns"]["standard_qualifier"] = "q"
    err = partner.error(doc)
    assert err.file == "a.csv" and err.row == 1
    assert "2 value(s) in column(s) ['value'] carry a qualifier inside the value" in err.message
    assert "'q'" in (err.fix or "") and "standard_qualifier" in (err.fix or "")


def test_qualifier_in_value_false_refuses_qualified_values(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id,assay,value\nc1,A,100\nc2,A,>10000\n")
    err = partner.error(_doc(qualifier_in_value=False))
    assert err.row == 2 and "1 value(s) in column(s) ['value']" in err.message
    assert "qualifier_in_value" in (err.fix or "")
    assert len(partner.ingest(_doc(qualifier_in_value=True)).t1) == 2


def test_non_numeric_text_is_still_a_rejection_row(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id,assay,value\nc1,A,n.d.\nc2,A,>10000\nc3,A,inactive\n")
    r = partner.ingest(_doc())
    assert _t1(r) == [("<", 5.0)]
    assert r.rejections[["row", "reason"]].values.tolist() == [
        [1, "non_numeric_value"],
        [3, "non_numeric_value"],
        [1, "no_activities"],
        [3, "no_activities"],
    ]


def test_garbled_qualifiers_inside_values_are_rejection_rows(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id,assay,value\nc1,A,<<<5\nc2,A,≥6\nc3,A,<<<7\n")
    r = partner.ingest(_doc(unit="pIC50"))
    # "<<<5" splits as "<<" and "<5", which is not a number: a rejection, not a crash.
    assert r.rejections["reason"].tolist()[:2] == ["non_numeric_value", "non_numeric_value"]
    assert _t1(r) == [(">", 6.0)]


def test_wide_sdf_export_splits_qualifiers_by_default(partner) -> None:
    from pharmafl.ingest import format_sdf_record, smiles_to_molblock

    sdf = "".join(
        format_sdf_record(t, smiles_to_molblock(s), {"pIC50 X": v})
        for t, s, v in [("a", "CCO", "5"), ("b", "CCN", ">6.5")]
    )
    partner.write("c.sdf", sdf)
    doc = {
        "name": "p",
        "structures": [{"path": "c.sdf"}],
        "activities": [
            {"path": "c.sdf", "layout": "wide", "assay_column_prefix": "pIC50 ", "unit": "pIC50"}
        ],
        "assay_defaults": {},
    }
    r = partner.ingest(doc)
    assert _t1(r) == [("=", 5.0), (">", 6.5)]


def test_parquet_numbers_need_no_splitting(partner) -> None:
    import pandas as pd

    partner.write("s.csv", STRUCT)
    values = np.array([100.0, 0.1])
    partner.write("a.parquet", pd.DataFrame({"id": ["c1", "c2"], "assay": "A", "value": values}))
    r = partner.ingest(_doc(path="a.parquet"))
    np.testing.assert_array_equal(r.t1["standard_value"], 9 - np.log10(values))


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ({"path": "a.parquet", "delimiter": ";"}, "parquet files have no delimiter"),
        ({"path": "a.parquet", "encoding": "latin-1"}, "parquet files have no encoding"),
        ({"path": "a.parquet", "decimal": ","}, "remove decimal"),
        ({"path": "a.sdf", "delimiter": ";"}, "SDF files have no delimiter"),
        ({"path": "a.csv", "encoding": "klingon"}, "unknown encoding"),
        ({"path": "a.csv", "delimiter": ";;"}, "at most 1 character"),
        ({"path": "a.csv", "decimal": ","}, "also the delimiter"),
        ({"path": "a.tsv", "delimiter": '"'}, "quote or line break"),
    ],
)
def test_text_options_are_checked_in_the_config(source: dict, needle: str) -> None:
    doc = {
        "name": "p",
        "structures": [{"columns": {"input_compound_id": "id"}, **source}],
        "activities": [{"path": "a.csv", "unit": "nM"}],
        "assay_defaults": {},
    }
    with pytest.raises(ConfigError) as err:
        parse_partner_config(doc, source="partner.toml")
    assert "structures[0]" in str(err.value) and needle in str(err.value)
