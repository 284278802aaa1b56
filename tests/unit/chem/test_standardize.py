"""Standardization: golden SMILES, TUNER equivalence, rejection codes, no mutation."""

from __future__ import annotations

import math

import pytest
from rdkit import Chem
from rdkit.Chem.MolStandardize import rdMolStandardize

from pharmafl.chem import (
    MoleculeRejectedError,
    Standardizer,
    standardize_mol,
    standardize_smiles,
)
from pharmafl.common.errors import ChemistryError
from pharmafl.common.params import StandardizationParams

DEFAULT = StandardizationParams()


def test_golden_standardized_smiles(golden) -> None:
    for mol in golden["molecules"]:
        assert standardize_smiles(mol["smiles"], DEFAULT) == mol["canonical_smiles"], mol["name"]


@pytest.mark.parametrize(
    ("smiles", "expected", "what"),
    [
        ("O=C([O-])c1ccccc1.[Na+]", "O=C(O)c1ccccc1", "salt -> neutral parent"),
        ("CN(C)C(=N)N=C(N)N.Cl", "CN(C)C(N)=NC(=N)N", "hydrochloride stripped"),
        ("Oc1ccccn1", "O=c1cccc[nH]1", "canonical tautomer"),
        ("COc1ccc2cc([C@H](C)C(=O)O)ccc2c1", "COc1ccc2cc(C(C)C(=O)O)ccc2c1", "stereo removed"),
        ("[2H]C([2H])([2H])Oc1ccccc1", "COc1ccccc1", "isotopes removed"),
        ("C[N+](C)(C)C.[Cl-]", "C[N+](C)(C)C", "quaternary ammonium keeps its charge"),
    ],
)
def test_tuner_operations(smiles: str, expected: str, what: str) -> None:
    assert standardize_smiles(smiles, DEFAULT) == expected, what


def test_stereo_kept_when_configured() -> None:
    p = StandardizationParams(include_stereoinfo=True)
    out = standardize_smiles("COc1ccc2cc([C@H](C)C(=O)O)ccc2c1", p)
    assert "@" in out
    assert out != standardize_smiles("COc1ccc2cc([C@@H](C)C(=O)O)ccc2c1", p)


def _check_against_tuner(inputs: list[str], tuner_standardize) -> int:
    std = Standardizer(DEFAULT)
    checked = 0
    for smi in inputs:
        expected = tuner_standardize(smi)
        try:
            got: str | None = std.standardize(std.parse(smi))[0]
        except MoleculeRejectedError:
            got = None
        assert got == expected, smi
        try:
            text: str | None = std.standardize_text(smi)[0]
        except MoleculeRejectedError:
            text = None
        assert text == expected, smi
        if expected is not None:
            # A curated export holds canonical SMILES: standardize_text reuses its parse then.
            again, clean = std.standardize_text(expected)
            assert again == tuner_standardize(expected) == Chem.MolToSmiles(clean), expected
        checked += expected is not None
    return checked


def test_equals_tuner_literal_code_path(fsmol_sample, golden, tuner_standardize) -> None:
    inputs = fsmol_sample[:40] + [m["smiles"] for m in golden["molecules"]]
    assert _check_against_tuner(inputs, tuner_standardize) >= 45


@pytest.mark.slow
def test_equals_tuner_literal_code_path_whole_sample(fsmol_sample, tuner_standardize) -> None:
    assert _check_against_tuner(fsmol_sample, tuner_standardize) == len(fsmol_sample) - 4


def test_equals_tuner_with_stereo(fsmol_sample, tuner_standardize) -> None:
    std = Standardizer(StandardizationParams(include_stereoinfo=True))
    stereo = [s for s in fsmol_sample if "@" in s or "/" in s][:15]
    assert len(stereo) >= 5
    for smi in stereo:
        assert std.standardize(std.parse(smi))[0] == tuner_standardize(smi, True), smi


