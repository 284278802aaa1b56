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


# Scaffolds with more than three rings of several kinds: chains of rings, fused systems with
# no breakable bond, spiro, bridged, macrocycles, N-aryl heteroaromatics, and a dummy atom
# (which makes the reduction fall back to RDKit's full network).
NETWORK_CASES = [
    "c1ccc(-c2ccc(-c3ccc(-c4ccccc4)cc3)cc2)cc1",
    "C1CCC2C(C1)CCC1C2CCC2CCCC21",
    "c1ccc2c(c1)CCC23CCN(Cc1ccc(-c4ccccc4)cc1)CC3",
    "C1CCCCCCCCCCC1c1ccc(-c2ccc(-c3ccccc3)cc2)cc1",
    "c1ccc(C2CC3CCC2N3Cc2ccc(-c4ccccc4)cc2)cc1",
    "c1ccc(-n2ccc3ccccc32)cc1Cc1ccc(-c2ccccc2)cc1",
    "c1ccc(Nc2nccc(-c3cccnc3)n2)cc1NC(=O)c1ccc(CN2CCNCC2)cc1",
    "O=C1c2ccccc2C(=O)N1Cc1ccc(-c2nc3ccccc3[nH]2)cc1C1CC1",
    "c1cc2ccc3cccc4ccc(c1)c2c34",
    "C1CC2CCC1C2Cc1ccc(Cc2ccc(Cc3ccccc3)cc2)cc1",
    "C1CC*CC1c1ccc(-c2ccc(-c3ccccc3)cc2)cc1",
]


def test_network_reduction_equals_rdkits_full_network(fsmol_sample, tuner_sn_smiles) -> None:
    """Expanding only nodes above the target ring count picks RDKit's full-network node."""
    from pharmafl.chem._scaffold_network import pick_node
    from pharmafl.chem.scaffolds import _num_rings, _priority, _reduce_with_full_network

    murckos = set()
    for smi in fsmol_sample + NETWORK_CASES:
        mol = Chem.MolFromSmiles(smi)
        if mol is not None:
            murckos.add(murcko_smiles(mol))
    pruned = fallback = 0
    for murcko in sorted(murckos):
        mol = Chem.MolFromSmiles(murcko)
        if murcko == "" or _num_rings(murcko) <= 3:
            continue
        best = pick_node(mol, murcko, 3, _num_rings, lambda s: _priority(s, 3))
        full = _reduce_with_full_network(mol, 3)
        if best is None:
            fallback += 1
        else:
            pruned += 1
            assert best[-1] == full, murcko
        assert reduce_scaffold(murcko) == full == tuner_sn_smiles(murcko), murcko
    assert pruned >= 40
    assert fallback == 1  # the scaffold with a dummy atom


def test_only_ordinary_attachment_points_take_the_short_cut() -> None:
    from pharmafl.chem._scaffold_network import _ordinary_attachments

    def ordinary(smiles: str) -> bool:
        return _ordinary_attachments(Chem.MolFromSmiles(smiles))

    assert ordinary("c1ccc(-n2ccc3ccccc32)cc1")  # N-aryl: the n has no hydrogen
    assert ordinary("C1CCC(CC1)c1ccccc1")
    assert ordinary("[nH]1cccc1-c1ccccc1")  # the n-H holds no substituent
    assert ordinary("[cH-]1cccc1C")  # the charged carbon holds no substituent
    assert not ordinary("C1CC*CC1c1ccccc1")  # dummy atom
    assert not ordinary("C[c-]1cccc1")  # charged aromatic carbons with a substituent
    assert not ordinary("C[c+]1cccccc1")
