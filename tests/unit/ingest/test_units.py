"""Unit conversion to pXC50 and qualifier normalisation, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.errors import IngestError
from pharmafl.ingest.units import (
    QUALIFIER_SPELLINGS,
    convert_values,
    normalize_qualifiers,
    resolve_unit,
    split_qualified_values,
    to_pxc50,
)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (100.0, "nM", 7.0),
        (30000.0, "nM", 9 - math.log10(30000)),  # 4.5228787…
        (1.0, "uM", 6.0),
        (1.0, "µM", 6.0),  # micro sign
        (1.0, "μM", 6.0),  # Greek mu
        (2.5e-8, "M", -math.log10(2.5e-8)),  # 7.60206
        (3.0, "mM", 3 - math.log10(3)),
        (50.0, "pM", 12 - math.log10(50)),
        (7.3, "pKi", 7.3),
        (6.1, "pIC50", 6.1),
        (5.5, "pXC50", 5.5),
    ],
)
def test_to_pxc50_hand_values(value: float, unit: str, expected: float) -> None:
    assert to_pxc50(np.array([value]), unit)[0] == pytest.approx(expected, abs=1e-12)


def test_30_micromolar_is_pxc50_4_52() -> None:
    assert round(float(to_pxc50(np.array([30000.0]), "nM")[0]), 2) == 4.52


def test_non_positive_concentrations_give_nan_without_warnings() -> None:
    with np.errstate(all="raise"):
        out = to_pxc50(np.array([0.0, -1.0, np.nan, 10.0]), "nM")
    assert np.isnan(out[:3]).all()
    assert out[3] == pytest.approx(8.0)


def test_binary_and_passthrough_units() -> None:
    assert convert_values(np.array([1, 0, -1, 2]), "binary").tolist()[:3] == [1.0, -1.0, -1.0]
    assert np.isnan(convert_values(np.array([2.0]), "binary")[0])
    values = np.array([-1.5, 0.0, 12.0])
    out = convert_values(values, "none")
    assert out.tolist() == values.tolist()
    assert out is not values


def test_to_pxc50_refuses_non_potency_units() -> None:
    with pytest.raises(IngestError, match="not a potency unit"):
        to_pxc50(np.array([1.0]), "none")


def test_unit_spellings_are_case_insensitive_and_unknown_ones_list_valid_units() -> None:
    assert resolve_unit("NM").name == "nM"
    assert resolve_unit("umol/L").name == "uM"
    assert resolve_unit("PIC50").name == "pIC50"
    with pytest.raises(IngestError) as err:
        resolve_unit("ng/mL")
    assert "ng/mL" in str(err.value) and "nM" in str(err.value)


def test_every_spelling_normalises_as_tuner_does() -> None:
    raw = pd.Series(["<", "<=", "<<", ">", ">=", ">>", "=", "~", "", None, np.nan, " > "])
    expected = ["<", "<", "<", ">", ">", ">", "=", "=", "=", "=", "=", ">"]
    assert normalize_qualifiers(raw, mirror=False).tolist() == expected


def test_mirroring_swaps_censoring_for_concentrations() -> None:
    raw = pd.Series([">", ">=", "<", "=", "~", ""])
    assert normalize_qualifiers(raw, mirror=True).tolist() == ["<", "<", ">", "=", "=", "="]


def test_unknown_qualifier_names_file_and_row() -> None:
    raw = pd.Series(["=", "<", "approx", "="])
    with pytest.raises(IngestError) as err:
        normalize_qualifiers(raw, mirror=False, file="raw/x.csv")
    assert err.value.file == "raw/x.csv"
    assert err.value.row == 3
    assert "raw/x.csv, row 3" in str(err.value)


def test_spelling_table_only_maps_to_three_symbols() -> None:
    assert set(QUALIFIER_SPELLINGS.values()) == {"<", "=", ">"}


def test_split_qualified_values() -> None:
    q, v = split_qualified_values(pd.Series(["<10", ">= 4.5", "7.1", "~3", "", None, "ND"]))
    assert q.tolist() == ["<", ">=", "", "~", "", "", ""]
    assert v.tolist() == ["10", "4.5", "7.1", "3", "", "", "ND"]
