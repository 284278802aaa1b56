"""Shared fixtures for the chemistry tests, and MELLODDY-TUNER's literal code paths.

The ``tuner_*`` fixtures re-state MELLODDY-TUNER 3.0.2's sequence of RDKit calls as plainly as
possible (fresh RDKit objects each call, pandas sort, the global ``random`` module), so the
optimized pharmafl code can be checked against an independent recomputation.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rdkit import Chem, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.Chem.Scaffolds import MurckoScaffold, rdScaffoldNetwork

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


def _tuner_standardize(smiles: str, include_stereoinfo: bool = False) -> str | None:
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() >= 100:
            return None
        mol = rdMolStandardize.ChargeParent(mol)
        mol = copy.deepcopy(mol)
        for atom in mol.GetAtoms():
            atom.SetIsotope(0)
        if not include_stereoinfo:
            Chem.RemoveStereochemistry(mol)
        taut = rdMolStandardize.TautomerEnumerator()
        taut.SetMaxTautomers(256)
        taut.SetRemoveSp3Stereo(False)
        mol = taut.Canonicalize(mol)
        mol = copy.deepcopy(mol)
        Chem.SanitizeMol(mol)
        mol = Chem.RemoveHs(mol)
        mol = rdMolStandardize.MetalDisconnector().Disconnect(mol)
        mol = rdMolStandardize.Normalizer().normalize(mol)
        mol = rdMolStandardize.Reionizer().reionize(mol)
        Chem.AssignStereochemistry(mol, force=True, cleanIt=True)
        return str(Chem.MolToSmiles(Chem.MolFromSmiles(Chem.MolToSmiles(mol))))


def _tuner_sn_smiles(canonical_smiles: str, nrings_target: int = 3) -> str | None:
    murcko = Chem.MolToSmiles(
        MurckoScaffold.GetScaffoldForMol(Chem.MolFromSmiles(canonical_smiles))
    )
    if murcko == "":
        return None
    mol = Chem.MolFromSmiles(murcko)
    if rdMolDescriptors.CalcNumRings(mol) <= nrings_target:
        return str(murcko)
    p = rdScaffoldNetwork.ScaffoldNetworkParams()
    p.flattenIsotopes = True
    p.includeGenericBondScaffolds = False
    p.includeGenericScaffolds = False
    p.includeScaffoldsWithAttachments = False
    p.includeScaffoldsWithoutAttachments = True
    p.pruneBeforeFragmenting = True
    net = rdScaffoldNetwork.CreateScaffoldNetwork([mol], p)
    df = pd.DataFrame({"node_smiles": [str(n) for n in net.nodes]})
    df["mol"] = df["node_smiles"].apply(Chem.MolFromSmiles)
    df["num_rings_delta"] = (df["mol"].apply(rdMolDescriptors.CalcNumRings) - nrings_target).abs()
    df["num_rbonds"] = df["mol"].apply(rdMolDescriptors.CalcNumRotatableBonds, strict=False)
    df["num_hrings"] = df["mol"].apply(rdMolDescriptors.CalcNumHeterocycles)
    df["num_arings"] = df["mol"].apply(rdMolDescriptors.CalcNumAromaticRings)
    df["num_bridge"] = df["mol"].apply(rdMolDescriptors.CalcNumBridgeheadAtoms)
    df["num_spiro"] = df["mol"].apply(rdMolDescriptors.CalcNumSpiroAtoms)
    df["has_macrocyle"] = df["mol"].apply(
        lambda m: len([r for r in m.GetRingInfo().AtomRings() if len(r) > 9]) > 0
    )
    df["has_unusual_ring_size"] = df["mol"].apply(
        lambda m: len([r for r in m.GetRingInfo().AtomRings() if len(r) > 6 or len(r) < 5]) > 0
    )
    cols = [
        "num_rings_delta",
        "has_macrocyle",
        "num_rbonds",
        "num_bridge",
        "num_spiro",
        "has_unusual_ring_size",
        "num_hrings",
        "num_arings",
        "node_smiles",
    ]
    asc = [True, False, True, False, False, False, False, True, True]
    df = df.sort_values(cols, ascending=asc)
    return str(df.iloc[0]["node_smiles"])


def rfc2104_hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 written out from RFC 2104 with hashlib only (an independent check)."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    inner = hashlib.sha256(bytes(k ^ 0x36 for k in key) + message).digest()
    return hashlib.sha256(bytes(k ^ 0x5C for k in key) + inner).digest()


def _tuner_fold(sn_smiles: str | None, secret: bytes, nfolds: int) -> int:
    digest = rfc2104_hmac_sha256(secret, str(sn_smiles).encode("ASCII"))
    state = random.getstate()
    try:
        random.seed(digest, version=2)
        return random.randint(0, nfolds - 1)
    finally:
        random.setstate(state)


@pytest.fixture(scope="session")
def tuner_standardize() -> Callable[..., str | None]:
    return _tuner_standardize


@pytest.fixture(scope="session")
def tuner_sn_smiles() -> Callable[..., str | None]:
    return _tuner_sn_smiles


@pytest.fixture(scope="session")
def hmac_sha256_independent() -> Callable[[bytes, bytes], bytes]:
    return rfc2104_hmac_sha256


@pytest.fixture(scope="session")
def tuner_fold() -> Callable[[str | None, bytes, int], int]:
    return _tuner_fold
