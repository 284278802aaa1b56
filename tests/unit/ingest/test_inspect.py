"""``pharmafl partner inspect``: a commented config that ingest accepts as written.

Each export shape is inspected, the drafted ``partner.toml`` is read back by the real
ingest (``ingest_partner(folder)``, what ``prepare`` runs) without edits, and the tables
are what the files hold.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from pharmafl.common.errors import ConfigError, IngestError
from pharmafl.ingest import find_partner_config, ingest_partner, parse_partner_config
from pharmafl.ingest.inspect import inspect_exports

FIXTURES = Path(__file__).parents[2] / "fixtures" / "ingest"


def _inspect(folder: Path, *names: str, **kwargs):
    result = inspect_exports([folder / n for n in names], folder / "partner.toml", **kwargs)
    assert result.ingest_ok, result.ingest
    return result, ingest_partner(folder)


def _t1(r) -> list[tuple[str, str, str, float]]:
    cid = dict(zip(r.compound_ids["input_compound_id"], r.compound_ids["original_id"], strict=True))
    aid = dict(zip(r.assay_ids["input_assay_id"], r.assay_ids["original_id"], strict=True))
    return [
        (cid[c], aid[a], q, round(float(v), 3))
        for c, a, q, v in r.t1.itertuples(index=False, name=None)
    ]


def test_long_csv_in_nm_with_qualifiers_inside_values(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "ic50.csv").write_text(
        "Compound ID,SMILES,Assay,IC50 (nM)\n"
        "CPD-1,CCO,Kinase A,100\n"
        "CPD-2,c1ccccc1O,Kinase A,>10000\n"
        "CPD-3,CC(=O)Nc1ccc(O)cc1,Kinase B,<= 5\n"
        "CPD-1,CCO,Kinase B,>1e4\n"
    )
    result, r = _inspect(tmp_path, "raw/ic50.csv")
    assert _t1(r) == [
        ("CPD-1", "Kinase A", "=", 7.0),
        ("CPD-2", "Kinase A", "<", 5.0),
        ("CPD-3", "Kinase B", ">", 8.301),
        ("CPD-1", "Kinase B", "<", 5.0),
    ]
    text = (tmp_path / "partner.toml").read_text()
    assert 'unit = "nM"  # from the header' in text
    assert "allow_repeated_ids = true" in text and "qualifier_in_value = true" in text
    assert text.startswith("# partner.toml: drafted by `pharmafl partner inspect`")
    assert result.files == ["raw/ic50.csv: structures + activities: 4 row(s)"]
    assert [c.split(":")[0] for c in result.checks] == ["assay_type"]
    assert r.t0["assay_type"].tolist() == ["OTHER", "OTHER"]


def test_semicolon_latin1_excel_export_with_decimal_commas(tmp_path: Path) -> None:
    text = (
        "Verbindung;SMILES;Test;Wert (µM)\n"
        "V-1;CCO;Kinase é;>10\n"
        "V-2;CCN;Kinase é;0,5\n"
        "V-3;CCC;Löslichkeit;<0,01\n"
    )
    (tmp_path / "export.csv").write_bytes(text.encode("latin-1"))
    result, r = _inspect(tmp_path, "export.csv")
    cfg = find_partner_config(tmp_path)
    src = cfg.activity_sources()[0]
    assert (src.delimiter, src.encoding, src.decimal, src.unit) == (";", "latin-1", ",", "uM")
    assert _t1(r) == [
        ("V-1", "Kinase é", "<", 5.0),
        ("V-2", "Kinase é", "=", 6.301),
        ("V-3", "Löslichkeit", ">", 8.0),
    ]
    assert any(c.startswith("encoding:") for c in result.checks)


def test_wide_binary_csv(tmp_path: Path) -> None:
    (tmp_path / "tox.csv").write_text(
        "mol_id,smiles,NR-AR,NR-AhR,SR-ARE\nm1,CCO,0,1,\nm2,CCN,1,,0\nm3,CCC,,0,1\n"
    )
    _result, r = _inspect(tmp_path, "tox.csv")
    assert _t1(r) == [
        ("m1", "NR-AR", "=", -1.0),
        ("m1", "NR-AhR", "=", 1.0),
        ("m2", "NR-AR", "=", 1.0),
        ("m2", "SR-ARE", "=", -1.0),
        ("m3", "NR-AhR", "=", -1.0),
        ("m3", "SR-ARE", "=", 1.0),
    ]
    assert r.t0["is_binary"].all() and not r.t0["use_in_regression"].any()


def test_sdf_with_tags(tmp_path: Path) -> None:
    from pharmafl.ingest import format_sdf_record, smiles_to_molblock, write_sdf

    records = [
        ("MOL-1", "CCO", {"MW": "46.07", "pIC50 EGFR": "6.5", "pIC50 ABL1": "<5", "Lab": "A"}),
        ("MOL-2", "c1ccccc1O", {"MW": "94.1", "pIC50 EGFR": "7.25", "Lab": "A"}),
        ("MOL-3", "CCN", {"MW": "45.1", "pIC50 ABL1": "5.5", "Lab": "B"}),
    ]
    write_sdf(
        tmp_path / "c.sdf",
        [format_sdf_record(t, smiles_to_molblock(s), p) for t, s, p in records],
    )
    _result, r = _inspect(tmp_path, "c.sdf")
    assert _t1(r) == [
        ("MOL-1", "EGFR", "=", 6.5),
        ("MOL-1", "ABL1", "<", 5.0),
        ("MOL-2", "EGFR", "=", 7.25),
        ("MOL-3", "ABL1", "=", 5.5),
    ]
    cfg = tomllib.loads((tmp_path / "partner.toml").read_text())
    assert cfg["activities"][0]["assay_column_prefix"] == "pIC50 "
    assert cfg["structures"][0]["ignore_columns"] == ["MW", "Lab"]


def test_melloddy_t0_t1_t2_become_the_preset(tmp_path: Path) -> None:
    for name in ("T0.csv", "T1.csv", "T2.csv"):
        shutil.copy(FIXTURES / "melloddy" / name, tmp_path / name)
    (tmp_path / "T_cat.csv").write_text(
        "catalog_assay_id,catalog_task_id,threshold,threshold_method\n-1,-1,,none\n"
    )
    result, r = _inspect(tmp_path, "T0.csv", "T1.csv", "T2.csv", "T_cat.csv")
    cfg = tomllib.loads((tmp_path / "partner.toml").read_text())
    assert cfg == {
        "name": cfg["name"],
        "melloddy": {"t0": "T0.csv", "t1": "T1.csv", "t2": "T2.csv"},
    }
    assert result.checks == [] and "T_cat.csv: MELLODDY T_cat, not needed" in result.files[1]
    preset = ingest_partner(
        tmp_path, parse_partner_config({"name": "m", "melloddy": cfg["melloddy"]})
    )
    pd.testing.assert_frame_equal(r.t1, preset.t1)
    assert len(r.t2) == 28 and len(r.t0) == 482


def test_every_simulated_export_shape_reads_like_its_own_config(
    tmp_path: Path,
) -> None:
    """The simulator writes four partners' exports in four shapes with hand-made configs
    (chembl_csv, sdf_pic50, parquet_um with an assay file, tsv_molar): inspect's drafts
    give the same tables, with no edit."""
    from pharmafl.simulate import SimulationSpec, simulate_consortium

    spec = SimulationSpec(source=str(FIXTURES / "fsmol_sample.csv"), partners=4, seed=13)
    sim = simulate_consortium(tmp_path / "c", spec)
    for d in sim.partner_dirs.values():
        raw = sorted((d / "raw").iterdir())
        result = inspect_exports(raw, d / "drafted.toml", check=False)
        own, drafted = ingest_partner(d), ingest_partner(d, result.config)
        for table in ("t0", "t1", "t2", "rejections"):
            pd.testing.assert_frame_equal(getattr(drafted, table), getattr(own, table))


def test_an_existing_config_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,smiles,assay,pIC50\nc1,CCO,A,5\n")
    out = tmp_path / "partner.toml"
    out.write_text("# mine\n")
    with pytest.raises(ConfigError) as err:
        inspect_exports([tmp_path / "a.csv"], out)
    assert err.value.file == str(out) and "--force" in (err.value.fix or "")
    assert out.read_text() == "# mine\n"
    inspect_exports([tmp_path / "a.csv"], out, force=True, check=False)
    assert "[[activities]]" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "partner.toml"]  # no temp
    (tmp_path / "partner.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="prepare would find two configs"):
        inspect_exports([tmp_path / "a.csv"], out, force=True)
    with pytest.raises(ConfigError, match="inspect writes TOML") as err:
        inspect_exports([tmp_path / "a.csv"], tmp_path / "partner.yml", force=True)
    assert "partner.toml" in (err.value.fix or "") and not (tmp_path / "partner.yml").exists()


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("a.xlsx", b"PK\x03\x04", "cannot tell the file's format"),
        ("a.csv", b"PK\x03\x04" + bytes(100), "Excel workbook"),
        ("a.csv", b"", "file is empty"),
        ("a.csv", b"id,mw\nc1,46\n", "found no structures"),
        ("a.csv.gz", b"\x1f\x8b\x08\x00trunc", "truncated"),
        ("a.csv", b"id,smiles,assay,pIC50\n", "file has no data rows"),
    ],
)
def test_files_inspect_cannot_use(tmp_path: Path, name: str, content: bytes, needle: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(IngestError) as err:
        inspect_exports([tmp_path / name], tmp_path / "partner.toml")
    assert needle in str(err.value) and err.value.fix
    assert not (tmp_path / "partner.toml").exists()


def test_cli_inspect(tmp_path: Path) -> None:
    from pharmafl.cli.partner import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    (tmp_path / "a.csv").write_text("id,smiles,assay,value\nc1,CCO,A,5\nc2,CCN,A,6\n")
    args = ["partner", "inspect", str(tmp_path / "a.csv"), "--out", str(tmp_path / "partner.toml")]
    ok = CliRunner().invoke(app, [*args, "--name", "acme"])
    assert ok.exit_code == 0, ok.output
    assert "a.csv: structures + activities: 2 row(s)" in ok.output
    assert "line(s) marked CHECK" in ok.output and "  CHECK unit:" in ok.output
    assert "ingest check: 2 compounds, 2 measurements, 1 assays" in ok.output
    assert find_partner_config(tmp_path).name == "acme"
    again = CliRunner().invoke(app, args)
    assert isinstance(again.exception, ConfigError)
    assert np.isclose(ingest_partner(tmp_path).t1["standard_value"], [5.0, 6.0]).all()
