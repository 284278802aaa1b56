"""MELLODDY-TUNER 3.0.2's per-compound chemistry, restated literally: a reference, not the pipeline.

This module re-states, as plainly as possible, the sequence of RDKit calls that
MELLODDY-TUNER 3.0.2 makes for one compound (repository ``melloddy/MELLODDY-TUNER``, tag
``3.0.2``; reference notes §1.5–1.8):

1. ``Standardizer.calculate_single_raising`` (``melloddy_tuner/utils/standardizer.py``):
   parse; reject at >= ``max_num_atoms`` heavy atoms; ``rdMolStandardize.ChargeParent``; a
   deep copy with every isotope set to 0; ``Chem.RemoveStereochemistry`` unless stereo is
   kept; ``TautomerEnumerator`` (``SetMaxTautomers``, ``SetRemoveSp3Stereo(False)``)
   ``Canonicalize``; then ``my_standardizer``: deep copy, ``SanitizeMol``, ``RemoveHs``,
   ``MetalDisconnector``, ``Normalizer``, ``Reionizer``,
   ``AssignStereochemistry(force=True, cleanIt=True)``; finally canonical SMILES, parsed and
   written again. Fresh RDKit helper objects are made for every molecule, as TUNER does.
2. ``DescriptorCalculator.get_fp`` (``utils/descriptor_calculator.py``): the canonical SMILES
   is parsed again and ``GetHashedMorganFingerprint(mol, radius, fold_size)
   .GetNonzeroElements()`` is taken.
3. ``ScaffoldFoldAssign`` (``utils/scaffold_folding.py``): the canonical SMILES is parsed
   again for its Bemis–Murcko scaffold (empty → ``None``); a scaffold with more than
   ``nrings_target`` rings is reduced through ``rdScaffoldNetwork.CreateScaffoldNetwork``
   (hard-wired parameters) and a pandas sort of the nodes by TUNER's priority columns; the
   fold is ``random.seed(HMAC-SHA256(key, str(sn_smiles)), version=2)`` then
   ``random.randint(0, nfolds - 1)`` on the global generator.

It exists so that the optimized code in :mod:`pharmafl.chem` can be checked against an
independent recomputation (tests) and timed against TUNER's chemistry on the same machine at
the same time (``benchmarks/prepare.py``). Nothing in the pipeline imports it.

What it leaves out, each of which makes it *faster* than TUNER (a comparison against it favours
TUNER): TUNER's CSV reading and writing between steps, its pandas/dask row wrappers,
descriptor scrambling (a lookup after a per-molecule validity check of the whole
permutation), deduplication into descriptor vectors and all activity processing.
"""

from __future__ import annotations

import copy
import random
from typing import Any, NamedTuple

import pandas as pd
from rdkit import Chem, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.MolStandardize import rdMolStandardize
from rdkit.Chem.Scaffolds import MurckoScaffold, rdScaffoldNetwork

from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.params import ConsortiumParameters


class TunerCompound(NamedTuple):
    """TUNER's per-compound results for one accepted compound."""

    canonical_smiles: str
    #: Unscrambled fingerprint: bit index → count (before binarization and scrambling).
    fingerprint: dict[int, int]
    #: Scaffold-network scaffold; None for an acyclic compound (hashed as ``"None"``).
    scaffold_smiles: str | None
    fold_id: int


def tuner_standardize(
    smiles: str,
    include_stereoinfo: bool = False,
    max_num_atoms: int = 100,
    max_num_tautomers: int = 256,
) -> str | None:
    """TUNER's ``Standardizer.calculate_single_raising``; None where TUNER rejects the input.

    Parameters
    ----------
    smiles
        Input SMILES.
    include_stereoinfo, max_num_atoms, max_num_tautomers
        TUNER's ``standardization`` parameters (defaults as in TUNER 3.0.2).

    Returns
    -------
    str or None
        The canonical SMILES, or None for an unparseable input or one with at least
        ``max_num_atoms`` heavy atoms.
    """
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() >= max_num_atoms:
            return None
        mol = rdMolStandardize.ChargeParent(mol)
        mol = copy.deepcopy(mol)
        for atom in mol.GetAtoms():
            atom.SetIsotope(0)
        if not include_stereoinfo:
            Chem.RemoveStereochemistry(mol)
        taut = rdMolStandardize.TautomerEnumerator()
        taut.SetMaxTautomers(max_num_tautomers)
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


