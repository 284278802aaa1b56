"""The scaffold-network node TUNER picks, without building the parts of the network it never picks.

MELLODDY-TUNER reduces a Murcko scaffold with more than ``nrings_target`` rings by building
RDKit's whole scaffold network (``rdScaffoldNetwork.CreateScaffoldNetwork``) and taking the node
with the smallest priority key, whose first entry is ``|rings - nrings_target|``
(:func:`pharmafl.chem.scaffolds.reduce_scaffold`). RDKit fragments every node down to single
rings, but the nodes below ``nrings_target`` rings can never be picked:

* a fragment is the ring side of a broken non-ring bond, and in a (pruned) Murcko scaffold the
  other side of such a bond always holds a ring (a linker atom lies between two ring systems),
  so every child has strictly fewer rings than its parent (ring counts add up over the parts
  that a non-ring bond separates);
* hence every descendant of a node with ``rings <= nrings_target`` is further from the target
  than that node, and has a larger priority key.

:func:`pick_node` therefore builds the network exactly as RDKit's ``addMolToNetwork`` and
``getMolFragments`` do (same flattening, pruning, bond-breaker reaction, attachment-point
removal, sanitization and canonical SMILES, for TUNER's parameters: isotopes and stereo
flattened, largest fragment kept, pruning before fragmenting, first fragment only, no generic
scaffolds, no attachment points) but expands only nodes with more than ``nrings_target`` rings,
and returns the same node RDKit's full network leads to.

One more thing must match: RDKit raises when a deeper fragment cannot be sanitized, and TUNER
then rejects the compound. Removing an attachment point changes only the atom that held it
(an aromatic heteroatom gets the hydrogen that replaces the bond), so when every such atom is
"ordinary" (not aromatic; an aromatic carbon with implicit hydrogens; or an aromatic heteroatom
that had no hydrogen) each ring system of a deeper fragment keeps the valences and Kekulé
constraints it had in the Murcko scaffold, which RDKit already sanitized. Anything else falls
back to RDKit's full network (:func:`pick_node` returns None).

References
----------
Kruger, Stiefl & Landrum, "rdScaffoldNetwork: The Scaffold Network Implementation in RDKit",
J. Chem. Inf. Model. 60:3331 (2020); RDKit ``Code/GraphMol/ScaffoldNetwork/ScaffoldNetwork.cpp``
(BSD).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from rdkit import Chem
from rdkit.Chem import rdChemReactions
from rdkit.Chem.MolStandardize import rdMolStandardize

#: RDKit's default bond breaker (``ScaffoldNetworkParams()``), which TUNER uses.
BOND_BREAKER = "[!#0;R:1]-!@[!#0:2]>>[*:1]-[#0].[#0]-[*:2]"

#: A node's sort key (see :func:`pharmafl.chem.scaffolds.reduce_scaffold`); smallest wins.
Priority = tuple[int, int, int, int, int, int, int, int, str]


@functools.lru_cache(maxsize=1)
def _breaker() -> rdChemReactions.ChemicalReaction:
    rxn = rdChemReactions.ReactionFromSmarts(BOND_BREAKER)
    rxn.Initialize()
    return rxn


@functools.lru_cache(maxsize=1)
def _chooser() -> rdMolStandardize.LargestFragmentChooser:
    return rdMolStandardize.LargestFragmentChooser()


_UNSPECIFIED = Chem.ChiralType.CHI_UNSPECIFIED
_NO_DIR = Chem.BondDir.NONE
_NO_STEREO = Chem.BondStereo.STEREONONE


#: SMILES text that can give atoms an isotope or chirality, or bonds a direction or stereo.
_STEREO_OR_ISOTOPE_TEXT = re.compile(r"[@/\\]|\[\d")


def _flatten_and_prune(mol: Chem.Mol, smiles: str) -> Chem.Mol:
    """RDKit ``detail::flattenMol`` then ``detail::pruneMol`` (TUNER's parameters).

    ``mol`` is the parse of ``smiles``; when that text has no isotope, chirality or bond
    direction, flattening has nothing to reset and the per-atom loop is skipped.
    """
    res = _chooser().choose(mol)
    if _STEREO_OR_ISOTOPE_TEXT.search(smiles):
        for i in range(res.GetNumAtoms()):
            atom = res.GetAtomWithIdx(i)
            atom.SetIsotope(0)
            if atom.GetChiralTag() != _UNSPECIFIED:
                atom.SetChiralTag(_UNSPECIFIED)
                if atom.GetNoImplicit() and atom.GetAtomicNum() in (6, 7, 15, 16):
                    atom.SetNoImplicit(False)
                    atom.SetNumExplicitHs(0)
        for i in range(res.GetNumBonds()):
            bond = res.GetBondWithIdx(i)
            bond.SetBondDir(_NO_DIR)
            bond.SetStereo(_NO_STEREO)
    pruned = Chem.MurckoDecompose(res)
    pruned.UpdatePropertyCache()
    Chem.FastFindRings(pruned)
    return pruned


@functools.lru_cache(maxsize=1)
def _queries() -> tuple[tuple[Chem.Mol, ...], Chem.Mol]:
    not_ordinary = tuple(
        Chem.MolFromSmarts(q)
        for q in (
            "[#0]",  # a dummy atom: attachment-point removal would touch it too
            "[a;!#6;!H0]!@*",  # aromatic heteroatom with hydrogens and a non-ring bond
            "[c;!+0]!@*",  # charged aromatic carbon with a non-ring bond
        )
    )
    return not_ordinary, Chem.MolFromSmarts("[c]!@*")


def _ordinary_attachments(mol: Chem.Mol) -> bool:
    """True when no dummy atom is present and every ring atom with a non-ring bond is ordinary."""
    not_ordinary, aromatic_carbon = _queries()
    if any(mol.HasSubstructMatch(q) for q in not_ordinary):
        return False
    return not any(
        mol.GetAtomWithIdx(match[0]).GetNoImplicit()
        for match in mol.GetSubstructMatches(aromatic_carbon, uniquify=False)
    )


def _children(mol: Chem.Mol) -> dict[str, Chem.Mol] | None:
    """One level of RDKit's ``getMolFragments``: canonical SMILES → fragment, first occurrence.

    Each product of the bond breaker keeps the ring side (the first fragment); its attachment
    point (the template's dummy, atom 1 of the product, the only dummy: the caller checked the
    input has none) is removed as RDKit's ``removeAttachmentPoints`` does, then the fragment is
    sanitized. Raises whatever RDKit raises; None if a product is not laid out as expected.
    """
    out: dict[str, Chem.Mol] = {}
    for products in _breaker().RunReactant(mol, 0):
        frag = Chem.RWMol(products[0])
        if frag.GetNumAtoms() < 2:  # pragma: no cover - RDKit's product layout changed
            return None
        dummy = frag.GetAtomWithIdx(1)
        if dummy.GetAtomicNum() != 0 or dummy.GetDegree() != 1:  # pragma: no cover - idem
            return None
        nbr = dummy.GetNeighbors()[0]
        if nbr.GetIsAromatic() and nbr.GetAtomicNum() not in (0, 6):
            nbr.SetNoImplicit(True)
            nbr.SetNumExplicitHs(1)
        frag.RemoveAtom(1)
        Chem.SanitizeMol(frag)
        smiles = Chem.MolToSmiles(frag)
        if smiles not in out:
            out[smiles] = frag
    return out


def pick_node(
    mol: Chem.Mol,
    smiles: str,
    nrings_target: int,
    num_rings: Callable[[str], int],
    priority: Callable[[str], Priority],
) -> Priority | None:
    """The smallest ``priority`` over the nodes of RDKit's scaffold network of ``mol``.

    Parameters
    ----------
    mol
        The parsed Murcko scaffold (more than ``nrings_target`` rings).
    smiles
        The text ``mol`` was parsed from.
    nrings_target
        The ring count the priority aims at.
    num_rings
        Ring count of a node SMILES, as the priority counts them.
    priority
        Sort key of a node SMILES, whose first entry is ``|num_rings - nrings_target|``; it
        is evaluated only for the nodes closest to the target.

    Returns
    -------
    The minimum key, or None when :func:`_ordinary_attachments` does not hold or a product
    is laid out unexpectedly (use RDKit's full network then). Raises whatever RDKit raises
    while fragmenting.
    """
    flat = _flatten_and_prune(mol, smiles)
    if not _ordinary_attachments(flat):
        return None
    root = Chem.MolToSmiles(flat)
    nodes = {Chem.MolToSmiles(mol), root}  # RDKit: the input and its flattened form
    seen = {root}
    stack = [(root, flat)]
    while stack:
        node_smiles, node = stack.pop()
        if num_rings(node_smiles) <= nrings_target:
            continue  # its descendants are further from the target than it is
        children = _children(node)
        if children is None:  # pragma: no cover - RDKit's product layout changed
            return None
        for child_smiles, child in children.items():
            nodes.add(child_smiles)
            if child_smiles not in seen:
                seen.add(child_smiles)
                stack.append((child_smiles, child))
    # The priority's first entry is |rings - target|: only the closest nodes can be the minimum.
    distance = {s: abs(num_rings(s) - nrings_target) for s in nodes}
    closest = min(distance.values())
    return min(priority(s) for s, d in distance.items() if d == closest)


__all__ = ["BOND_BREAKER", "Priority", "pick_node"]
