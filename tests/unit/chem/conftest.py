"""Shared fixtures for the chemistry tests.

The ``tuner_*`` fixtures return MELLODDY-TUNER 3.0.2's literal code paths from
:mod:`pharmafl.chem.tuner_reference`, so the optimized pharmafl code can be checked against an
independent recomputation. ``hmac_sha256_independent`` is HMAC-SHA256 written out from
RFC 2104 here, independent of :mod:`pharmafl.common.crypto`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pharmafl.chem import DescribedBatch, tuner_reference
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import ConsortiumKey

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "chem"
TEST_KEY = b"melloddy-test-key"


@pytest.fixture(scope="session")
def key() -> ConsortiumKey:
    return ConsortiumKey(TEST_KEY)


@pytest.fixture(scope="session")
def params() -> ConsortiumParameters:
    return ConsortiumParameters()


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / "golden.json").read_text())
    return doc


@pytest.fixture(scope="session")
def fsmol_sample() -> list[str]:
    return pd.read_csv(FIXTURES / "fsmol_sample.csv")["smiles"].tolist()


def rfc2104_hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 written out from RFC 2104 with hashlib only (an independent check)."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).digest()


@pytest.fixture(scope="session")
def tuner_standardize() -> Callable[..., str | None]:
    return tuner_reference.tuner_standardize


@pytest.fixture(scope="session")
def tuner_sn_smiles() -> Callable[..., str | None]:
    return tuner_reference.tuner_scaffold_smiles


@pytest.fixture(scope="session")
def hmac_sha256_independent() -> Callable[[bytes, bytes], bytes]:
    return rfc2104_hmac_sha256


@pytest.fixture(scope="session")
def tuner_fold() -> Callable[[str | None, bytes, int], int]:
    return tuner_reference.tuner_fold


#: Rejected inputs: texts are cached with their reason and message, other values never.
BAD_INPUTS = [None, "", "C1CC", "Nc1ncnc2c1ncn2CCOC[PH](=O)(=O)O", "C" * 100, math.nan]


def assert_same_batch(a: DescribedBatch, b: DescribedBatch) -> None:
    """Equal down to the dtypes that decide the bytes ``prepare`` writes."""
    assert np.array_equal(a.row_ids, b.row_ids) and a.row_ids.dtype == b.row_ids.dtype
    assert a.canonical_smiles == b.canonical_smiles
    for part in ("data", "indices", "indptr"):
        pa, pb = getattr(a.x, part), getattr(b.x, part)
        assert pa.dtype == pb.dtype and np.array_equal(pa, pb), part
    assert a.x.shape == b.x.shape
    assert a.scaffolds == b.scaffolds
    assert np.array_equal(a.fold_ids, b.fold_ids) and a.fold_ids.dtype == b.fold_ids.dtype
    assert a.graphs == b.graphs
    pd.testing.assert_frame_equal(a.rejections, b.rejections)
