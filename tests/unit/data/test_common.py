from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.errors import PreparationError
from pharmafl.data._common import normalise_t0, rejection_frame


def test_normalise_t0_types_and_defaults() -> None:
    t0 = pd.DataFrame(
        {
            "input_assay_id": [1, 2, 3],
            "assay_type": ["OTHER", "ADME", "OTHER"],
            "is_binary": ["false", "True", None],
            "direction": ["HIGH ", "", "sideways"],
        }
    )
    out = normalise_t0(t0)
    assert out["is_binary"].tolist() == [False, True, False]
    assert out["use_in_regression"].tolist() == [True, False, True]  # missing → not binary
    assert out["direction"].tolist() == ["high", None, None]
    assert np.isnan(out["expert_threshold_5"]).all() and np.isnan(out["catalog_assay_id"]).all()


def test_normalise_t0_rejects_missing_columns_and_duplicate_ids() -> None:
    with pytest.raises(PreparationError, match="assay_type"):
        normalise_t0(pd.DataFrame({"input_assay_id": [1]}))
    with pytest.raises(PreparationError, match="more than once"):
        normalise_t0(pd.DataFrame({"input_assay_id": [4, 4], "assay_type": ["OTHER"] * 2}))


def test_rejection_frame_broadcasts_scalars_and_checks_lengths() -> None:
    r = rejection_frame("s", "why", "msg", input_assay_id=np.array([1, 2]))
    assert r["input_assay_id"].tolist() == [1, 2] and r["message"].tolist() == ["msg", "msg"]
    assert r["descriptor_vector_id"].isna().all() and str(r["input_compound_id"].dtype) == "Int64"
    with pytest.raises(ValueError, match="different lengths"):
        rejection_frame("s", "why", ["a"], input_assay_id=np.array([1, 2]))
