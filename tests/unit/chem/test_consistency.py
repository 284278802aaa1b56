"""The consistency hash: stable, sensitive to key/params/version, never the raw key."""

from __future__ import annotations

import json

import pytest
from rdkit import Chem
from rdkit.Chem import rdMolDescriptors

from pharmafl.chem import REFERENCE_SET, consistency_components, consistency_hash
from pharmafl.common.params import (
    ConsortiumParameters,
    FingerprintParams,
    FoldingParams,
    StandardizationParams,
)
from pharmafl.common.secret import ConsortiumKey


@pytest.fixture(scope="module")
def base(params, key) -> str:
    return consistency_hash(params, key, version="test")


def test_hash_is_stable_and_hex(params, key, base) -> None:
    assert len(base) == 64 and int(base, 16) >= 0
    assert consistency_hash(params, key, version="test") == base
    assert consistency_hash(ConsortiumParameters(), ConsortiumKey(key.reveal()), "test") == base


def test_golden_hash(base) -> None:
    # Pinned with RDKit 2026.09.1, test key, default parameters, version "test". A change means
    # RDKit drift or a change in any chemistry output: every partner's hash changes with it.
    assert base == "cf9f4c8ba988f64dba814e0eadac79f8bfdbd51b95add3ebd28db4481ca16079"


def test_reference_hash_field_does_not_feed_back(params, key, base) -> None:
    published = params.model_copy(update={"reference_hash": base})
    assert consistency_hash(published, key, version="test") == base


@pytest.mark.parametrize(
    "changed",
    [
        ConsortiumParameters(fingerprint=FingerprintParams(fold_size=16_000)),
        ConsortiumParameters(fingerprint=FingerprintParams(binarized=False)),
        ConsortiumParameters(folding=FoldingParams(nfolds=3)),
        ConsortiumParameters(standardization=StandardizationParams(include_stereoinfo=True)),
        ConsortiumParameters(consortium_name="another"),
    ],
)
def test_hash_changes_with_params(key, base, changed) -> None:
    assert consistency_hash(changed, key, version="test") != base


def test_hash_changes_with_key_and_version(params, key, base) -> None:
    assert consistency_hash(params, ConsortiumKey(b"another-consortium-key"), "test") != base
    assert consistency_hash(params, key, version="test2") != base


def test_components_never_contain_the_key(params, key) -> None:
    text = json.dumps(consistency_components(params, key, version="test"))
    raw = key.reveal()
    assert raw.decode() not in text and raw.hex() not in text
    doc = json.loads(text)
    assert doc["pharmafl_version"] == "test"
    assert doc["parameter_hash"] == params.parameter_hash()
    # the artefact is rejected, everything else described
    assert doc["reference_outputs"]["rejections"] == [[len(REFERENCE_SET) - 1, "parse"]]


def test_reference_set_covers_every_branch() -> None:
    assert 10 <= len(REFERENCE_SET) <= 20
    mols = [Chem.MolFromSmiles(m.smiles) for m in REFERENCE_SET]
    parsed = [m for m in mols if m is not None]
    assert len(parsed) == len(REFERENCE_SET) - 1  # one must be rejected
    assert any(len(Chem.GetMolFrags(m)) > 1 for m in parsed)  # salt
    assert any(a.GetFormalCharge() != 0 for m in parsed for a in m.GetAtoms())
    assert any(rdMolDescriptors.CalcNumRings(m) == 0 for m in parsed)  # acyclic
    assert any(rdMolDescriptors.CalcNumRings(m) > 3 for m in parsed)  # scaffold network
    assert any(Chem.FindMolChiralCenters(m) for m in parsed)  # stereo
    assert any(a.GetIsotope() for m in parsed for a in m.GetAtoms())  # isotope
    assert len({m.name for m in REFERENCE_SET}) == len(REFERENCE_SET)
