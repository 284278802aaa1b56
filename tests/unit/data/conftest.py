"""Builders of small hand-made T0/T1/T4r frames for the pharmafl.data tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pharmafl.data._common import normalise_t0

Record = tuple[str, float]  # (qualifier, value)


def _t0(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    base = {
        "assay_type": "OTHER",
        "use_in_regression": True,
        "is_binary": False,
        "direction": "high",
        "catalog_assay_id": np.nan,
        **{f"expert_threshold_{i}": np.nan for i in range(1, 6)},
    }
    return pd.DataFrame([{**base, **r} for r in rows])


def _t0_upd(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    t0 = normalise_t0(_t0(rows))
    t0["variance_quorum_OK"] = True
    return t0


def _t4r(assay: int, records: Sequence[Record], *, nfolds: int = 1, dv0: int = 0) -> pd.DataFrame:
    """T4r records of one assay: descriptor vectors dv0, dv0+1, … in folds i % nfolds."""
    n = len(records)
    dv = np.arange(dv0, dv0 + n, dtype=np.int64)
    return pd.DataFrame(
        {
            "input_assay_id": np.full(n, assay, dtype=np.int64),
            "descriptor_vector_id": dv,
            "fold_id": dv % nfolds,
            "standard_qualifier": pd.Series([q for q, _ in records], dtype=object),
            "standard_value": np.array([v for _, v in records], dtype=np.float64),
        }
    )


@pytest.fixture
def make_t0() -> Callable[[Sequence[dict[str, Any]]], pd.DataFrame]:
    """T0 rows with MELLODDY defaults (OTHER, high, regression on, no experts)."""
    return _t0


@pytest.fixture
def make_t0_upd() -> Callable[[Sequence[dict[str, Any]]], pd.DataFrame]:
    """Normalised T0 with ``variance_quorum_OK`` = True (input of thresholding/filters)."""
    return _t0_upd


@pytest.fixture
def make_t4r() -> Callable[..., pd.DataFrame]:
    """T4r records of one assay (see :func:`_t4r`)."""
    return _t4r
