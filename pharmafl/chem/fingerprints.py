"""Hashed Morgan (ECFP-like) count fingerprints, folded as MELLODDY-TUNER does.

TUNER (reference notes §1.6) calls ``AllChem.GetHashedMorganFingerprint(mol, radius, fold_size)``
and keeps the non-zero elements; ``binarized`` sets every value to 1. RDKit deprecated that
function in favour of the fingerprint generators; ``GetMorganGenerator(radius, fpSize)``'s
folded count fingerprint gives the same elements (no chirality, bond types on, no feature
invariants; a test checks the two agree).

References
----------
Rogers & Hahn, "Extended-Connectivity Fingerprints", J. Chem. Inf. Model. 50:742 (2010).
"""

from __future__ import annotations

import functools

import numpy as np
from rdkit import Chem
from rdkit.Chem import rdFingerprintGenerator

from pharmafl.chem.errors import MoleculeRejectedError
from pharmafl.common.params import FingerprintParams


@functools.lru_cache(maxsize=8)
def _generator(radius: int, fold_size: int) -> rdFingerprintGenerator.FingerprintGenerator64:
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=fold_size)


def morgan_bits(mol: Chem.Mol, params: FingerprintParams) -> tuple[np.ndarray, np.ndarray]:
    """Unscrambled folded Morgan bits of ``mol``.

    Parameters
    ----------
    mol
        A standardized molecule (not modified).
    params
        Radius, fold size and binarization.

    Returns
    -------
    indices : np.ndarray
        Sorted int64 bit indices in ``0 … fold_size-1`` with a non-zero count.
    values : np.ndarray
        float32, 1.0 each when ``params.binarized`` else the counts.

    Raises
    ------
    MoleculeRejectedError
        ``fingerprint`` if RDKit fails.
    """
    try:
        elements = _generator(params.radius, params.fold_size).GetCountFingerprint(mol)
        nonzero = elements.GetNonzeroElements()
    except Exception as exc:  # RDKit raises several unrelated types
        raise MoleculeRejectedError(
            "fingerprint", f"RDKit could not fingerprint the molecule: {exc}"
        ) from None
    indices = np.fromiter(nonzero.keys(), dtype=np.int64, count=len(nonzero))
    order = np.argsort(indices)
    indices = indices[order]
    if params.binarized:
        values = np.ones(len(indices), dtype=np.float32)
    else:
        values = np.fromiter(nonzero.values(), dtype=np.float32, count=len(nonzero))[order]
    return indices, values


__all__ = ["morgan_bits"]
