"""Structure standardization exactly as MELLODDY-TUNER 3.0.2 does it.

The operations and their order follow TUNER's ``Standardizer.calculate_single``
(``melloddy_tuner/utils/standardizer.py``; reference notes §1.5), all RDKit
``rdMolStandardize`` (the MolVS port):

1. parse the SMILES;
2. reject at ``>= max_num_atoms`` atoms (TUNER counts ``mol.GetNumAtoms()`` after parsing, i.e.
   heavy atoms plus any explicit hydrogens the parser keeps, such as isotopic ones);
3. charge parent (cleanup, largest fragment, uncharge, cleanup);
4. isotope parent (every isotope set to 0);
5. remove stereochemistry unless ``include_stereoinfo``;
6. canonical tautomer (at most ``max_num_tautomers``, sp3 stereo kept);
7. sanitize, remove Hs, metal disconnect, normalize, reionize, assign stereochemistry;
8. canonical SMILES, parse it again and write it again.

Speed without changing a result:

* RDKit's ``ChargeParent`` builds a new Normalizer, MetalDisconnector, Reionizer and Uncharger
  on every call (two cleanups). :class:`Standardizer` builds them once and runs the same
  in-place steps in the same order (the body of RDKit's ``chargeParentInPlace``). A test
  compares it with the literal TUNER code on real molecules.
* The tautomer enumerator (the most expensive step, ~2/3 of the time) is built once per
  process, not per molecule.
* The mol returned is the parse of the final canonical SMILES (when the round trip is stable,
  the second parse TUNER's descriptor and fold steps would do is provably the same one), so
  fingerprints, scaffolds and graphs reuse it.
* TUNER runs RDKit's cleanup (``RemoveHs``, then metal disconnection, normalization,
  reionization, stereo perception) three times: twice inside ``ChargeParent`` and once after
  the tautomer step. Each step is a deterministic function of the molecule it is given.
  :class:`Standardizer` remembers the exact states (``Mol.ToBinary()``: atoms, bonds, charges,
  hydrogens, flags, in atom order) that ``RemoveHs`` and the other steps were observed to
  return unchanged; a later call handed a molecule in exactly such a state would change
  nothing either, so it is skipped. For an input that is already clean (most of a curated
  export) this skips two of the three cleanups. The molecule and the SMILES produced are the
  ones TUNER produces; tests check this on FS-Mol and on deliberately messy molecules.

References
----------
MELLODDY-TUNER 3.0.2, https://github.com/melloddy/MELLODDY-TUNER (MIT).
Heyndrickx et al., "MELLODDY: Cross-pharma Federated Learning at Unprecedented Scale Unlocks
Benefits in QSAR without Compromising Proprietary Information", J. Chem. Inf. Model. 64:2331
(2024).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rdkit import Chem, rdBase
from rdkit.Chem.MolStandardize import rdMolStandardize

from pharmafl.chem.errors import MoleculeRejectedError
from pharmafl.common.params import StandardizationParams


def _rdkit_reason(exc: BaseException) -> str:
    """A short RDKit error text for a rejection message (no SMILES inside)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


@dataclass
class _FixedPoints:
    """``ToBinary()`` states seen to come back unchanged from a cleanup step (or None)."""

    remove_hs: bytes | None = None
    cleanup: bytes | None = None
    first: bytes | None = None  # the state of the molecule standardization started from
    last: bytes | None = None  # the state of the latest cleanup result