def test_fast_charge_parent_equals_rdkit(fsmol_sample) -> None:
    std = Standardizer(DEFAULT)
    extra = ["[Na+].[O-]C(=O)c1ccccc1", "N.N.Cl[Pt]Cl", "C[N+](C)(C)C.[Cl-]", "CCO[Mg]Br"]
    for smi in fsmol_sample + extra:
        mol = Chem.MolFromSmiles(smi)
        if mol is None:
            continue
        ours = Chem.MolToSmiles(std.charge_parent(mol))
        assert ours == Chem.MolToSmiles(rdMolStandardize.ChargeParent(mol)), smi


@pytest.mark.parametrize(
    ("value", "code", "said"),
    [
        (None, "empty", "no SMILES given"),
        (math.nan, "empty", "no SMILES given"),
        ("", "empty", "the SMILES is empty"),
        ("   ", "empty", "the SMILES is empty"),
        ("C1CC", "parse", "RDKit cannot parse"),
        ("not a smiles", "parse", "RDKit cannot parse"),
        ("Nc1ncnc2c1ncn2CCOC[PH](=O)(=O)O", "parse", "valence"),
        (42, "parse", "SMILES is a int, not text"),
    ],
)
def test_rejection_codes(value: object, code: str, said: str) -> None:
    with pytest.raises(MoleculeRejectedError) as info:
        standardize_smiles(value, DEFAULT)  # type: ignore[arg-type]
    assert info.value.code == code and said in str(info.value)
    assert isinstance(info.value, ChemistryError)
    assert info.value.fix


def test_parse_message_explains_without_echoing_the_smiles() -> None:
    smiles = "Nc1ncnc2c1ncn2CCOC[PH](=O)(=O)O"
    with pytest.raises(MoleculeRejectedError) as info:
        standardize_smiles(smiles, DEFAULT)
    assert "valence" in str(info.value)
    assert smiles not in str(info.value)


def test_size_limit_is_greater_or_equal() -> None:
    assert standardize_smiles("C" * 99, DEFAULT) == "C" * 99
    with pytest.raises(MoleculeRejectedError) as info:
        standardize_smiles("C" * 100, DEFAULT)
    assert info.value.code == "too_many_atoms"
    assert "100 atoms" in str(info.value)
    small = StandardizationParams(max_num_atoms=10)
    with pytest.raises(MoleculeRejectedError):
        standardize_smiles("C" * 10, small)


def test_standardize_mol_returns_new_mol_and_never_mutates() -> None:
    smiles = "[2H]C([2H])([2H])Oc1ccc(C[C@H](N)C(=O)[O-])cc1.[Na+]"
    mol = Chem.MolFromSmiles(smiles)
    before = Chem.MolToSmiles(mol)
    isotopes = [a.GetIsotope() for a in mol.GetAtoms()]
    charges = [a.GetFormalCharge() for a in mol.GetAtoms()]
    out = standardize_mol(mol, DEFAULT)
    assert out is not mol
    assert Chem.MolToSmiles(mol) == before
    assert [a.GetIsotope() for a in mol.GetAtoms()] == isotopes
    assert [a.GetFormalCharge() for a in mol.GetAtoms()] == charges
    assert Chem.MolToSmiles(out) == standardize_smiles(smiles, DEFAULT)


def test_standardize_mol_rejects_empty_and_big() -> None:
    with pytest.raises(MoleculeRejectedError) as info:
        standardize_mol(Chem.Mol(), DEFAULT)
    assert info.value.code == "empty" and "the molecule has no atoms" in str(info.value)
    with pytest.raises(MoleculeRejectedError) as info:  # the method itself, after its steps
        Standardizer(DEFAULT).standardize(Chem.Mol())
    assert info.value.code == "empty" and "nothing is left" in str(info.value)
    with pytest.raises(MoleculeRejectedError) as info:
        standardize_mol(Chem.MolFromSmiles("C" * 120), DEFAULT)
    assert info.value.code == "too_many_atoms"


def test_unknown_reason_code_is_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown rejection reason"):
        MoleculeRejectedError("nope", "x")


