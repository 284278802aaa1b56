"""Scaffolds and keyed scaffold folds, exactly as MELLODDY-TUNER 3.0.2 assigns them.

TUNER's ``ScaffoldFoldAssign`` (``melloddy_tuner/utils/scaffold_folding.py``; reference notes
§1.8):

1. Bemis–Murcko scaffold of the standardized molecule, as canonical SMILES.
2. If that scaffold has at most ``nrings_target`` (3) rings it is the fold scaffold. Otherwise
   build RDKit's scaffold network of the scaffold (flattened isotopes, pruning before
   fragmenting, no generic scaffolds, only scaffolds without attachment points) and pick one
   node by a scaffold-tree-like priority: ring count closest to the target; macrocycle
   (ring > 9) first; fewer rotatable bonds; more bridgehead atoms; more spiro atoms; unusual
   ring size (not 5 or 6) first; more heterocycles; fewer aromatic rings; node SMILES.
3. fold = ``random.seed(HMAC-SHA256(key, scaffold ASCII), version=2)`` then
   ``randint(0, nfolds - 1)``.

Any two partners holding the key put compounds with the same scaffold in the same fold, with
nothing exchanged.

Speed without changing a result: step 2 does not build the network's nodes below the target
ring count, which can never be picked (:mod:`pharmafl.chem._scaffold_network` explains why and
falls back to RDKit's whole network for unusual attachment points); only the nodes closest to
the target get the full priority. Tests compare with RDKit's whole network and TUNER's code.

Acyclic molecules: the scaffold is ``""`` here (TUNER stores ``None``); :func:`assign_fold`
hashes ``""`` as TUNER hashes ``str(None)``, the ASCII text ``"None"``, so the folds agree.
All acyclic compounds therefore share one fold, as in TUNER.

References
----------
Bemis & Murcko, "The properties of known drugs. 1. Molecular frameworks", J. Med. Chem.
39:2887 (1996).
Schuffenhauer et al., "The Scaffold Tree - Visualization of the Scaffold Universe by
Hierarchical Scaffold Classification", J. Chem. Inf. Model. 47:47 (2007).
Kruger, Stiefl & Landrum, "rdScaffoldNetwork: The Scaffold Network Implementation in RDKit",
J. Chem. Inf. Model. 60:3331 (2020).
Simm et al., "Splitting chemical structure data sets for federated privacy-preserving machine
learning", J. Cheminform. 13:96 (2021).
"""

from __future__ import annotations

import functools
import random

from rdkit import Chem, rdBase
from rdkit.Chem import rdMolDescriptors
from rdkit.Chem.Scaffolds import MurckoScaffold, rdScaffoldNetwork

from pharmafl.chem._scaffold_network import Priority, pick_node
from pharmafl.chem.errors import MoleculeRejectedError
from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.errors import ChemistryError
from pharmafl.common.secret import ConsortiumKey

#: TUNER's text for an acyclic molecule's (missing) scaffold, used for the fold hash.
ACYCLIC_FOLD_TEXT = "None"


@functools.lru_cache(maxsize=1)
def _network_params() -> rdScaffoldNetwork.ScaffoldNetworkParams:
    # TUNER hard-wires these; its priority heuristics assume them.
    p = rdScaffoldNetwork.ScaffoldNetworkParams()
    settings = {
        "flattenIsotopes": True,
        "includeGenericBondScaffolds": False,
        "includeGenericScaffolds": False,
        "includeScaffoldsWithAttachments": False,
        "includeScaffoldsWithoutAttachments": True,
        "pruneBeforeFragmenting": True,
    }
    for name, value in settings.items():  # setattr: RDKit's type stubs mistype these fields
        setattr(p, name, value)
    return p


def murcko_smiles(mol: Chem.Mol) -> str:
    """Canonical SMILES of the Bemis–Murcko scaffold of ``mol``; ``""`` if acyclic.

    Raises
    ------
    MoleculeRejectedError
        ``scaffold`` if RDKit fails.
    """
    try:
        return str(Chem.MolToSmiles(MurckoScaffold.GetScaffoldForMol(mol)))
    except Exception as exc:  # RDKit raises several unrelated types
        raise MoleculeRejectedError("scaffold", f"Murcko scaffold failed: {exc}") from None


@functools.lru_cache(maxsize=100_000)
def _node_facts(node_smiles: str) -> tuple[int, int, int, int, int, int, int, int]:
    """Ring count and the target-independent priority entries of a scaffold-network node.

    Cached: the same small ring systems appear in many networks.
    """
    m = _parse_node(node_smiles)
    ring_sizes = [len(r) for r in m.GetRingInfo().AtomRings()]
    return (
        rdMolDescriptors.CalcNumRings(m),
        -int(any(n > 9 for n in ring_sizes)),  # macrocycle, descending
        rdMolDescriptors.CalcNumRotatableBonds(m, False),  # ascending, non-strict as TUNER
        -rdMolDescriptors.CalcNumBridgeheadAtoms(m),  # descending
        -rdMolDescriptors.CalcNumSpiroAtoms(m),  # descending
        -int(any(n > 6 or n < 5 for n in ring_sizes)),  # unusual ring size, descending
        -rdMolDescriptors.CalcNumHeterocycles(m),  # descending
        rdMolDescriptors.CalcNumAromaticRings(m),  # ascending
    )


def _parse_node(node_smiles: str) -> Chem.Mol:
    m = Chem.MolFromSmiles(node_smiles)
    if m is None:
        raise MoleculeRejectedError("scaffold", "a scaffold-network node does not parse.")
    return m


@functools.lru_cache(maxsize=100_000)
def _num_rings(node_smiles: str) -> int:
    """Ring count of a scaffold-network node (as :func:`_node_facts` counts them)."""
    return int(rdMolDescriptors.CalcNumRings(_parse_node(node_smiles)))


