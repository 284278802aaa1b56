"""End-to-end preparation of simulated partners, and every way it must refuse to run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pharmafl.common.errors import ConsistencyError, IngestError, KeyFileError, PreparationError
from pharmafl.common.params import ConsortiumParameters
from pharmafl.partner import PrepareOptions, prepare_partner
from pharmafl.schema_registry import SCHEMA_DIR

pytestmark = pytest.mark.slow

EXPECTED_FILES = {
    "cls_T11_x.npz",
    "reg_T11_x.npz",
    "cls_T11_fold_vector.npy",
    "reg_T11_fold_vector.npy",
    "cls_T10_y.npz",
    "reg_T10_y.npz",
    "reg_T10_censor_y.npz",
    "cls_weights.csv",
    "reg_weights.csv",
    "T8c.csv",
    "T8r.csv",
    "graphs.npz",
    "compounds.csv",
    "manifest.json",
    "run_report.json",
    "summary.txt",
    "task_catalogue.json",
}


def _partners(root: Path) -> list[Path]:
    return sorted((root / "partners").iterdir())


def test_outputs_are_complete_and_schema_valid(prepared_consortium: Path) -> None:
    manifest_schema = json.loads((SCHEMA_DIR / "prepare_manifest.schema.json").read_text())
    report_schema = json.loads((SCHEMA_DIR / "prepare_run_report.schema.json").read_text())
    for partner in _partners(prepared_consortium):
        out = partner / "prepared"
        assert {p.name for p in out.iterdir()} == EXPECTED_FILES
        manifest = json.loads((out / "manifest.json").read_text())
        jsonschema.validate(manifest, manifest_schema)
        jsonschema.validate(json.loads((out / "run_report.json").read_text()), report_schema)
        assert manifest["reference_hash_checked"] is True
        x = sp.load_npz(out / "cls_T11_x.npz")
        y = sp.load_npz(out / "cls_T10_y.npz")
        folds = np.load(out / "cls_T11_fold_vector.npy")
        assert x.shape[0] == y.shape[0] == len(folds) == manifest["counts"]["descriptor_vectors"]
        assert x.shape[1] == 32000
        assert manifest["counts"]["classification_tasks"] == y.shape[1] > 0
        assert set(np.unique(y.data)) <= {-1.0, 1.0}
        for name, entry in manifest["files"].items():
            from pharmafl.common.io import sha256_file

            assert sha256_file(out / name) == entry["sha256"], name


def test_manifest_holds_nothing_private(prepared_consortium: Path) -> None:
    for partner in _partners(prepared_consortium):
        out = partner / "prepared"
        text = (out / "manifest.json").read_text()
        compounds = pd.read_csv(out / "compounds.csv")
        for value in list(compounds["input_compound_id"].astype(str)[:50]) + list(
            compounds["canonical_smiles"][:50]
        ):
            assert value not in text
        key = json.loads((partner / "key.json").read_text())["key"]
        for f in out.iterdir():
            if f.suffix in (".json", ".csv", ".txt"):
                assert key not in f.read_text(), f.name


def test_shared_compounds_have_identical_rows_and_folds(prepared_consortium: Path) -> None:
    """The point of keyed scrambling and keyed scaffold folds: partners line up."""
    seen: dict[str, tuple[bytes, int, str]] = {}
    shared = 0
    for partner in _partners(prepared_consortium):
        out = partner / "prepared"
        x = sp.load_npz(out / "cls_T11_x.npz").tocsr()
        compounds = pd.read_csv(out / "compounds.csv")
        compounds = compounds[compounds["row"] >= 0]
        for smi, row, fold in compounds[["canonical_smiles", "row", "fold_id"]].itertuples(
            index=False
        ):
            bits = x.indices[x.indptr[row] : x.indptr[row + 1]].tobytes()
            if smi in seen and seen[smi][2] != partner.name:
                shared += 1
                assert seen[smi][0] == bits, smi
                assert seen[smi][1] == fold, smi
            seen.setdefault(smi, (bits, int(fold), partner.name))
    assert shared > 0, "the simulation should give partners some compounds in common"


def _copy_partner(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("prepared"))
    os.chmod(dst / "key.json", 0o600)
    return dst


def test_mismatching_consortium_hash_stops_before_any_output(
    small_consortium: Path, tmp_path: Path
) -> None:
    partner = _copy_partner(_partners(small_consortium)[0], tmp_path / "p")
    params = ConsortiumParameters.model_validate_json((partner / "consortium.json").read_text())
    wrong = params.model_copy(update={"reference_hash": "0" * 64})
    (partner / "consortium.json").write_text(wrong.model_dump_json())
    with pytest.raises(ConsistencyError, match="does not match") as info:
        prepare_partner(partner, PrepareOptions(workers=1))
    assert "consortium.json" in str(info.value)
    assert not (partner / "prepared").exists()


def test_world_readable_and_missing_key_files(small_consortium: Path, tmp_path: Path) -> None:
    partner = _copy_partner(_partners(small_consortium)[0], tmp_path / "p")
    os.chmod(partner / "key.json", 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        prepare_partner(partner, PrepareOptions(workers=1))
    (partner / "key.json").unlink()
    with pytest.raises(KeyFileError, match="not found"):
        prepare_partner(partner, PrepareOptions(workers=1))
    assert not (partner / "prepared").exists()


def test_failed_rerun_keeps_previous_outputs(prepared_consortium: Path, tmp_path: Path) -> None:
    src = _partners(prepared_consortium)[0]
    partner = _copy_partner(src, tmp_path / "p")
    shutil.copytree(src / "prepared", partner / "prepared")
    before = {p.name: p.read_bytes() for p in (partner / "prepared").iterdir()}
    raw = next((partner / "raw").iterdir())
    raw.write_text("")  # an empty export
    with pytest.raises(IngestError) as info:
        prepare_partner(partner, PrepareOptions(workers=1))
    assert raw.name in str(info.value)
    after = {p.name: p.read_bytes() for p in (partner / "prepared").iterdir()}
    assert before == after
    assert sorted(p.name for p in partner.iterdir() if p.name.startswith(".")) == []


def test_bad_smiles_become_rejection_rows(small_consortium: Path, tmp_path: Path) -> None:
    partner = _copy_partner(_partners(small_consortium)[0], tmp_path / "p")
    raw = next(p for p in (partner / "raw").iterdir() if p.suffix == ".csv")
    df = pd.read_csv(raw)
    smiles_col = next(c for c in df.columns if "smiles" in c.lower())
    first_id = df.iloc[0, df.columns.get_loc(smiles_col)]
    df.loc[df[smiles_col] == first_id, smiles_col] = "C1CC(this is not smiles"
    df.to_csv(raw, index=False)
    result = prepare_partner(partner, PrepareOptions(workers=1))
    assert result.manifest.counts.compounds_rejected >= 1
    report = json.loads((partner / "prepared" / "run_report.json").read_text())
    rows = [r for r in report["rejections"] if r["step"] == "standardize"]
    assert rows and rows[0]["reason"] == "parse"
    assert "standardize:parse" in (partner / "prepared" / "summary.txt").read_text()


def test_progress_has_a_total_and_reaches_it(small_consortium: Path, tmp_path: Path) -> None:
    """A progress bar with a total (issue 13, item 7): told once how many molecules, then
    advanced until it reaches them."""
    partner = _copy_partner(_partners(small_consortium)[0], tmp_path / "p")
    totals: list[int] = []
    done: list[int] = []
    result = prepare_partner(
        partner, PrepareOptions(workers=1, total=totals.append, progress=done.append)
    )
    assert totals == [result.manifest.counts.compounds_input]
    assert sum(done) == totals[0]


def test_a_partner_folder_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "acme"
    with pytest.raises(PreparationError, match="partner folder does not exist") as err:
        prepare_partner(missing)
    assert err.value.file == str(missing) and "partner.toml" in (err.value.fix or "")
    assert not missing.exists()  # nothing written for a typo


def test_no_structure_passing_standardization_stops_with_the_fix(
    small_consortium: Path, tmp_path: Path
) -> None:
    """Every SMILES unreadable (e.g. the config maps the wrong column): a clear refusal, and
    no prepared/ half-written."""
    partner = _copy_partner(_partners(small_consortium)[0], tmp_path / "p")
    raw = next(p for p in (partner / "raw").iterdir() if p.suffix == ".csv")
    df = pd.read_csv(raw)
    smiles_col = next(c for c in df.columns if "smiles" in c.lower())
    df[smiles_col] = "C1CC(this is not smiles"
    df.to_csv(raw, index=False)
    with pytest.raises(PreparationError, match="no structure passed standardization") as err:
        prepare_partner(partner, PrepareOptions(workers=1))
    assert "SMILES column" in (err.value.fix or "")
    assert not (partner / "prepared" / "manifest.json").exists()