class Standardizer:
    """Reusable standardizer: RDKit helper objects are built once per instance.

    Parameters
    ----------
    params
        The consortium's standardization parameters.

    Notes
    -----
    An instance is not thread-safe; build one per process (the batch functions do).
    """

    def __init__(self, params: StandardizationParams) -> None:
        self.params = params
        self._taut = rdMolStandardize.TautomerEnumerator()
        self._taut.SetMaxTautomers(params.max_num_tautomers)
        self._taut.SetRemoveSp3Stereo(False)  # TUNER: keep stereo of keto/enol tautomers
        self._metal = rdMolStandardize.MetalDisconnector()
        self._normalizer = rdMolStandardize.Normalizer()
        self._reionizer = rdMolStandardize.Reionizer()
        self._uncharger = rdMolStandardize.Uncharger()  # canonicalOrdering=True (RDKit default)
        self._chooser = rdMolStandardize.LargestFragmentChooser()  # preferOrganic=False
        self._isotope_query = Chem.MolFromSmarts("[!0*]")  # any atom with an isotope label

    # -- single steps -------------------------------------------------------------------------

    def parse(self, smiles: Any) -> Chem.Mol:
        """Parse a SMILES (TUNER step 1) with a reason-coded error.

        Raises
        ------
        MoleculeRejectedError
            ``empty`` for None/NaN/blank input, ``parse`` when RDKit cannot read it.
        """
        if smiles is None or (isinstance(smiles, float) and math.isnan(smiles)):
            raise MoleculeRejectedError("empty", "no SMILES given.")
        if not isinstance(smiles, str):
            raise MoleculeRejectedError("parse", f"SMILES is a {type(smiles).__name__}, not text.")
        text = smiles.strip()
        if not text:
            raise MoleculeRejectedError("empty", "the SMILES is empty.")
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(text)
            if mol is None:
                raise MoleculeRejectedError("parse", _parse_problem(text))
        if mol.GetNumAtoms() == 0:
            raise MoleculeRejectedError("empty", "the SMILES has no atoms.")
        return mol

    def _cleanup_in_place(self, work: Chem.Mol) -> None:
        """The in-place part of RDKit's ``cleanupInPlace`` (after ``RemoveHs``)."""
        self._metal.DisconnectInPlace(work)
        self._normalizer.normalizeInPlace(work)
        self._reionizer.reionizeInPlace(work)
        Chem.AssignStereochemistry(work, cleanIt=True, force=True)

    def _cleanup(self, mol: Chem.Mol) -> Chem.Mol:
        """RDKit ``MolStandardize::cleanupInPlace`` (default parameters) on a copy of ``mol``."""
        work = Chem.RemoveHs(mol)  # returns a new mol
        self._cleanup_in_place(work)
        return work

    def _tracked_cleanup(self, mol: Chem.Mol, seen: _FixedPoints, *, owned: bool) -> Chem.Mol:
        """:meth:`_cleanup` that skips the steps a known fixed point would not change.

        ``seen`` holds ``ToBinary()`` states that ``RemoveHs`` and the in-place steps were each
        observed to return unchanged; a step handed a molecule in exactly such a state is
        skipped, and new observations are added to ``seen``. ``owned``: ``mol`` is a private
        intermediate that may be returned as the result instead of a copy.
        """
        state = mol.ToBinary()
        if seen.first is None:
            seen.first = state
        if state == seen.remove_hs:
            work = mol if owned else Chem.Mol(mol)  # RemoveHs would return this very state
        else:
            work = Chem.RemoveHs(mol)  # returns a new mol
            after = work.ToBinary()
            if after == state:
                seen.remove_hs = state
            state = after
        if state != seen.cleanup:  # else: same state, same deterministic steps, no change
            self._cleanup_in_place(work)
            after = work.ToBinary()
            if after == state:
                seen.cleanup = state
            state = after
        seen.last = state
        return work

    def charge_parent(self, mol: Chem.Mol) -> Chem.Mol:
        """``rdMolStandardize.ChargeParent(mol)`` with the helper objects reused (new mol).

        The steps of RDKit's ``chargeParentInPlace``: cleanup, largest fragment, uncharge,
        cleanup.
        """
        work = self._cleanup(mol)
        self._chooser.chooseInPlace(work)
        self._uncharger.unchargeInPlace(work)
        return self._cleanup(work)

    def standardize_text(self, smiles: Any) -> tuple[str, Chem.Mol]:
        """:meth:`parse` then :meth:`standardize` (TUNER steps 1–8) on one SMILES.

        When the standardized canonical SMILES is the input text itself (a curated export
        written by RDKit), TUNER's parse of it is the parse already made: it is reused.

        Raises
        ------
        MoleculeRejectedError
            As :meth:`parse` and :meth:`standardize`.
        """
        mol = self.parse(smiles)
        return self.standardize(mol, parsed_from=smiles.strip())

    def standardize(self, mol: Chem.Mol, *, parsed_from: str | None = None) -> tuple[str, Chem.Mol]:
        """TUNER steps 2–8 on a parsed molecule.

        Parameters
        ----------
        mol
            The molecule (not modified).
        parsed_from
            The text ``mol`` is exactly ``Chem.MolFromSmiles(parsed_from)`` of, if known (see
            :meth:`standardize_text`).

        Returns
        -------
        tuple of (str, Chem.Mol)
            The canonical SMILES and the mol parsed from exactly that SMILES (what TUNER's
            descriptor and fold steps parse again). ``mol`` is not modified.

        Raises
        ------
        MoleculeRejectedError
            ``too_many_atoms``, ``standardize``, ``roundtrip`` or ``empty``.
        """
        p = self.params
        n_atoms = mol.GetNumAtoms()
        if n_atoms >= p.max_num_atoms:
            raise MoleculeRejectedError(
                "too_many_atoms",
                f"the molecule has {n_atoms} atoms; at most {p.max_num_atoms - 1} are allowed "
                f"(standardization.max_num_atoms = {p.max_num_atoms}).",
            )
        with rdBase.BlockLogs():
            try:
                # charge parent (RDKit's chargeParentInPlace: cleanup, largest fragment,
                # uncharge, cleanup), remembering where a cleanup changed nothing.
                seen = _FixedPoints()
                work = self._tracked_cleanup(mol, seen, owned=False)
                self._chooser.chooseInPlace(work)
                self._uncharger.unchargeInPlace(work)
                work = self._tracked_cleanup(work, seen, owned=True)
                if work.HasSubstructMatch(self._isotope_query):  # else nothing to reset
                    for atom in work.GetAtoms():
                        atom.SetIsotope(0)
                if not p.include_stereoinfo:
                    Chem.RemoveStereochemistry(work)
                # Canonicalize returns a new mol, so TUNER's deepcopy before sanitizing it is
                # not needed here.
                work = self._taut.Canonicalize(work)
                # TUNER's my_standardizer block.
                Chem.SanitizeMol(work)
                work = self._tracked_cleanup(work, seen, owned=True)
                tmp_smiles = Chem.MolToSmiles(work)
            except Exception as exc:  # RDKit raises several unrelated types
                raise MoleculeRejectedError(
                    "standardize", f"RDKit standardization failed: {_rdkit_reason(exc)}"
                ) from None
            if tmp_smiles == parsed_from:
                # MolFromSmiles(tmp_smiles) is deterministic: it is ``mol``, already parsed.
                clean = Chem.Mol(mol)
                # Same state as the result of the cleanups: the same canonical SMILES.
                same = seen.last is not None and seen.last == seen.first
                smiles = tmp_smiles if same else Chem.MolToSmiles(clean)
            else:
                parsed = Chem.MolFromSmiles(tmp_smiles)
                if parsed is None:
                    raise MoleculeRejectedError(
                        "roundtrip", "the standardized canonical SMILES does not parse back."
                    )
                clean = parsed
                smiles = Chem.MolToSmiles(clean)
            if smiles != tmp_smiles:
                # Not a fixed point yet: parse the final SMILES as TUNER's later steps do.
                again = Chem.MolFromSmiles(smiles)
                if again is None:
                    raise MoleculeRejectedError(
                        "roundtrip", "the standardized canonical SMILES does not parse back."
                    )
                clean = again
        if not smiles:
            raise MoleculeRejectedError("empty", "nothing is left after standardization.")
        return smiles, clean