def _priority(node_smiles: str, nrings_target: int) -> Priority:
    """Sort key of one scaffold-network node: the smallest key is TUNER's choice."""
    f = _node_facts(node_smiles)
    return (
        abs(f[0] - nrings_target),  # ascending
        f[1],
        f[2],
        f[3],
        f[4],
        f[5],
        f[6],
        f[7],
        node_smiles,  # ascending tie-breaker
    )


@functools.lru_cache(maxsize=200_000)
def reduce_scaffold(murcko: str, nrings_target: int = 3) -> str:
    """TUNER's ``sn_smiles`` for a Murcko scaffold SMILES (cached: scaffolds repeat a lot).

    Parameters
    ----------
    murcko
        Canonical Murcko scaffold SMILES, ``""`` for an acyclic molecule.
    nrings_target
        Scaffolds with more rings than this are reduced through the scaffold network.

    Raises
    ------
    MoleculeRejectedError
        ``scaffold`` if the scaffold does not parse or the network fails.
    """
    if not murcko:
        return ""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(murcko)
        if mol is None:
            raise MoleculeRejectedError("scaffold", "the Murcko scaffold does not parse back.")
        if rdMolDescriptors.CalcNumRings(mol) <= nrings_target:
            return murcko
        # min over the full priority tuples == first row of TUNER's multi-column sort.
        try:
            best = pick_node(
                mol, murcko, nrings_target, _num_rings, lambda s: _priority(s, nrings_target)
            )
        except MoleculeRejectedError:
            raise
        except Exception as exc:  # RDKit raises several unrelated types
            raise MoleculeRejectedError("scaffold", f"scaffold network failed: {exc}") from None
        if best is not None:
            return best[-1]
        return _reduce_with_full_network(mol, nrings_target)


def _reduce_with_full_network(mol: Chem.Mol, nrings_target: int) -> str:
    """TUNER's literal way: RDKit's whole scaffold network, smallest priority."""
    try:
        network = rdScaffoldNetwork.CreateScaffoldNetwork([mol], _network_params())
    except Exception as exc:  # RDKit raises several unrelated types
        raise MoleculeRejectedError("scaffold", f"scaffold network failed: {exc}") from None
    nodes = [str(n) for n in network.nodes]
    if not nodes:
        raise MoleculeRejectedError("scaffold", "the scaffold network is empty.")
    return min(_priority(s, nrings_target) for s in nodes)[-1]


def fold_scaffold(mol: Chem.Mol, nrings_target: int = 3) -> str:
    """TUNER's fold scaffold (``sn_smiles``) of a standardized molecule.

    The Murcko scaffold, reduced through RDKit's scaffold network when it has more than
    ``nrings_target`` rings; ``""`` for an acyclic molecule (TUNER: ``None``).

    Raises
    ------
    MoleculeRejectedError
        ``scaffold`` if RDKit fails.
    """
    return reduce_scaffold(murcko_smiles(mol), nrings_target)


def _fold_from_digest(digest: bytes, nfolds: int) -> int:
    # Exactly TUNER's random.seed(digest, version=2); random.randint(0, nfolds - 1), on a
    # private generator so the global random state is untouched.
    return random.Random(digest).randint(0, nfolds - 1)


def assign_fold(scaffold_smiles: str, key: ConsortiumKey, nfolds: int) -> int:
    """Keyed fold of a scaffold: HMAC-SHA256(key, scaffold ASCII) → TUNER's seeded randint.

    ``""`` (acyclic) is hashed as TUNER's ``"None"``.

    Raises
    ------
    ChemistryError
        If ``nfolds < 1`` or the scaffold SMILES is not ASCII (RDKit SMILES always are).
    """
    if nfolds < 1:
        raise ChemistryError(f"nfolds must be >= 1, got {nfolds}.", fix="set folding.nfolds.")
    return _fold_from_digest(_scaffold_digest(key.reveal(), scaffold_smiles), nfolds)


def _scaffold_digest(key: bytes, scaffold_smiles: str) -> bytes:
    text = scaffold_smiles or ACYCLIC_FOLD_TEXT
    try:
        message = text.encode("ascii")
    except UnicodeEncodeError:
        raise ChemistryError(
            "scaffold SMILES is not ASCII.", fix="pass a SMILES written by RDKit."
        ) from None
    return hmac_sha256(key, message)


class FoldAssigner:
    """Per-process fold assignment with a cache per scaffold (the key is never shown).

    Parameters
    ----------
    key
        The consortium key.
    nfolds
        Number of folds.
    """

    __slots__ = ("_cache", "_key", "nfolds")

    def __init__(self, key: ConsortiumKey, nfolds: int) -> None:
        if nfolds < 1:
            raise ChemistryError(f"nfolds must be >= 1, got {nfolds}.", fix="set folding.nfolds.")
        self._key = key.reveal()
        self.nfolds = nfolds
        self._cache: dict[str, int] = {}

    def __call__(self, scaffold_smiles: str) -> int:
        fold = self._cache.get(scaffold_smiles)
        if fold is None:
            digest = _scaffold_digest(self._key, scaffold_smiles)
            fold = self._cache[scaffold_smiles] = _fold_from_digest(digest, self.nfolds)
        return fold

    def __repr__(self) -> str:
        return f"FoldAssigner(nfolds={self.nfolds}, key=<redacted>)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("FoldAssigner holds the consortium key and cannot be pickled")


__all__ = [
    "ACYCLIC_FOLD_TEXT",
    "FoldAssigner",
    "assign_fold",
    "fold_scaffold",
    "murcko_smiles",
    "reduce_scaffold",
]
