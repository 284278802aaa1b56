"""The chemistry failure contract: one typed error with a reason code (STYLE.md §8).

A single-molecule function raises :class:`MoleculeRejectedError`; a batch function catches it
and records ``(row, reason, message)`` in its rejection table instead. Messages never contain
the partner's SMILES (STYLE.md §15): the row number identifies the molecule.
"""

from __future__ import annotations

from typing import Final

from pharmafl.common.errors import ChemistryError

#: Reason codes, in the order the per-molecule pipeline can produce them.
REASON_CODES: Final[tuple[str, ...]] = (
    "empty",  # no SMILES, or nothing left after standardization
    "parse",  # RDKit cannot parse (or sanitize) the SMILES
    "too_many_atoms",  # heavy-atom count >= StandardizationParams.max_num_atoms
    "standardize",  # an rdMolStandardize step failed
    "roundtrip",  # the canonical SMILES does not parse back
    "fingerprint",  # the Morgan fingerprint failed
    "scaffold",  # Murcko scaffold or scaffold network failed
    "graph",  # the molecular graph could not be built
)

_FIXES: Final[dict[str, str]] = {
    "empty": "give a non-empty SMILES for the compound or drop the row.",
    "parse": "check the structure (valence, aromaticity, ring closures) in the partner export.",
    "too_many_atoms": "such molecules are outside the consortium's scope; drop the row or raise "
    "standardization.max_num_atoms for the whole consortium.",
    "standardize": "check the structure in the partner export; report it if it is valid.",
    "roundtrip": "report the structure; RDKit's canonical SMILES did not parse back.",
    "fingerprint": "report the structure; RDKit could not fingerprint it.",
    "scaffold": "report the structure; RDKit could not build its scaffold.",
    "graph": "report the structure; it could not be turned into a graph.",
}


class MoleculeRejectedError(ChemistryError):
    """One molecule could not be standardized or described.

    Parameters
    ----------
    code
        One of :data:`REASON_CODES`.
    message
        What went wrong, without the SMILES itself.
    row
        Input position, when known.
    """

    def __init__(self, code: str, message: str, *, row: int | None = None) -> None:
        if code not in REASON_CODES:
            raise ValueError(f"unknown rejection reason {code!r}; valid: {REASON_CODES}")
        self.code = code
        super().__init__(message, row=row, fix=_FIXES[code])


__all__ = ["REASON_CODES", "MoleculeRejectedError"]