def _parse_problem(text: str) -> str:
    """Explain why RDKit could not parse ``text`` (syntax or chemistry), without echoing it."""
    raw = Chem.MolFromSmiles(text, sanitize=False)
    if raw is None:
        return "RDKit cannot parse the SMILES (syntax error)."
    problems = Chem.DetectChemistryProblems(raw)
    if problems:
        return f"RDKit rejects the structure: {problems[0].Message()}."
    return "RDKit cannot parse the SMILES."


_CACHE: dict[str, Standardizer] = {}


def get_standardizer(params: StandardizationParams) -> Standardizer:
    """A per-process :class:`Standardizer` for ``params`` (built on first use)."""
    key = params.model_dump_json()
    std = _CACHE.get(key)
    if std is None:
        std = _CACHE[key] = Standardizer(params)
    return std


def standardize_mol(mol: Chem.Mol, params: StandardizationParams) -> Chem.Mol:
    """Standardize a molecule as MELLODDY-TUNER does; return a new mol.

    The result is the parse of the canonical SMILES, so ``Chem.MolToSmiles(result)`` equals
    :func:`standardize_smiles` of the same input. ``mol`` is never modified.

    Raises
    ------
    MoleculeRejectedError
        With ``code`` one of ``too_many_atoms``, ``standardize``, ``roundtrip``, ``empty``.
    """
    if mol is None or mol.GetNumAtoms() == 0:
        raise MoleculeRejectedError("empty", "the molecule has no atoms.")
    return get_standardizer(params).standardize(mol)[1]


def standardize_smiles(smiles: str, params: StandardizationParams) -> str:
    """Standardize a SMILES as MELLODDY-TUNER does and return its canonical SMILES.

    Raises
    ------
    MoleculeRejectedError
        With ``code`` one of ``empty``, ``parse``, ``too_many_atoms``, ``standardize``,
        ``roundtrip``.
    """
    return get_standardizer(params).standardize_text(smiles)[0]


__all__ = ["Standardizer", "get_standardizer", "standardize_mol", "standardize_smiles"]
