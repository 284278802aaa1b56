"""Round trips through every input format, with unit conversion and qualifier mirroring
checked against hand-computed values."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.errors import IngestError
from pharmafl.ingest import (
    T0_COLUMNS,
    T1_COLUMNS,
    T2_COLUMNS,
    assign_ids,
    format_sdf_record,
    smiles_to_molblock,
    write_standard_tables,
)

CHEMBL_CSV = """\
molecule_id,smiles,assay,relation,value,units
CPD-000010,CCO,A1,=,100,nM
CPD-000010,CCO,A2,>,30000,nM
CPD-000002,c1ccccc1,A1,<=,1,uM
CPD-000002,c1ccccc1,A2,>=,2.5e-8,M
CPD-000003,CCN,A1,~,50,pM
CPD-000003,CCN,A2,,7.3,pKi
CPD-000003,CCN,A3,>,6.1,pIC50
"""

COMBINED = {
    "name": "alpha",
    "structures": [
        {
            "path": "raw/export.csv",
            "allow_repeated_ids": True,
            "columns": {"input_compound_id": "molecule_id"},
        }
    ],
    "activities": [
        {
            "path": "raw/export.csv",
            "unit_column": "units",
            "columns": {
                "input_compound_id": "molecule_id",
                "input_assay_id": "assay",
                "standard_qualifier": "relation",
                "standard_value": "value",
            },
        }
    ],
    "assay_defaults": {"assay_type": "OTHER"},
}


def _t1(result) -> list[tuple[int, int, str, float]]:
    return [
        (int(c), int(a), str(q), round(float(v), 6))
        for c, a, q, v in result.t1.itertuples(index=False)
    ]


def test_csv_with_unit_column_converts_and_mirrors(partner) -> None:
    partner.write("raw/export.csv", CHEMBL_CSV)
    r = partner.ingest(COMBINED)
    # ids in sorted order: CPD-000002 → 0, CPD-000003 → 1, CPD-000010 → 2; A1..A3 → 0..2
    assert r.compound_ids["original_id"].tolist() == ["CPD-000002", "CPD-000003", "CPD-000010"]
    assert r.assay_ids["original_id"].tolist() == ["A1", "A2", "A3"]
    assert _t1(r) == [
        (2, 0, "=", 7.0),
        (2, 1, "<", round(9 - math.log10(30000), 6)),  # > 30000 nM is pXC50 < 4.52
        (0, 0, ">", 6.0),  # <= 1 µM is pXC50 >= 6
        (0, 1, "<", round(-math.log10(2.5e-8), 6)),  # 7.60206
        (1, 0, "=", round(12 - math.log10(50), 6)),  # ~ 50 pM
        (1, 1, "=", 7.3),  # pKi kept, empty qualifier means =
        (1, 2, ">", 6.1),  # pIC50: no mirroring
    ]
    assert r.t2.to_dict("list") == {
        "input_compound_id": [0, 1, 2],
        "smiles": ["c1ccccc1", "CCN", "CCO"],
    }
    assert r.rejections.empty
    assert r.counts["measurements"] == 7 and r.counts["assays_from_defaults"] == 3


def test_output_columns_and_dtypes(partner) -> None:
    partner.write("raw/export.csv", CHEMBL_CSV)
    r = partner.ingest(COMBINED)
    assert tuple(r.t0.columns) == T0_COLUMNS
    assert tuple(r.t1.columns) == T1_COLUMNS
    assert tuple(r.t2.columns) == T2_COLUMNS
    assert r.t1.dtypes.astype(str).to_dict() == {
        "input_compound_id": "int64",
        "input_assay_id": "int64",
        "standard_qualifier": "str",
        "standard_value": "float64",
    }
    assert r.t2["input_compound_id"].dtype == np.int64
    assert r.t0["input_assay_id"].dtype == np.int64
    assert r.t0["use_in_regression"].dtype == bool and r.t0["is_binary"].dtype == bool
    assert set(r.t1["standard_qualifier"]) <= {"<", "=", ">"}
    row = r.t0.iloc[0]
    assert (
        row["assay_type"] == "OTHER" and bool(row["use_in_regression"]) and row["direction"] is None
    )


def test_gzipped_csv_reads_like_plain(partner) -> None:
    partner.write("raw/export.csv.gz", gzip.compress(CHEMBL_CSV.encode()))
    doc = {
        **COMBINED,
        "structures": [{**COMBINED["structures"][0], "path": "raw/export.csv.gz"}],
        "activities": [{**COMBINED["activities"][0], "path": "raw/export.csv.gz"}],
    }
    assert _t1(partner.ingest(doc))[1][2:] == ("<", round(9 - math.log10(30000), 6))


def test_tsv_sources_with_micromolar_and_assay_file(partner) -> None:
    partner.write("raw/compounds.tsv", "Compound\tSMILES\tProject\nX1\tCCO\tp1\nX2\tCCC\tp2\n")
    partner.write(
        "raw/results.tsv",
        "Compound\tAssay\tOperator\tResult (uM)\n"
        "X1\tKIN-1\t>\t30\n"
        "X2\tKIN-1\t=\t0.5\n"
        "X2\tSOL\t\t-0.25\n",
    )
    partner.write(
        "raw/assays.tsv",
        "assay\tkind\tregression\tthr1\tdirection\tcatalog\n"
        "KIN-1\tNON-CATALOG-PANEL\tyes\t6.5\thigh\t\n"
        "SOL\tADME\tno\t\tLOW\t\n"
        "CAT-9\tCATALOG-PANEL\t\t\t\t17\n",
    )
    doc = {
        "name": "bravo",
        "structures": [
            {
                "path": "raw/compounds.tsv",
                "columns": {"input_compound_id": "Compound", "smiles": "SMILES"},
                "ignore_columns": ["Project"],
            }
        ],
        "activities": [
            {
                "path": "raw/results.tsv",
                "unit": "µM",
                "columns": {
                    "input_compound_id": "Compound",
                    "input_assay_id": "Assay",
                    "standard_qualifier": "Operator",
                    "standard_value": "Result (uM)",
                },
            }
        ],
        "assays": [
            {
                "path": "raw/assays.tsv",
                "columns": {
                    "input_assay_id": "assay",
                    "assay_type": "kind",
                    "use_in_regression": "regression",
                    "expert_threshold_1": "thr1",
                    "catalog_assay_id": "catalog",
                },
            }
        ],
    }
    r = partner.ingest(doc)
    assert r.assay_ids["original_id"].tolist() == ["CAT-9", "KIN-1", "SOL"]
    # SOL in µM with a negative value is a non-positive concentration: rejected, not fatal.
    assert _t1(r) == [
        (0, 1, "<", round(6 - math.log10(30), 6)),
        (1, 1, "=", round(6 - math.log10(0.5), 6)),
    ]
    assert r.rejections[["file", "row", "reason"]].values.tolist()[0] == [
        "raw/results.tsv",
        3,
        "non_positive_value",
    ]
    t0 = r.t0.set_index("input_assay_id")
    assert t0.loc[1, "assay_type"] == "NON-CATALOG-PANEL" and t0.loc[1, "expert_threshold_1"] == 6.5
    assert t0.loc[1, "direction"] == "high" and t0.loc[2, "direction"] == "low"
    assert not t0.loc[2, "use_in_regression"] and t0.loc[0, "use_in_regression"]
    assert t0.loc[0, "catalog_assay_id"] == 17.0 and np.isnan(t0.loc[1, "catalog_assay_id"])
    assert r.counts["assays_without_measurements"] == 2  # CAT-9, and SOL lost its only value


def test_parquet_with_integer_ids_and_molar_values(partner) -> None:
    partner.write(
        "raw/structures.parquet",
        pd.DataFrame({"cid": np.array([501, 7, 42], dtype=np.int64), "smi": ["CCO", "CCN", "CCC"]}),
    )
    partner.write(
        "raw/activities.parquet",
        pd.DataFrame(
            {
                "cid": np.array([7, 42, 501, 501], dtype=np.int64),
                "assay": ["9001", "9001", "9002", "9002"],
                "q": [">", None, "<", "="],
                "molar": [1e-4, 3.2e-9, 1e-7, np.nan],
            }
        ),
    )
    doc = {
        "name": "charlie",
        "structures": [
            {
                "path": "raw/structures.parquet",
                "columns": {"input_compound_id": "cid", "smiles": "smi"},
            }
        ],
        "activities": [
            {
                "path": "raw/activities.parquet",
                "unit": "M",
                "columns": {
                    "input_compound_id": "cid",
                    "input_assay_id": "assay",
                    "standard_qualifier": "q",
                    "standard_value": "molar",
                },
            }
        ],
        "assay_defaults": {"assay_type": "OTHER"},
    }
    r = partner.ingest(doc)
    # integer ids are kept as they are (MELLODDY files keep their ids)
    assert r.compound_ids["input_compound_id"].tolist() == [7, 42, 501]
    assert r.assay_ids["input_assay_id"].tolist() == [9001, 9002]
    assert _t1(r) == [
        (7, 9001, "<", 4.0),
        (42, 9001, "=", round(-math.log10(3.2e-9), 6)),
        (501, 9002, ">", 7.0),
    ]
    assert r.rejections[["row", "reason"]].values.tolist() == [[4, "empty_value"]]


def _sdf(records: list[tuple[str, str, dict[str, str]]]) -> str:
    return "".join(format_sdf_record(t, smiles_to_molblock(s), p) for t, s, p in records)


def test_sdf_wide_pic50_with_qualifiers_in_values(partner) -> None:
    partner.write(
        "raw/compounds.sdf",
        _sdf(
            [
                ("BRV001", "CCO", {"pIC50 EGFR": "<4.52", "pIC50 ABL1": "7.25"}),
                ("BRV002", "c1ccncc1", {"pIC50 EGFR": ">=8.1"}),
                ("BRV001", "CCO", {"pIC50 EGFR": "5.00"}),  # a replicate, same structure
                ("BRV003", "CC(=O)O", {"pIC50 ABL1": "ND"}),
            ]
        ),
    )
    doc = {
        "name": "bravo",
        "structures": [{"path": "raw/compounds.sdf", "allow_repeated_ids": True}],
        "activities": [
            {
                "path": "raw/compounds.sdf",
                "layout": "wide",
                "assay_column_prefix": "pIC50 ",
                "unit": "pIC50",
                "qualifier_in_value": True,
            }
        ],
        "assay_defaults": {"assay_type": "OTHER"},
    }
    r = partner.ingest(doc)
    assert r.assay_ids["original_id"].tolist() == ["ABL1", "EGFR"]
    assert _t1(r) == [(0, 1, "<", 4.52), (0, 0, "=", 7.25), (1, 1, ">", 8.1), (0, 1, "=", 5.0)]
    assert r.t2["smiles"].tolist() == ["CCO", "c1ccncc1"]
    rej = r.rejections
    assert rej[["row", "reason"]].values.tolist() == [
        [4, "non_numeric_value"],
        [4, "no_activities"],
    ]
    assert "column 'pIC50 ABL1'" in rej["message"].iat[0]


def test_sdf_id_property_and_unreadable_molblock(partner) -> None:
    good = format_sdf_record("", smiles_to_molblock("CCO"), {"CorpID": "C-1", "Batch": "1"})
    broken = (
        "\n  junk\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\nM  END\n"
        "> <CorpID>\nC-2\n\n> <Batch>\n2\n\n$$$$\n"
    )
    partner.write("raw/s.sdf", good + broken)
    partner.write("raw/a.csv", "id,assay,value\nC-1,A,5\nC-2,A,6\n")
    doc = {
        "name": "echo",
        "structures": [
            {
                "path": "raw/s.sdf",
                "columns": {"input_compound_id": "CorpID"},
                "ignore_columns": ["Batch"],
            }
        ],
        "activities": [
            {
                "path": "raw/a.csv",
                "unit": "pXC50",
                "columns": {
                    "input_compound_id": "id",
                    "input_assay_id": "assay",
                    "standard_value": "value",
                },
            }
        ],
        "assay_defaults": {},
    }
    r = partner.ingest(doc)
    assert r.t2["smiles"].tolist() == ["CCO"]
    assert r.rejections[["file", "row", "reason"]].values.tolist() == [
        ["raw/s.sdf", 2, "unparseable_structure"],
        ["raw/a.csv", 2, "compound_rejected"],
    ]


def test_wide_binary_csv_maps_01_to_pm1_and_skips_empty_cells(partner) -> None:
    partner.write("raw/tox.csv", "smiles,id,NR-AR,SR-p53\nCCO,m1,1,\nCCN,m2,0,1\nCCC,m3,,\n")
    doc = {
        "name": "fox",
        "structures": [{"path": "raw/tox.csv", "columns": {"input_compound_id": "id"}}],
        "activities": [
            {
                "path": "raw/tox.csv",
                "layout": "wide",
                "assay_columns": ["NR-AR", "SR-p53"],
                "unit": "binary",
                "columns": {"input_compound_id": "id"},
                "assay_defaults": {"is_binary": True},
            }
        ],
    }
    r = partner.ingest(doc)
    assert _t1(r) == [(0, 0, "=", 1.0), (1, 0, "=", -1.0), (1, 1, "=", 1.0)]
    assert r.t0["is_binary"].tolist() == [True, True]
    assert r.t0["use_in_regression"].tolist() == [False, False]
    assert r.rejections[["row", "reason"]].values.tolist() == [[3, "no_activities"]]
    assert len(partner.ingest(doc, drop_unmeasured=False).t2) == 3


def test_adme_values_pass_through_unchanged(partner) -> None:
    partner.write(
        "raw/adme.csv", "id,smiles,endpoint,value\nm1,CCO,LOG SOL,-1.25\nm2,CCN,LOG SOL,0.0\n"
    )
    doc = {
        "name": "golf",
        "structures": [{"path": "raw/adme.csv", "columns": {"input_compound_id": "id"}}],
        "activities": [
            {
                "path": "raw/adme.csv",
                "unit": "none",
                "columns": {
                    "input_compound_id": "id",
                    "input_assay_id": "endpoint",
                    "standard_value": "value",
                },
            }
        ],
        "assay_defaults": {"assay_type": "ADME"},
    }
    r = partner.ingest(doc)
    assert _t1(r) == [(0, 0, "=", -1.25), (1, 0, "=", 0.0)]
    assert r.t0["assay_type"].tolist() == ["ADME"]


def test_melloddy_standard_tables_round_trip(partner, tmp_path) -> None:
    partner.write("raw/export.csv", CHEMBL_CSV)
    first = partner.ingest(COMBINED)
    out = tmp_path / "std"
    write_standard_tables(first, out)
    assert pd.read_csv(out / "T0.csv").columns.tolist() == [*T0_COLUMNS, "parent_assay_id"]
    doc = {
        "name": "std",
        "structures": [{"path": "std/T2.csv"}],
        "activities": [{"path": "std/T1.csv", "unit": "none"}],
        "assays": [{"path": "std/T0.csv", "ignore_columns": ["parent_assay_id"]}],
    }
    again = partner.ingest(doc)
    pd.testing.assert_frame_equal(again.t1, first.t1)
    pd.testing.assert_frame_equal(again.t2, first.t2)
    pd.testing.assert_frame_equal(again.t0, first.t0)


def test_assign_ids_is_sorted_and_keeps_plain_integers() -> None:
    assert assign_ids(["b", "a", "c"]).to_dict() == {"a": 0, "b": 1, "c": 2}
    assert assign_ids(["10", "2"]).to_dict() == {"10": 10, "2": 2}
    assert assign_ids(["7", "007"]).to_dict() == {"007": 0, "7": 1}  # would collide as ints
    assert assign_ids(["2", "x"]).to_dict() == {"2": 0, "x": 1}


@pytest.mark.parametrize("suffix", ["yaml", "toml"])
def test_partner_config_file_is_found_in_the_folder(partner, suffix: str) -> None:
    import yaml

    from pharmafl.ingest import ingest_partner
    from pharmafl.simulate import toml_dumps

    partner.write("raw/export.csv", CHEMBL_CSV)
    text = yaml.safe_dump(COMBINED) if suffix == "yaml" else toml_dumps(COMBINED)
    partner.write(f"partner.{suffix}", text)
    assert len(ingest_partner(partner.root).t1) == 7


def test_a_molblock_for_every_smiles_rdkit_can_read() -> None:
    """A valence RDKit refuses to sanitize still gets a molblock (the export keeps the row);
    a SMILES RDKit cannot parse at all is refused, never an empty record."""
    assert "V2000" in smiles_to_molblock("C(C)(C)(C)(C)C")  # five bonds to carbon
    with pytest.raises(IngestError, match="cannot be read by RDKit"):
        smiles_to_molblock("C1CC(")


def test_parallel_sdf_conversion_matches_serial() -> None:
    from pharmafl.ingest.sdf import molblocks_to_smiles, smiles_to_molblocks

    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O", "O=[PH](=O)O"] * 4
    serial = smiles_to_molblocks(smiles)
    assert smiles_to_molblocks(smiles, workers=2, min_parallel=1) == serial
    back = molblocks_to_smiles(serial)
    assert molblocks_to_smiles(serial, workers=2, min_parallel=1) == back
    assert back[:4] == ["CCO", "Oc1ccccc1", "CC(=O)Nc1ccc(O)cc1", "C[C@H](N)C(=O)O"]
    assert back[4], "an unsanitizable structure still gets a SMILES for standardization to judge"
