"""TUNER's literal per-compound chemistry agrees with pharmafl's, and is independent of it."""

from __future__ import annotations

import random

from rdkit import Chem

from pharmafl.chem import KeyedPermutation, describe_chunk, murcko_smiles
from pharmafl.chem.tuner_reference import (
    TunerCompound,
    tuner_fold,
    tuner_prepare_one,
    tuner_standardize,
)
from pharmafl.common.params import ConsortiumParameters, StandardizationParams

REJECTED = ["Nc1ncnc2c1ncn2CCOC[PH](=O)(=O)O", "C1CC", "not a smiles", "C" * 100]


def test_golden_values(golden, key, params) -> None:
    for mol in golden["molecules"]:
        got = tuner_prepare_one(mol["smiles"], key.reveal(), params)
        assert got is not None, mol["name"]
        assert got.canonical_smiles == mol["canonical_smiles"], mol["name"]
        assert sorted(got.fingerprint) == mol["bits"], mol["name"]
        assert got.scaffold_smiles == (mol["scaffold"] or None), mol["name"]
        assert got.fold_id == mol["fold_id"], mol["name"]


def test_same_results_as_pharmafl_chemistry(fsmol_sample, golden, key, params) -> None:
    smiles = [m["smiles"] for m in golden["molecules"]] + REJECTED + fsmol_sample[:40]
    batch = describe_chunk(smiles, params, key, with_graphs=False)
    perm = KeyedPermutation(key, params.fingerprint.fold_size)
    rows = dict(zip(batch.row_ids.tolist(), range(len(batch.row_ids)), strict=True))
    accepted = networked = 0
    for i, smi in enumerate(smiles):
        got = tuner_prepare_one(smi, key.reveal(), params)
        if got is None:
            assert i not in rows, smi
            continue
        k = rows[i]
        assert got.canonical_smiles == batch.canonical_smiles[k], smi
        unscrambled = perm.inverse(batch.x.getrow(k).indices)
        assert sorted(got.fingerprint) == sorted(unscrambled.tolist()), smi
        assert (got.scaffold_smiles or "") == batch.scaffolds[k], smi
        assert got.fold_id == batch.fold_ids[k], smi
        accepted += 1
        networked += murcko_smiles(Chem.MolFromSmiles(got.canonical_smiles)) != batch.scaffolds[k]
    assert accepted == len(batch.row_ids) == len(smiles) - len(REJECTED)
    assert networked >= 15  # the scaffold-network branch was exercised


def test_rejected_inputs_give_none(key, params) -> None:
    for smi in REJECTED:
        assert tuner_prepare_one(smi, key.reveal(), params) is None, smi
    assert tuner_prepare_one("C" * 99, key.reveal(), params) is not None


def test_follows_the_parameters(key) -> None:
    stereo = ConsortiumParameters(standardization=StandardizationParams(include_stereoinfo=True))
    naproxen = "COc1ccc2cc([C@H](C)C(=O)O)ccc2c1"
    got = tuner_prepare_one(naproxen, key.reveal(), stereo)
    assert isinstance(got, TunerCompound) and "@" in got.canonical_smiles
    assert got.canonical_smiles == tuner_standardize(naproxen, include_stereoinfo=True)
    few = ConsortiumParameters(standardization=StandardizationParams(max_num_atoms=10))
    assert tuner_prepare_one("CC(=O)Oc1ccccc1C(=O)O", key.reveal(), few) is None  # 13 atoms


def test_fold_is_tuners_keyed_hash_by_rfc2104(key, hmac_sha256_independent) -> None:
    random.seed(123)
    state = random.getstate()
    for scaffold in ["c1ccccc1", "O=c1cccc[nH]1", "C1CCOCC1", None]:
        for nfolds in (2, 5, 7):
            digest = hmac_sha256_independent(key.reveal(), str(scaffold).encode("ASCII"))
            expected = random.Random(digest).randint(0, nfolds - 1)  # seed(digest, version=2)
            assert tuner_fold(scaffold, key.reveal(), nfolds) == expected
    assert random.getstate() == state
    folds = {tuner_fold(f"C1CC{'C' * i}1", key.reveal(), 5) for i in range(40)}
    assert folds == set(range(5))