def tuner_fingerprint(mol: Chem.Mol, radius: int, size: int) -> dict[int, int]:
    """TUNER's ``DescriptorCalculator.get_fp`` (hashed mode) on a parsed molecule.

    Returns
    -------
    dict of int to int
        ``GetHashedMorganFingerprint(mol, radius, size).GetNonzeroElements()``: unscrambled
        bit index → count.
    """
    with rdBase.BlockLogs():  # RDKit logs a deprecation warning for this function
        return dict(
            rdMolDescriptors.GetHashedMorganFingerprint(mol, radius, size).GetNonzeroElements()
        )


def tuner_scaffold_smiles(canonical_smiles: str, nrings_target: int = 3) -> str | None:
    """TUNER's ``murcko_scaff_smiles`` then ``sn_scaff_smiles``: the fold scaffold.

    Parameters
    ----------
    canonical_smiles
        A standardized SMILES (or a Murcko scaffold's SMILES).
    nrings_target
        Ring count a larger scaffold is reduced towards.

    Returns
    -------
    str or None
        The Murcko scaffold when it has at most ``nrings_target`` rings, otherwise the
        scaffold-network node first in TUNER's priority order; None for an acyclic molecule.
    """
    murcko = Chem.MolToSmiles(
        MurckoScaffold.GetScaffoldForMol(Chem.MolFromSmiles(canonical_smiles))
    )
    if murcko == "":
        return None
    mol = Chem.MolFromSmiles(murcko)
    if rdMolDescriptors.CalcNumRings(mol) <= nrings_target:
        return str(murcko)
    p: Any = rdScaffoldNetwork.ScaffoldNetworkParams()  # RDKit's stubs mistype its fields
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


def tuner_fold(sn_smiles: str | None, secret: bytes, nfolds: int) -> int:
    """TUNER's ``hashed_fold_scaffold``: a keyed fold id for a scaffold (None hashes as "None").

    Seeds the global :mod:`random` generator with HMAC-SHA256(secret, ``str(sn_smiles)``) as
    TUNER does, but restores its state afterwards so callers' randomness is untouched.
    """
    digest = hmac_sha256(secret, str(sn_smiles).encode("ASCII"))
    state = random.getstate()
    try:
        random.seed(digest, version=2)
        return random.randint(0, nfolds - 1)
    finally:
        random.setstate(state)


def tuner_prepare_one(
    smiles: str, key: bytes, params: ConsortiumParameters
) -> TunerCompound | None:
    """TUNER's per-compound chemistry in TUNER's order, for one input SMILES.

    Standardize, fingerprint the re-parsed canonical SMILES, find the fold scaffold (which
    parses the canonical SMILES once more) and hash it to a fold.

    Parameters
    ----------
    smiles
        Input SMILES.
    key
        The raw consortium key (TUNER's ``secret``).
    params
        Consortium parameters (standardization, fingerprint, folding).

    Returns
    -------
    TunerCompound or None
        None where TUNER drops the compound: it does not parse, has too many heavy atoms, or
        an RDKit step raises one of the errors TUNER's steps catch (``TypeError``,
        ``ValueError``, ``AttributeError``).
    """
    std, fp, folding = params.standardization, params.fingerprint, params.folding
    try:
        canonical = tuner_standardize(
            smiles, std.include_stereoinfo, std.max_num_atoms, std.max_num_tautomers
        )
        if canonical is None:
            return None
        bits = tuner_fingerprint(Chem.MolFromSmiles(canonical), fp.radius, fp.fold_size)
        scaffold = tuner_scaffold_smiles(canonical, folding.nrings_target)
        return TunerCompound(canonical, bits, scaffold, tuner_fold(scaffold, key, folding.nfolds))
    except (TypeError, ValueError, AttributeError):
        return None


__all__ = [
    "TunerCompound",
    "tuner_fingerprint",
    "tuner_fold",
    "tuner_prepare_one",
    "tuner_scaffold_smiles",
    "tuner_standardize",
]
