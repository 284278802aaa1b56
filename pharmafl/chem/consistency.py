"""The consistency proof: one hash that all partners of a consortium must share.

Like MELLODDY-TUNER's reference-set hash (reference notes §1.8, "Consistency check across
partners"), every partner describes a small built-in set of public drug molecules and hashes
the outputs together with the parameters, a keyed check value and the pharmafl version. Equal
hashes show that partners used the same code, RDKit behaviour, parameters and key, without
exchanging any data; the key itself never enters the hash, only HMAC(key,
``b"pharmafl-consistency"``).

The set covers every branch of the per-molecule work: a salt (charge parent), a hydrochloride,
tautomer-prone molecules, stereocentres (removed by default), an isotope label, acyclic
molecules (the shared "None" fold scaffold), scaffolds with more than three rings (scaffold
network), a macrocycle, a metal complex and one structure that must be rejected (FS-Mol's
pentavalent-phosphorus artefact).
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import numpy as np

import pharmafl
from pharmafl.chem.batch import DescribedBatch, describe_chunk
from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.io import canonical_json, sha256_bytes
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import ConsortiumKey


class ReferenceMolecule(NamedTuple):
    """One molecule of the built-in reference set."""

    name: str
    smiles: str
    why: str


#: Public, well-known molecules (structures as commonly published, e.g. in ChEMBL/PubChem).
REFERENCE_SET: tuple[ReferenceMolecule, ...] = (
    ReferenceMolecule("aspirin", "CC(=O)Oc1ccccc1C(=O)O", "one ring"),
    ReferenceMolecule("caffeine", "Cn1c(=O)c2c(ncn2C)n(C)c1=O", "fused heteroaromatic"),
    ReferenceMolecule("sodium benzoate", "O=C([O-])c1ccccc1.[Na+]", "salt: charge parent"),
    ReferenceMolecule(
        "metformin hydrochloride", "CN(C)C(=N)N=C(N)N.Cl", "hydrochloride, acyclic, tautomers"
    ),
    ReferenceMolecule("2-hydroxypyridine", "Oc1ccccn1", "tautomer: becomes 2-pyridone"),
    ReferenceMolecule(
        "warfarin", "CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O", "tautomer-prone 4-hydroxycoumarin"
    ),
    ReferenceMolecule("(S)-naproxen", "COc1ccc2cc([C@H](C)C(=O)O)ccc2c1", "stereocentre"),
    ReferenceMolecule("valproic acid", "CCCC(CCC)C(=O)O", "acyclic"),
    ReferenceMolecule(
        "imatinib",
        "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1",
        "five rings: scaffold network",
    ),
    ReferenceMolecule(
        "morphine",
        "CN1CC[C@]23c4c5ccc(O)c4O[C@H]2[C@@H](O)C=C[C@H]3[C@H]1C5",
        "fused five-ring system, stereo",
    ),
    ReferenceMolecule(
        "ciprofloxacin",
        "O=C(O)c1cn(C2CC2)c2cc(N3CCNCC3)c(F)cc2c1=O",
        "four rings: scaffold network",
    ),
    ReferenceMolecule("anisole-d3", "[2H]C([2H])([2H])Oc1ccccc1", "isotope label removed"),
    ReferenceMolecule("cisplatin", "N.N.Cl[Pt]Cl", "metal complex: largest fragment"),
    ReferenceMolecule(
        "rifampicin",
        "COC1C=COC2(C)Oc3c(C)c(O)c4c(O)c(c(C=NN5CCN(C)CC5)c(O)c4c3C2=O)NC(=O)C(C)=CC=CC(C)"
        "C(O)C(C)C(O)C(C)C(OC(C)=O)C1C",
        "macrocycle, six rings",
    ),
    ReferenceMolecule(
        "adefovir (FS-Mol artefact)",
        "Nc1ncnc2c1ncn2CCOC[PH](=O)(=O)O",
        "pentavalent phosphorus: must be rejected",
    ),
)


def _array_digest(a: np.ndarray, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.dtype(dtype)).tobytes()).hexdigest()


def _batch_components(batch: DescribedBatch) -> dict[str, Any]:
    g = batch.graphs
    return {
        "rows": batch.row_ids.tolist(),
        "canonical_smiles": list(batch.canonical_smiles),
        "x_shape": list(batch.x.shape),
        "x_indptr": _array_digest(batch.x.indptr, "<i8"),
        "x_indices": _array_digest(batch.x.indices, "<i8"),
        "x_data": _array_digest(batch.x.data, "<f4"),
        "scaffolds": list(batch.scaffolds),
        "fold_ids": batch.fold_ids.tolist(),
        "graph_vocabulary": g.vocabulary.model_dump(mode="json"),
        "graph_atoms": _array_digest(g.atom_features, "u1"),
        "graph_bonds": _array_digest(g.bonds, "<i4"),
        "graph_bond_features": _array_digest(g.bond_features, "u1"),
        "graph_atom_offsets": _array_digest(g.atom_offsets, "<i8"),
        "graph_bond_offsets": _array_digest(g.bond_offsets, "<i8"),
        # Reason codes only: RDKit's message wording is not part of the contract.
        "rejections": [
            [int(r), str(c)]
            for r, c in zip(batch.rejections["row"], batch.rejections["reason"], strict=True)
        ],
    }


def consistency_components(
    params: ConsortiumParameters, key: ConsortiumKey, version: str = pharmafl.__version__
) -> dict[str, Any]:
    """Everything :func:`consistency_hash` hashes, for diagnosing a mismatch.

    Contains no secret: the key appears only as HMAC(key, ``b"pharmafl-consistency"``). The
    reference outputs are public molecules, but the fold ids and scrambled-bit digests depend on
    the key, so keep the components inside the consortium.
    """
    batch = describe_chunk([m.smiles for m in REFERENCE_SET], params, key)
    return {
        "format": "pharmafl-consistency-1",
        "pharmafl_version": version,
        "parameter_hash": params.parameter_hash(),
        "key_check": hmac_sha256(key.reveal(), b"pharmafl-consistency").hex(),
        "reference_names": [m.name for m in REFERENCE_SET],
        "reference_outputs": _batch_components(batch),
    }


def consistency_hash(
    params: ConsortiumParameters, key: ConsortiumKey, version: str = pharmafl.__version__
) -> str:
    """SHA-256 hex over the reference set's outputs, the parameters, a key check and version.

    Parameters
    ----------
    params
        Consortium parameters (their :meth:`~ConsortiumParameters.parameter_hash` is included,
        so ``reference_hash`` itself does not feed back into the hash).
    key
        Consortium key; only HMAC(key, ``b"pharmafl-consistency"``) is hashed.
    version
        pharmafl version string (default: the running one).
    """
    return sha256_bytes(canonical_json(consistency_components(params, key, version)))


__all__ = [
    "REFERENCE_SET",
    "ReferenceMolecule",
    "consistency_components",
    "consistency_hash",
]
