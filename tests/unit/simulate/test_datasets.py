"""Public data files are recognised by their columns, whatever the dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pharmafl.common.errors import ConfigError, DataNotFoundError, IngestError
from pharmafl.simulate import load_dataset, read_public_file


def test_fsmol_shaped_file(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    assert (data.kind, data.layout) == ("dose_response", "long")
    m = data.measurements
    assert len(m) == 268 and m["assay"].nunique() == 8
    assert set(m["relation"]) == {"=", ">", ""}
    assert (m["value"] <= 0).sum() == 1  # kept: the partner's ingest rejects it
    assert set(m["source_type"]) <= {"B", "F", "A", "T"}
    assert data.assay_groups is None  # no metadata file beside the fixture
    assert len(data.source_sha256) == 64


def test_wide_binary_file(tox_like: Path) -> None:
    data = read_public_file(tox_like)
    assert (data.kind, data.layout) == ("binary", "wide")
    assert set(data.measurements["assay"]) == {"NR-AR", "SR-p53", "SR-HSE"}
    assert set(data.measurements["value"]) == {0.0, 1.0}
    assert len(data.measurements) == 16 * 3 - 6  # 6 empty SR-p53 cells


def test_wide_regression_file_ignores_id_and_text_columns(adme_like: Path) -> None:
    data = read_public_file(adme_like)
    assert (data.kind, data.layout) == ("adme", "wide")
    assert set(data.measurements["assay"]) == {"LOG SOL (ug/mL)", "LOG HLM_CLint"}
    assert np.isfinite(data.measurements["value"]).all()


def test_unknown_shape_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("compound,value\na,1\n")
    with pytest.raises(IngestError) as err:
        read_public_file(bad)
    assert "unknown dataset shape" in str(err.value) and "assay_chembl_id" in (err.value.fix or "")
    no_numbers = tmp_path / "y.csv"
    no_numbers.write_text("smiles,label\nCCO,yes\n")
    with pytest.raises(IngestError, match="no numeric assay columns"):
        read_public_file(no_numbers)
    with pytest.raises(DataNotFoundError):
        read_public_file(tmp_path / "missing.csv")


def test_unknown_builtin_dataset_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("chembl")
    assert "fsmol" in (err.value.fix or "") and "adme" in (err.value.fix or "")


def test_missing_data_dir_says_how_to_point_elsewhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PHARMAFL_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("tox21")
    assert "PHARMAFL_DATA_DIR" in (err.value.fix or "")
