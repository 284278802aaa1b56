"""Fingerprints: golden bits, equality with TUNER's GetHashedMorganFingerprint."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem

from pharmafl.chem import morgan_bits, standardize_mol
from pharmafl.chem.tuner_reference import tuner_fingerprint
from pharmafl.common.params import FingerprintParams, StandardizationParams

DEFAULT = FingerprintParams()


def test_golden_unscrambled_bits(golden) -> None:
    for mol in golden["molecules"]:
        idx, val = morgan_bits(Chem.MolFromSmiles(mol["canonical_smiles"]), DEFAULT)
        assert idx.tolist() == mol["bits"], mol["name"]
        assert np.all(val == 1.0)


@pytest.mark.parametrize(("radius", "size"), [(3, 32_000), (2, 2048), (1, 64)])
def test_equals_get_hashed_morgan_fingerprint(fsmol_sample, radius: int, size: int) -> None:
    params = FingerprintParams(radius=radius, fold_size=size, binarized=False)
    checked = 0
    for smi in fsmol_sample[:100]:
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            continue
        idx, val = morgan_bits(mol, params)
        expected = tuner_fingerprint(mol, radius, size)
        assert idx.tolist() == sorted(expected)
        assert val.tolist() == [float(expected[i]) for i in sorted(expected)]
        checked += 1
    assert checked >= 95


def test_dtypes_sorted_and_counts() -> None:
    mol = Chem.MolFromSmiles("CCCCCCCCCC")
    idx, val = morgan_bits(mol, FingerprintParams(binarized=False))
    assert idx.dtype == np.int64 and val.dtype == np.float32
    assert np.all(np.diff(idx) > 0)
    assert val.max() > 1  # repeated CH2 environments are counted
    idx_b, val_b = morgan_bits(mol, DEFAULT)
    assert idx_b.tolist() == idx.tolist()
    assert set(val_b.tolist()) == {1.0}
    assert idx.max() < DEFAULT.fold_size


def test_standardized_golden_molecule_matches_tuner_function() -> None:
    mol = standardize_mol(Chem.MolFromSmiles("CN(C)C(=N)N=C(N)N.Cl"), StandardizationParams())
    idx, _ = morgan_bits(mol, DEFAULT)
    assert idx.tolist() == sorted(tuner_fingerprint(mol, 3, 32_000))


def test_input_mol_not_mutated() -> None:
    mol = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    props = mol.GetPropsAsDict(includePrivate=True, includeComputed=False)
    morgan_bits(mol, DEFAULT)
    assert mol.GetPropsAsDict(includePrivate=True, includeComputed=False) == props
    assert Chem.MolToSmiles(mol) == "CC(=O)Oc1ccccc1C(=O)O"