# Inputs that make RDKit's cleanups do something (salts, charges, metals, isotopes, explicit
# hydrogens, nitro/N-oxide normalization, zwitterions, tautomers, stereo), so that the
# skipping of cleanups on known fixed points is exercised in both directions.
MESSY = [
    "O=C([O-])c1ccccc1.[Na+]",
    "[Na+].[O-]C(=O)c1ccccc1",
    "C[N+](C)(C)C.[Cl-]",
    "CN(C)C(=N)N=C(N)N.Cl",
    "N.N.Cl[Pt]Cl",
    "CCO[Mg]Br",
    "CC(=O)O[Na]",
    "[2H]C([2H])([2H])Oc1ccc(C[C@H](N)C(=O)[O-])cc1.[Na+]",
    "[13CH3]c1ccccc1O",
    "[H]OC(=O)c1ccccc1",
    "C[N+](=O)[O-]",
    "CN(=O)=O",
    "[O-][n+]1ccccc1",
    "O=[N+]([O-])c1ccc(O)cc1.O",
    "NCC(=O)O",
    "[NH3+]CC(=O)[O-]",
    "C[C@H](N)C(=O)O",
    "C/C=C/C(=O)O",
    "Oc1ccccn1",
    "CC(=O)CC(C)=O",
    "O=C1NC(=O)C(=O)N1",
    "Cc1nc2ccccc2[nH]1",
    "OC(=O)C[S-].[K+]",
    "C1=CC=CC=C1.C1CCCCC1O",
]


def test_fixed_point_skips_give_tuners_result_on_messy_inputs(tuner_standardize) -> None:
    for stereo in (False, True):
        std = Standardizer(StandardizationParams(include_stereoinfo=stereo))
        for smi in MESSY:
            expected = tuner_standardize(smi, stereo)
            try:
                got: str | None = std.standardize(std.parse(smi))[0]
            except MoleculeRejectedError:
                got = None
            assert got == expected, (smi, stereo)
            if expected is not None:  # the canonical text again: standardize_text's shortcut
                assert std.standardize_text(f" {expected} ")[0] == expected, (smi, stereo)


class _CountingStandardizer(Standardizer):
    """Counts how often the in-place cleanup steps actually run."""

    runs = 0

    def _cleanup_in_place(self, work: Chem.Mol) -> None:
        self.runs += 1
        super()._cleanup_in_place(work)


def test_cleanups_are_skipped_only_on_known_fixed_points() -> None:
    std = _CountingStandardizer(DEFAULT)
    # Already clean, no stereo, canonical tautomer: the first cleanup changes nothing, the
    # other two see exactly that state again and are skipped.
    std.standardize(std.parse("CC(=O)Nc1ccc(O)cc1"))
    assert std.runs == 1
    # A salt: the largest-fragment step changes the molecule, so the second cleanup runs.
    std.runs = 0
    std.standardize(std.parse("O=C([O-])c1ccccc1.[Na+]"))
    assert std.runs >= 2
    # Stereo removed before the tautomer step: a new state, the last cleanup runs.
    std.runs = 0
    std.standardize(std.parse("C[C@H](N)C(=O)O"))
    assert std.runs == 2


class _Parses:
    """``rdkit.Chem`` whose ``MolFromSmiles`` answers from a script: a round trip of the
    standardized SMILES that RDKit cannot parse back (an RDKit writer/reader mismatch)."""

    def __init__(self, answers: list[Chem.Mol | None]) -> None:
        self._answers = answers

    def __getattr__(self, name: str) -> object:
        return getattr(Chem, name)

    def MolFromSmiles(self, smiles: str, *args: object) -> Chem.Mol | None:  # noqa: N802
        return self._answers.pop(0)


@pytest.mark.parametrize(
    "answers",
    [[None], [Chem.MolFromSmiles("CCN"), None]],
    ids=["standardized", "not-a-fixed-point"],
)
def test_a_smiles_that_does_not_parse_back_is_a_roundtrip_rejection(
    monkeypatch: pytest.MonkeyPatch, answers: list[Chem.Mol | None]
) -> None:
    import pharmafl.chem.standardize as module

    monkeypatch.setattr(module, "Chem", _Parses(answers))
    with pytest.raises(MoleculeRejectedError) as info:
        Standardizer(DEFAULT).standardize(Chem.MolFromSmiles("OCC"))
    assert info.value.code == "roundtrip" and not answers  # each scripted parse was asked for
