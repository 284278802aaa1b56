"""Every class of bad input gives a clear error (file, row, fix) or a rejection row.

Row numbers are 1-based data rows (the header does not count; for SDF the record number).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.errors import ConfigError
from pharmafl.ingest import parse_partner_config

STRUCT = "id,smiles\nc1,CCO\nc2,CCN\nc3,CCC\n"
ACTS = "id,assay,q,value\nc1,A,=,100\nc2,A,>,30000\nc3,B,<,5\n"
BASE: dict[str, Any] = {
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
    "assay_defaults": {"assay_type": "OTHER"},
}


def _doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        if key == "":
            doc[section] = value
        else:
            doc[section][0][key] = value
    return doc


def _where(err, file: str, row: int | None) -> None:
    assert err.file == file
    assert err.row == row
    text = str(err)
    assert text.startswith(f"{file}, row {row}:" if row is not None else f"{file}:")
    assert err.fix, "every error says how to fix it"


def _setup(partner, structures: str = STRUCT, activities: str = ACTS) -> None:
    partner.write("s.csv", structures)
    partner.write("a.csv", activities)


def test_baseline_is_clean(partner) -> None:
    _setup(partner)
    r = partner.ingest(BASE)
    assert len(r.t1) == 3 and r.rejections.empty


# --- shape problems: IngestError with file and row ------------------------------------


def test_missing_column(partner) -> None:
    _setup(partner, activities="id,assay,value\nc1,A,100\n")
    err = partner.error(BASE)
    _where(err, "a.csv", None)
    assert "missing column(s) ['q']" in err.message and "header" in err.message


def test_extra_column_is_an_error_unless_ignored(partner) -> None:
    _setup(partner, structures="id,smiles,mw\nc1,CCO,46\nc2,CCN,45\nc3,CCC,44\n")
    err = partner.error(BASE)
    _where(err, "s.csv", None)
    assert "unexpected column(s) ['mw']" in err.message
    assert len(partner.ingest(_doc(structures__ignore_columns=["mw"])).t2) == 3
    assert len(partner.ingest(_doc(structures__extra_columns="ignore")).t2) == 3


def test_repeated_header_name(partner) -> None:
    _setup(partner, structures="id,smiles,smiles\nc1,CCO,CCO\n")
    err = partner.error(BASE)
    _where(err, "s.csv", None)
    assert "repeats column name" in err.message


@pytest.mark.parametrize("name", ["a.csv", "a.parquet"])
def test_empty_file(partner, name: str) -> None:
    """Said as such, also for a parquet file (which pyarrow would call corrupt)."""
    _setup(partner, activities="")
    (partner.root / "a.csv").rename(partner.root / name)
    err = partner.error(_doc(activities__path=name))
    _where(err, name, None)
    assert err.message == "file is empty." and err.fix == "export the data again."


def test_header_only_file(partner) -> None:
    _setup(partner, structures="id,smiles\n")
    err = partner.error(BASE)
    _where(err, "s.csv", None)
    assert "no data rows" in err.message


def test_missing_file(partner) -> None:
    partner.write("s.csv", STRUCT)
    _where(partner.error(BASE), "a.csv", None)


def test_ragged_row_names_the_data_row(partner) -> None:
    _setup(partner, activities="id,assay,q,value\nc1,A,=,100\nc2,A,>,30,000\n")
    err = partner.error(BASE)
    _where(err, "a.csv", 2)
    assert "number of fields" in err.message


def test_non_utf8_file_names_the_line_and_the_encoding_to_set(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", "id,assay,q,value\nc1,A,=,100\nc2,Aé,>,30000\n".encode("cp1252"))
    err = partner.error(BASE)
    _where(err, "a.csv", None)
    assert "not UTF-8 text (first bad byte on line 3)" in err.message
    assert 'encoding = "latin-1"' in (err.fix or "")
    r = partner.ingest(_doc(activities__encoding="latin-1"))
    assert r.assay_ids["original_id"].tolist() == ["A", "Aé"]


def test_a_byte_order_mark_settles_the_encoding(partner) -> None:
    partner.write("s.csv", STRUCT.encode("utf-16"))
    partner.write("a.csv", ACTS.encode("utf-8-sig"))
    assert len(partner.ingest(BASE).t1) == 3


def test_empty_compound_id(partner) -> None:
    _setup(partner, activities="id,assay,q,value\nc1,A,=,100\n,A,=,5\n")
    err = partner.error(BASE)
    _where(err, "a.csv", 2)
    assert "empty compound id" in err.message


def test_duplicate_compound_id_within_a_file(partner) -> None:
    _setup(partner, structures="id,smiles\nc1,CCO\nc2,CCN\nc1,CCO\nc3,CCC\n")
    err = partner.error(BASE)
    _where(err, "s.csv", 3)
    assert "duplicate compound id" in err.message


def test_repeated_ids_must_repeat_the_same_structure(partner) -> None:
    _setup(partner, structures="id,smiles\nc1,CCO\nc2,CCN\nc1,CCCl\nc3,CCC\n")
    err = partner.error(_doc(structures__allow_repeated_ids=True))
    _where(err, "s.csv", 3)
    assert "different structure" in err.message


def test_duplicate_compound_id_across_files(partner) -> None:
    _setup(partner)
    partner.write("s2.csv", "id,smiles\nc9,CO\nc2,CCN\n")
    doc = _doc()
    doc["structures"].append({"path": "s2.csv", "columns": {"input_compound_id": "id"}})
    err = partner.error(doc)
    _where(err, "s2.csv", 2)
    assert "also in s.csv (row 2)" in err.message


def test_activity_for_unknown_compound(partner) -> None:
    _setup(partner, activities="id,assay,q,value\nc1,A,=,100\nc7,A,=,5\n")
    err = partner.error(BASE)
    _where(err, "a.csv", 2)
    assert "compound id that is in no structure file" in err.message


def test_activity_for_unknown_assay(partner) -> None:
    _setup(partner)
    partner.write("t0.csv", "input_assay_id,assay_type\nA,OTHER\n")
    doc = _doc(assay_defaults__=None)
    del doc["assay_defaults"]
    doc["assays"] = [{"path": "t0.csv"}]
    err = partner.error(doc)
    _where(err, "a.csv", 3)
    assert "assay id that is in no assay file" in err.message


def test_unknown_unit_in_a_unit_column(partner) -> None:
    _setup(partner, activities="id,assay,q,value,u\nc1,A,=,100,nM\nc2,A,=,5,ng/mL\n")
    err = partner.error(_doc(activities__unit=None, activities__unit_column="u"))
    _where(err, "a.csv", 2)
    assert "unknown unit 'ng/mL'" in err.message and "nM" in (err.fix or "")


def test_empty_unit_in_a_unit_column_is_rejected_not_guessed(partner) -> None:
    _setup(partner, activities="id,assay,q,value,u\nc1,A,=,100,nM\nc2,A,=,5,\nc3,A,=,7,pIC50\n")
    r = partner.ingest(_doc(activities__unit=None, activities__unit_column="u"))
    assert r.t1["standard_value"].tolist() == [7.0, 7.0]
    assert r.rejections[["file", "row", "reason"]].values.tolist()[0] == ["a.csv", 2, "empty_unit"]


def test_unknown_unit_in_the_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        parse_partner_config(_doc(activities__unit="furlongs"), source="partner.toml")
    assert "activities[0].unit" in str(err.value) and "furlongs" in str(err.value)


def test_unknown_qualifier(partner) -> None:
    _setup(partner, activities="id,assay,q,value\nc1,A,=,100\nc2,A,=,5\nc3,A,approx,5\n")
    err = partner.error(BASE)
    _where(err, "a.csv", 3)
    assert "unknown qualifier(s) in column 'q': 'approx' (row 3)" in err.message


def test_unknown_qualifiers_are_all_listed_with_a_row_and_a_count(partner) -> None:
    acts = "id,assay,q,value\nc1,A,=,100\nc2,A,ca.,5\nc3,A,approx,5\nc1,B,ca.,7\nc2,B,GT,1\n"
    _setup(partner, activities=acts)
    err = partner.error(BASE)
    _where(err, "a.csv", 2)
    assert "'ca.' (2 rows, first row 2), 'approx' (row 3), 'GT' (row 5)" in err.message
    assert "4 row(s) in all" in err.message


def test_unknown_qualifier_in_a_wide_sdf_names_the_record(partner) -> None:
    from pharmafl.ingest import format_sdf_record, smiles_to_molblock

    sdf = "".join(
        format_sdf_record(t, smiles_to_molblock(s), {"pIC50 X": v})
        for t, s, v in [("a", "CCO", "5"), ("b", "CCN", "=<6")]
    )
    partner.write("c.sdf", sdf.replace("=<6", "<>6"))
    doc = {
        "name": "p",
        "structures": [{"path": "c.sdf"}],
        "activities": [
            {
                "path": "c.sdf",
                "layout": "wide",
                "assay_column_prefix": "pIC50 ",
                "unit": "pIC50",
                "qualifier_in_value": True,
            }
        ],
        "assay_defaults": {},
    }
    # "<>6" parses as qualifier "<" and text ">6", which is not a number: a rejection.
    r = partner.ingest(doc)
    assert r.rejections[["row", "reason"]].values.tolist()[0] == [2, "non_numeric_value"]


@pytest.mark.parametrize(
    ("t0", "needle"),
    [
        ("input_assay_id,assay_type\nA,OTHER\nB,BINDING\n", "unknown assay_type"),
        ("input_assay_id,use_in_regression\nA,yes\nB,maybe\n", "true/false"),
        ("input_assay_id,expert_threshold_1\nA,6.5\nB,high\n", "must hold numbers"),
        ("input_assay_id,direction\nA,low\nB,up\n", "direction must be high, low"),
        ("input_assay_id,catalog_assay_id\nA,\nB,12\n", "only allowed on CATALOG-PANEL"),
    ],
)
def test_wrong_types_in_an_assay_file(partner, t0: str, needle: str) -> None:
    _setup(partner)
    partner.write("t0.csv", t0)
    doc = _doc()
    doc["assays"] = [{"path": "t0.csv"}]
    err = partner.error(doc)
    _where(err, "t0.csv", 2)
    assert needle in err.message


def test_duplicate_assay_id(partner) -> None:
    _setup(partner)
    partner.write("t0.csv", "input_assay_id,assay_type\nA,OTHER\nB,ADME\nA,OTHER\n")
    doc = _doc()
    doc["assays"] = [{"path": "t0.csv"}]
    err = partner.error(doc)
    _where(err, "t0.csv", 3)
    assert "duplicate assay id" in err.message and "repeat an earlier id" in err.message


def test_an_assay_listed_in_two_assay_files(partner) -> None:
    _setup(partner)
    partner.write("t0.csv", "input_assay_id,assay_type\nA,OTHER\n")
    partner.write("t0b.csv", "input_assay_id,assay_type\nB,OTHER\nA,ADME\n")
    doc = _doc()
    doc["assays"] = [{"path": "t0.csv"}, {"path": "t0b.csv"}]
    err = partner.error(doc)
    _where(err, "t0b.csv", 2)
    assert "also in t0.csv (row 1)" in err.message and "one file only" in (err.fix or "")


WIDE = {
    "path": "w.csv",
    "layout": "wide",
    "unit": "pIC50",
    "columns": {"input_compound_id": "id"},
}


@pytest.mark.parametrize(
    ("header", "prefix", "needle"),
    [
        ("id,pIC50 A,pIC50 B", "IC50 ", "no column starts with the assay prefix 'IC50 '"),
        ("id,pIC50,pIC50 B", "pIC50", "named exactly like the prefix"),
    ],
)
def test_a_wide_file_whose_columns_do_not_fit_the_prefix(
    partner, header: str, prefix: str, needle: str
) -> None:
    _setup(partner)
    partner.write("w.csv", f"{header}\nc1,5,6\nc2,,7\n")
    doc = _doc()
    doc["activities"] = [{**WIDE, "assay_column_prefix": prefix}]
    err = partner.error(doc)
    _where(err, "w.csv", None)
    assert needle in err.message and "assay_column_prefix" in (err.fix or "")


@pytest.mark.parametrize("name", ["dir.csv", "dir.parquet"])
def test_a_folder_where_a_file_should_be(partner, name: str) -> None:
    """Also a folder named .parquet, which pandas would read as a dataset of parquet files."""
    _setup(partner)
    (partner.root / name).mkdir()
    err = partner.error(_doc(structures__path=name))
    _where(err, name, None)
    assert "is a folder, not a file" in err.message


def test_an_unreadable_parquet_file_says_permission_not_corrupt(
    partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner.write("s.parquet", pd.DataFrame({"id": ["c1", "c2", "c3"], "smiles": ["C", "N", "O"]}))
    partner.write("a.csv", ACTS)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pd, "read_parquet", refuse)
    err = partner.error(_doc(structures__path="s.parquet"))
    _where(err, "s.parquet", None)
    assert "permission denied" in err.message and "corrupt" not in err.message


def test_fractional_numeric_id_in_parquet(partner) -> None:
    partner.write("s.parquet", pd.DataFrame({"id": [1.0, 2.5], "smiles": ["CCO", "CCN"]}))
    partner.write("a.csv", ACTS)
    doc = _doc(structures__path="s.parquet")
    err = partner.error(doc)
    _where(err, "s.parquet", 2)
    assert "whole numbers" in err.message


def test_numbers_in_the_smiles_column(partner) -> None:
    partner.write("s.parquet", pd.DataFrame({"id": ["c1", "c2"], "smiles": [np.nan, 3.0]}))
    partner.write("a.csv", ACTS)
    err = partner.error(_doc(structures__path="s.parquet"))
    _where(err, "s.parquet", 2)
    assert "holds numbers" in err.message


def test_a_header_without_commas_is_read_with_its_one_delimiter(partner) -> None:
    _setup(partner, structures=STRUCT.replace(",", ";"))
    assert len(partner.ingest(BASE).t2) == 3


def test_missing_columns_under_another_delimiter_name_it_in_the_fix(partner) -> None:
    # The header holds both a comma (inside a name) and semicolons: nothing is guessed.
    _setup(partner, activities="id;assay;q;IC50, nM\nc1;A;=;100\nc2;A;>;30000\nc3;B;<;5\n")
    columns = {**BASE["activities"][0]["columns"], "standard_value": "IC50, nM"}
    err = partner.error(_doc(activities__columns=columns))
    _where(err, "a.csv", None)
    assert "missing column(s)" in err.message
    assert "looks ';' (semicolon)-separated" in (err.fix or "")
    assert 'set delimiter = ";"' in (err.fix or "")
    fixed = _doc(activities__columns=columns, activities__delimiter=";")
    assert len(partner.ingest(fixed).t1) == 3


# --- value problems: rejection rows, the run goes on ------------------------------------


def test_value_problems_become_rejection_rows(partner) -> None:
    _setup(
        partner,
        structures="id,smiles\nc1,CCO\nc2,CCN\nc3,CCC\nc4,\n",
        activities="id,assay,q,value\n"
        "c1,A,=,100\n"  # kept
        "c2,A,=,abc\n"  # non-numeric
        "c2,A,=,0\n"  # non-positive concentration
        "c3,A,=,-5\n"  # non-positive concentration
        "c3,A,=,\n"  # empty
        "c1,A,=,inf\n"  # not finite
        "c4,A,=,10\n",  # compound with an empty structure
    )
    r = partner.ingest(BASE)
    assert len(r.t1) == 1
    got = r.rejections[["file", "row", "input_compound_id", "reason"]].values.tolist()
    assert got == [
        ["s.csv", 4, 3, "empty_smiles"],
        ["a.csv", 7, 3, "compound_rejected"],
        ["a.csv", 5, 2, "empty_value"],
        ["a.csv", 2, 1, "non_numeric_value"],
        ["a.csv", 6, 0, "non_numeric_value"],
        ["a.csv", 3, 1, "non_positive_value"],
        ["a.csv", 4, 2, "non_positive_value"],
        ["s.csv", 2, 1, "no_activities"],
        ["s.csv", 3, 2, "no_activities"],
    ]
    assert r.counts["rejected_non_positive_value"] == 2
    assert r.counts["measurements_read"] == 7
    assert all(r.rejections["message"].str.len() > 10)


def test_bad_binary_values_are_rejected(partner) -> None:
    _setup(partner, activities="id,assay,q,value\nc1,A,=,1\nc2,A,=,0\nc3,A,=,0.5\n")
    doc = _doc(activities__unit="binary", assay_defaults__={"is_binary": True})
    r = partner.ingest(doc)
    assert r.t1["standard_value"].tolist() == [1.0, -1.0]
    assert r.rejections[["row", "reason"]].values.tolist()[0] == [3, "invalid_binary_value"]


def test_binary_assay_with_non_binary_values_is_rejected(partner) -> None:
    _setup(partner, activities="id,assay,q,value\nc1,A,=,1\nc2,A,=,7.5\nc3,A,=,-1\n")
    doc = _doc(activities__unit="none", assay_defaults__={"is_binary": True})
    r = partner.ingest(doc)
    assert r.t1["standard_value"].tolist() == [1.0, -1.0]
    assert r.rejections[["row", "reason"]].values.tolist()[0] == [2, "invalid_binary_value"]


def test_corrupt_compressed_and_parquet_files(partner) -> None:
    import gzip

    partner.write("s.csv.gz", gzip.compress(STRUCT.encode())[:30])
    partner.write("a.csv", ACTS)
    err = partner.error(_doc(structures__path="s.csv.gz"))
    _where(err, "s.csv.gz", None)
    assert "truncated" in err.message and "check the format" not in str(err)
    partner.write("s.parquet", b"PAR1 not really parquet")
    err = partner.error(_doc(structures__path="s.parquet"))
    _where(err, "s.parquet", None)
    assert "cannot read the file as parquet" in err.message and "corrupt" in err.message


@pytest.mark.parametrize("name", ["s.csv.gz", "s.sdf.gz"])
def test_truncated_corrupt_and_fake_gzip_name_the_file(partner, name: str) -> None:
    import gzip

    if name.endswith(".sdf.gz"):
        from pharmafl.ingest import format_sdf_record, smiles_to_molblock

        text = (
            "".join(
                format_sdf_record(c, smiles_to_molblock(s), {})
                for c, s in zip(["c1", "c2", "c3"], ["CCO", "CCN", "CCC"], strict=True)
            )
            * 20
        )
        doc = _doc(structures__path=name, structures__columns={})
    else:
        text = STRUCT + "".join(f"x{i},CC\n" for i in range(3000))
        doc = _doc(structures__path=name, structures__allow_repeated_ids=False)
    data = gzip.compress(text.encode())
    partner.write("a.csv", ACTS)
    cases = {
        "truncated": data[: len(data) // 2],
        "corrupt": data[:20] + bytes(b ^ 0x55 for b in data[20:60]) + data[60:],
        "not gzip-compressed": text.encode(),
    }
    for needle, content in cases.items():
        partner.write(name, content)
        err = partner.error(doc)
        _where(err, name, None)
        assert needle in err.message, (needle, str(err))


def test_unreadable_file(partner, monkeypatch: pytest.MonkeyPatch) -> None:
    import pharmafl.ingest.files as files

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    _setup(partner)
    monkeypatch.setattr(files, "open", refuse, raising=False)
    err = partner.error(BASE)
    _where(err, "s.csv", None)
    assert "permission denied" in err.message


def test_an_excel_workbook_named_csv_says_to_save_it_as_csv(partner) -> None:
    partner.write("s.csv", STRUCT)
    partner.write("a.csv", b"PK\x03\x04" + bytes(200))
    err = partner.error(BASE)
    _where(err, "a.csv", None)
    assert "Excel workbook" in err.message and "CSV" in (err.fix or "")
