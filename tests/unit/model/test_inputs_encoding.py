"""Prediction inputs as partners export them: Latin-1, ';', a structure column of any name."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmafl.common.errors import ConfigError, ModelError
from pharmafl.model.inputs import read_structures


def _eln(tmp_path: Path) -> Path:
    path = tmp_path / "neu.csv"
    path.write_bytes(
        "Verbindung;Struktur;Aktivität\nBRV 1;CCO;>10\nBRV 2;c1ccccc1;5\n".encode("latin-1")
    )
    return path


def test_latin1_semicolon_export_with_a_named_structure_column(tmp_path: Path) -> None:
    got = read_structures(
        _eln(tmp_path), ["Verbindung"], smiles_column="Struktur", encoding="latin-1"
    )
    assert got.smiles == ["CCO", "c1ccccc1"]
    assert got.ids["Verbindung"].tolist() == ["BRV 1", "BRV 2"]


def test_wrong_encoding_and_missing_columns_say_which_option_fixes_them(tmp_path: Path) -> None:
    path = _eln(tmp_path)
    with pytest.raises(ModelError) as err:
        read_structures(path, smiles_column="Struktur")
    assert "--encoding" in (err.value.fix or "")
    with pytest.raises(ModelError) as err:
        read_structures(path, encoding="latin-1")
    assert "--smiles-column" in (err.value.fix or "")
    with pytest.raises(ConfigError, match="Structure"):
        read_structures(path, smiles_column="Structure", encoding="latin-1")
