"""Scaffolds and keyed folds: golden values, TUNER's priority rules, key dependence."""

from __future__ import annotations

import pickle
import random

import pytest
from rdkit import Chem

from pharmafl.chem import (
    ACYCLIC_FOLD_TEXT,
    FoldAssigner,
    assign_fold,
    fold_scaffold,
    murcko_smiles,
    reduce_scaffold,
    standardize_smiles,
)
from pharmafl.common.errors import ChemistryError
from pharmafl.common.params import StandardizationParams
from pharmafl.common.secret import ConsortiumKey


def test_golden_scaffolds_and_folds(golden, key) -> None:
    for mol in golden["molecules"]:
        scaffold = fold_scaffold(Chem.MolFromSmiles(mol["canonical_smiles"]))
        assert scaffold == mol["scaffold"], mol["name"]
        assert assign_fold(scaffold, key, 5) == mol["fold_id"], mol["name"]


def test_more_than_three_rings_uses_the_scaffold_network() -> None:
    imatinib = Chem.MolFromSmiles("Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1")
    murcko = murcko_smiles(imatinib)
    assert Chem.MolFromSmiles(murcko).GetRingInfo().NumRings() == 5
    reduced = fold_scaffold(imatinib)
    assert Chem.MolFromSmiles(reduced).GetRingInfo().NumRings() == 3
    assert fold_scaffold(imatinib, nrings_target=5) == murcko


def test_equals_tuner_literal_scaffold_network(fsmol_sample, tuner_sn_smiles) -> None:
    std = StandardizationParams()
    big = 0
    for smi in fsmol_sample:
        if Chem.MolFromSmiles(smi) is None:
            continue
        canonical = standardize_smiles(smi, std)
        expected = tuner_sn_smiles(canonical)
        got = fold_scaffold(Chem.MolFromSmiles(canonical))
        assert got == (expected or ""), smi
        big += murcko_smiles(Chem.MolFromSmiles(canonical)) != got
    assert big >= 30  # the network branch was exercised


def test_equals_tuner_fold_hash(key, tuner_fold) -> None:
    for scaffold in ["c1ccccc1", "O=c1cccc[nH]1", "C1CCOCC1", "c1ccc2ccccc2c1"]:
        for nfolds in (2, 5, 7):
            assert assign_fold(scaffold, key, nfolds) == tuner_fold(scaffold, key.reveal(), nfolds)


def test_acyclic_scaffold_is_empty_and_hashes_as_tuners_none(key, tuner_fold) -> None:
    assert fold_scaffold(Chem.MolFromSmiles("CCCC(CCC)C(=O)O")) == ""
    assert reduce_scaffold("") == ""
    assert ACYCLIC_FOLD_TEXT == "None"
    assert assign_fold("", key, 5) == tuner_fold(None, key.reveal(), 5)
    assert assign_fold("", key, 5) == assign_fold("None", key, 5)


def test_same_scaffold_same_fold_and_global_random_untouched(key) -> None:
    a = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    b = Chem.MolFromSmiles("Nc1ccc(Cl)cc1")
    random.seed(123)
    state = random.getstate()
    assert fold_scaffold(a) == fold_scaffold(b) == "c1ccccc1"
    assert assign_fold(fold_scaffold(a), key, 5) == assign_fold(fold_scaffold(b), key, 5)
    assert random.getstate() == state


def test_folds_depend_on_key_and_cover_all_folds(key) -> None:
    other = ConsortiumKey(b"another-consortium-key")
    scaffolds = [f"C1CC{'C' * i}1" for i in range(60)]
    ours = [assign_fold(s, key, 5) for s in scaffolds]
    theirs = [assign_fold(s, other, 5) for s in scaffolds]
    assert set(ours) == set(range(5))
    assert ours != theirs
    assert sum(a == b for a, b in zip(ours, theirs, strict=True)) < 30


def test_fold_assigner_matches_and_hides_key(key) -> None:
    assigner = FoldAssigner(key, 5)
    for s in ["c1ccccc1", "", "C1CCOCC1", "c1ccccc1"]:
        assert assigner(s) == assign_fold(s, key, 5)
    assert "melloddy" not in repr(assigner)
    with pytest.raises(TypeError):
        pickle.dumps(assigner)


def test_bad_fold_arguments(key) -> None:
    with pytest.raises(ChemistryError):
        assign_fold("c1ccccc1", key, 0)
    with pytest.raises(ChemistryError, match="ASCII"):
        assign_fold("c1ccccc1é", key, 5)
    with pytest.raises(ChemistryError):
        FoldAssigner(key, 0)


def test_murcko_does_not_mutate() -> None:
    mol = Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O")
    murcko_smiles(mol)
    fold_scaffold(mol)
    assert Chem.MolToSmiles(mol) == "CC(=O)Oc1ccccc1C(=O)O"
    assert mol.GetNumAtoms() == 13
