"""Molecular graphs with a fixed, documented feature vocabulary (for the graph trunk).

Every atom and bond feature is a *category index* into a list fixed by
:class:`GraphVocabulary` (a shared schema, ``schemas/graph_vocabulary.schema.json``); values not
in a list map to its last index, "other". All partners therefore produce identical integer
features for the same standardized molecule, and a model can embed or one-hot them with the
cardinalities the vocabulary gives.

Atom features (columns of ``x``, in this order): atomic number, degree (explicit neighbours),
formal charge, total hydrogen count, hybridization, aromatic (0/1), in ring (0/1).
Bond features (columns of ``edge_attr``): bond type, conjugated (0/1), in ring (0/1).
Chirality is not featurized: stereochemistry is removed during standardization by default.

The feature set follows the common choices of message-passing models for molecules
(Gilmer et al., ICML 2017; Yang et al., "Analyzing learned molecular representations",
J. Chem. Inf. Model. 59:3370 (2019), chemprop).

Storage: :class:`PackedGraphs` concatenates many graphs. Each bond is stored once (local atom
indices, int32) and expanded into both directions when a graph is read, which halves memory
and disk; atom and bond categories are stored as uint8.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from rdkit import Chem

from pharmafl.chem.errors import MoleculeRejectedError
from pharmafl.common.errors import ChemistryError, DataNotFoundError
from pharmafl.common.io import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from torch_geometric.data import Batch, Data

ATOM_FEATURES: tuple[str, ...] = (
    "atomic_num",
    "degree",
    "formal_charge",
    "num_hs",
    "hybridization",
    "aromatic",
    "in_ring",
)
BOND_FEATURES: tuple[str, ...] = ("bond_type", "conjugated", "in_ring")

_FORMAT_VERSION = 1


class GraphVocabulary(BaseModel):
    """The fixed category lists of atom and bond features (index = position; last = other)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = Field(1, description="Vocabulary version; bump on any change.")
    atomic_numbers: tuple[int, ...] = Field(
        (1, 5, 6, 7, 8, 9, 14, 15, 16, 17, 33, 34, 35, 53),
        description="Atomic numbers with their own category; others share the 'other' one.",
    )
    degrees: tuple[int, ...] = Field((0, 1, 2, 3, 4, 5, 6), description="Explicit degree.")
    formal_charges: tuple[int, ...] = Field((-2, -1, 0, 1, 2), description="Formal charge.")
    num_hs: tuple[int, ...] = Field((0, 1, 2, 3, 4), description="Total attached hydrogens.")
    hybridizations: tuple[str, ...] = Field(
        ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2"),
        description="RDKit HybridizationType names.",
    )
    bond_types: tuple[str, ...] = Field(
        ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC"), description="RDKit BondType names."
    )

    @field_validator(
        "atomic_numbers", "degrees", "formal_charges", "num_hs", "hybridizations", "bond_types"
    )
    @classmethod
    def _unique_non_empty(cls, v: tuple[Any, ...]) -> tuple[Any, ...]:
        if not v:
            raise ValueError("a category list must not be empty")
        if len(set(v)) != len(v):
            raise ValueError("a category list must not repeat values")
        if len(v) > 254:
            raise ValueError("at most 254 categories (plus 'other') per feature")
        return v

    @model_validator(mode="after")
    def _known_rdkit_names(self) -> GraphVocabulary:
        bad = [h for h in self.hybridizations if h not in Chem.HybridizationType.names]
        bad += [b for b in self.bond_types if b not in Chem.BondType.names]
        if bad:
            raise ValueError(f"unknown RDKit hybridization/bond type names: {bad}")
        return self

    @property
    def atom_cardinalities(self) -> tuple[int, ...]:
        """Number of categories of each atom feature column (including 'other')."""
        return (
            len(self.atomic_numbers) + 1,
            len(self.degrees) + 1,
            len(self.formal_charges) + 1,
            len(self.num_hs) + 1,
            len(self.hybridizations) + 1,
            2,
            2,
        )

    @property
    def bond_cardinalities(self) -> tuple[int, ...]:
        """Number of categories of each bond feature column (including 'other')."""
        return (len(self.bond_types) + 1, 2, 2)


DEFAULT_GRAPH_VOCABULARY = GraphVocabulary()


@dataclass(frozen=True)
class MolGraph:
    """One molecular graph.

    Attributes
    ----------
    x
        int64 ``[n_atoms, 7]`` atom category indices (columns: :data:`ATOM_FEATURES`).
    edge_index
        int64 ``[2, 2 * n_bonds]``; bond ``k`` gives edges ``2k`` (begin→end) and ``2k+1``
        (end→begin).
    edge_attr
        int64 ``[2 * n_bonds, 3]`` bond category indices (columns: :data:`BOND_FEATURES`).
    """

    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray

    @property
    def num_nodes(self) -> int:
        """Number of atoms."""
        return int(self.x.shape[0])


class _Encoder:
    """Fast value → category lookups for one vocabulary."""

    def __init__(self, vocab: GraphVocabulary) -> None:
        self.vocab = vocab
        self.atomic = {z: i for i, z in enumerate(vocab.atomic_numbers)}
        self.degree = {d: i for i, d in enumerate(vocab.degrees)}
        self.charge = {c: i for i, c in enumerate(vocab.formal_charges)}
        self.hs = {h: i for i, h in enumerate(vocab.num_hs)}
        self.hyb = {Chem.HybridizationType.names[h]: i for i, h in enumerate(vocab.hybridizations)}
        self.bond = {Chem.BondType.names[b]: i for i, b in enumerate(vocab.bond_types)}
        self.other = tuple(c - 1 for c in vocab.atom_cardinalities)
        self.bond_other = len(vocab.bond_types)

    def encode(self, mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(atom features uint8 [n, 7], bonds int32 [m, 2], bond features uint8 [m, 3])."""
        oz, od, oc, oh, ohy = self.other[:5]
        atomic, degree, charge, hs, hyb = self.atomic, self.degree, self.charge, self.hs, self.hyb
        # Index access is faster than RDKit's Python-level atom/bond sequence iterators.
        atom_at, bond_at = mol.GetAtomWithIdx, mol.GetBondWithIdx
        rows = [
            (
                atomic.get(a.GetAtomicNum(), oz),
                degree.get(a.GetDegree(), od),
                charge.get(a.GetFormalCharge(), oc),
                hs.get(a.GetTotalNumHs(), oh),
                hyb.get(a.GetHybridization(), ohy),
                int(a.GetIsAromatic()),
                int(a.IsInRing()),
            )
            for a in map(atom_at, range(mol.GetNumAtoms()))
        ]
        n_feats = len(ATOM_FEATURES)
        x = np.array(rows, dtype=np.uint8).reshape(len(rows), n_feats)
        bond, bo = self.bond, self.bond_other
        brows = [
            (
                b.GetBeginAtomIdx(),
                b.GetEndAtomIdx(),
                bond.get(b.GetBondType(), bo),
                int(b.GetIsConjugated()),
                int(b.IsInRing()),
            )
            for b in map(bond_at, range(mol.GetNumBonds()))
        ]
        arr = np.array(brows, dtype=np.int32).reshape(len(brows), 5)
        return x, np.ascontiguousarray(arr[:, :2]), arr[:, 2:].astype(np.uint8)


_ENCODERS: dict[GraphVocabulary, _Encoder] = {}


def _encoder(vocab: GraphVocabulary) -> _Encoder:
    enc = _ENCODERS.get(vocab)
    if enc is None:
        enc = _ENCODERS[vocab] = _Encoder(vocab)
    return enc


def encode_graph(
    mol: Chem.Mol, vocabulary: GraphVocabulary = DEFAULT_GRAPH_VOCABULARY
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compact graph arrays of ``mol``: atoms uint8 ``[n, 7]``, bonds int32 ``[m, 2]``,
    bond features uint8 ``[m, 3]`` (each bond once).

    Raises
    ------
    MoleculeRejectedError
        ``graph`` if the molecule has no atoms or RDKit fails.
    """
    if mol is None or mol.GetNumAtoms() == 0:
        raise MoleculeRejectedError("graph", "the molecule has no atoms.")
    try:
        return _encoder(vocabulary).encode(mol)
    except Exception as exc:  # RDKit raises several unrelated types
        raise MoleculeRejectedError("graph", f"graph featurization failed: {exc}") from None


def _expand(atoms: np.ndarray, bonds: np.ndarray, bond_feats: np.ndarray) -> MolGraph:
    m = bonds.shape[0]
    edge_index = np.empty((2, 2 * m), dtype=np.int64)
    edge_index[0, 0::2] = bonds[:, 0]
    edge_index[1, 0::2] = bonds[:, 1]
    edge_index[0, 1::2] = bonds[:, 1]
    edge_index[1, 1::2] = bonds[:, 0]
    edge_attr = np.repeat(bond_feats.astype(np.int64), 2, axis=0)
    return MolGraph(x=atoms.astype(np.int64), edge_index=edge_index, edge_attr=edge_attr)


def mol_to_graph(mol: Chem.Mol, vocabulary: GraphVocabulary = DEFAULT_GRAPH_VOCABULARY) -> MolGraph:
    """The molecular graph of ``mol`` (atoms in RDKit order; ``mol`` is not modified).

    Raises
    ------
    MoleculeRejectedError
        ``graph`` if the molecule has no atoms or RDKit fails.
    """
    return _expand(*encode_graph(mol, vocabulary))


def _gather(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the concatenated segments ``rows`` and the new offsets."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    total = int(new_offsets[-1])
    idx = np.arange(total, dtype=np.int64) + np.repeat(starts - new_offsets[:-1], lengths)
    return idx, new_offsets


class PackedGraphs:
    """Many molecular graphs in a few concatenated arrays (``graphs.npz``).

    Parameters
    ----------
    atom_features
        uint8 ``[total_atoms, 7]``.
    bonds
        int32 ``[total_bonds, 2]``, atom indices local to each graph.
    bond_features
        uint8 ``[total_bonds, 3]``.
    atom_offsets, bond_offsets
        int64 ``[n_graphs + 1]``: graph ``i`` owns atoms ``atom_offsets[i]:atom_offsets[i+1]``
        and bonds ``bond_offsets[i]:bond_offsets[i+1]``.
    vocabulary
        The vocabulary the categories index into.
    """

    def __init__(
        self,
        atom_features: np.ndarray,
        bonds: np.ndarray,
        bond_features: np.ndarray,
        atom_offsets: np.ndarray,
        bond_offsets: np.ndarray,
        vocabulary: GraphVocabulary = DEFAULT_GRAPH_VOCABULARY,
    ) -> None:
        self.atom_features = np.asarray(atom_features, dtype=np.uint8).reshape(
            -1, len(ATOM_FEATURES)
        )
        self.bonds = np.asarray(bonds, dtype=np.int32).reshape(-1, 2)
        self.bond_features = np.asarray(bond_features, dtype=np.uint8).reshape(
            -1, len(BOND_FEATURES)
        )
        self.atom_offsets = np.asarray(atom_offsets, dtype=np.int64)
        self.bond_offsets = np.asarray(bond_offsets, dtype=np.int64)
        self.vocabulary = vocabulary
        self._check()

    def _check(self) -> None:
        ao, bo = self.atom_offsets, self.bond_offsets
        problems = []
        if ao.ndim != 1 or bo.ndim != 1 or len(ao) != len(bo) or len(ao) < 1:
            problems.append("offset arrays must be 1-D, of equal length n_graphs + 1")
        elif ao[0] != 0 or bo[0] != 0 or np.any(np.diff(ao) < 0) or np.any(np.diff(bo) < 0):
            problems.append("offsets must start at 0 and never decrease")
        elif ao[-1] != len(self.atom_features) or bo[-1] != len(self.bond_features):
            problems.append("the last offsets must equal the atom and bond counts")
        elif len(self.bonds) != len(self.bond_features):
            problems.append("bonds and bond features differ in length")
        if problems:
            raise ChemistryError(f"inconsistent packed graphs: {problems[0]}.")

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def empty(cls, vocabulary: GraphVocabulary = DEFAULT_GRAPH_VOCABULARY) -> PackedGraphs:
        """No graphs."""
        return cls.from_arrays([], vocabulary)

    @classmethod
    def from_arrays(
        cls,
        parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
        vocabulary: GraphVocabulary = DEFAULT_GRAPH_VOCABULARY,
    ) -> PackedGraphs:
        """Pack the outputs of :func:`encode_graph`, in order."""
        n_atoms = np.fromiter((p[0].shape[0] for p in parts), dtype=np.int64, count=len(parts))
        n_bonds = np.fromiter((p[1].shape[0] for p in parts), dtype=np.int64, count=len(parts))
        ao = np.zeros(len(parts) + 1, dtype=np.int64)
        bo = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum(n_atoms, out=ao[1:])
        np.cumsum(n_bonds, out=bo[1:])
        if parts:
            atoms = np.concatenate([p[0] for p in parts])
            bonds = np.concatenate([p[1] for p in parts])
            bfeat = np.concatenate([p[2] for p in parts])
        else:
            atoms = np.zeros((0, len(ATOM_FEATURES)), dtype=np.uint8)
            bonds = np.zeros((0, 2), dtype=np.int32)
            bfeat = np.zeros((0, len(BOND_FEATURES)), dtype=np.uint8)
        return cls(atoms, bonds, bfeat, ao, bo, vocabulary)

    @classmethod
    def from_mols(
        cls, mols: Sequence[Chem.Mol], vocabulary: GraphVocabulary = DEFAULT_GRAPH_VOCABULARY
    ) -> PackedGraphs:
        """Featurize and pack molecules (raises on the first bad one)."""
        return cls.from_arrays([encode_graph(m, vocabulary) for m in mols], vocabulary)

    @classmethod
    def concatenate(cls, parts: Sequence[PackedGraphs]) -> PackedGraphs:
        """Join packs in order; all must share one vocabulary."""
        if not parts:
            return cls.empty()
        vocab = parts[0].vocabulary
        if any(p.vocabulary != vocab for p in parts):
            raise ChemistryError("cannot join graphs built with different vocabularies.")
        ao = [np.zeros(1, dtype=np.int64)]
        bo = [np.zeros(1, dtype=np.int64)]
        a_base = b_base = 0
        for p in parts:
            ao.append(p.atom_offsets[1:] + a_base)
            bo.append(p.bond_offsets[1:] + b_base)
            a_base += int(p.atom_offsets[-1])
            b_base += int(p.bond_offsets[-1])
        return cls(
            np.concatenate([p.atom_features for p in parts]),
            np.concatenate([p.bonds for p in parts]),
            np.concatenate([p.bond_features for p in parts]),
            np.concatenate(ao),
            np.concatenate(bo),
            vocab,
        )

    # -- access -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.atom_offsets) - 1

    def __repr__(self) -> str:
        return (
            f"PackedGraphs(n_graphs={len(self)}, atoms={len(self.atom_features)}, "
            f"bonds={len(self.bonds)})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedGraphs):
            return NotImplemented
        return (
            self.vocabulary == other.vocabulary
            and np.array_equal(self.atom_features, other.atom_features)
            and np.array_equal(self.bonds, other.bonds)
            and np.array_equal(self.bond_features, other.bond_features)
            and np.array_equal(self.atom_offsets, other.atom_offsets)
            and np.array_equal(self.bond_offsets, other.bond_offsets)
        )

    __hash__ = None  # type: ignore[assignment]

    def _index(self, i: int) -> int:
        n = len(self)
        j = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"graph index {i} out of range for {n} graphs")
        return j

    def get(self, i: int) -> MolGraph:
        """Graph ``i`` with both edge directions (see :class:`MolGraph`)."""
        j = self._index(i)
        a0, a1 = self.atom_offsets[j], self.atom_offsets[j + 1]
        b0, b1 = self.bond_offsets[j], self.bond_offsets[j + 1]
        return _expand(self.atom_features[a0:a1], self.bonds[b0:b1], self.bond_features[b0:b1])

    def to_pyg(self, i: int) -> Data:
        """Graph ``i`` as a ``torch_geometric.data.Data`` (``x``, ``edge_index``,
        ``edge_attr`` as int64 tensors)."""
        import torch
        from torch_geometric.data import Data

        g = self.get(i)
        return Data(
            x=torch.from_numpy(g.x),
            edge_index=torch.from_numpy(g.edge_index),
            edge_attr=torch.from_numpy(g.edge_attr),
            num_nodes=g.num_nodes,
        )

    def to_pyg_batch(self, rows: Sequence[int] | np.ndarray | None = None) -> Batch:
        """Graphs ``rows`` (default: all) as one ``torch_geometric.data.Batch``.

        Built directly from the packed arrays (no per-graph ``Data`` objects): ``x``,
        ``edge_index`` (global atom indices, both directions), ``edge_attr``, ``batch`` and
        ``ptr``, all int64; ``num_graphs`` works as usual.
        """
        import torch
        from torch_geometric.data import Batch

        sub = self if rows is None else self.select(rows)
        n_atoms = np.diff(sub.atom_offsets)
        n_bonds = np.diff(sub.bond_offsets)
        owner = np.repeat(np.arange(len(sub), dtype=np.int64), n_bonds)
        glob = sub.bonds.astype(np.int64) + sub.atom_offsets[:-1][owner][:, None]
        edge_index = np.empty((2, 2 * len(glob)), dtype=np.int64)
        edge_index[0, 0::2], edge_index[1, 0::2] = glob[:, 0], glob[:, 1]
        edge_index[0, 1::2], edge_index[1, 1::2] = glob[:, 1], glob[:, 0]
        return Batch(
            x=torch.from_numpy(sub.atom_features.astype(np.int64)),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(np.repeat(sub.bond_features.astype(np.int64), 2, axis=0)),
            batch=torch.from_numpy(np.repeat(np.arange(len(sub), dtype=np.int64), n_atoms)),
            ptr=torch.from_numpy(sub.atom_offsets.copy()),
        )

    def select(self, rows: Sequence[int] | np.ndarray) -> PackedGraphs:
        """A new pack with the graphs ``rows``, in that order (repeats allowed)."""
        r = np.asarray(rows, dtype=np.int64).reshape(-1)
        if r.size and (r.min() < -len(self) or r.max() >= len(self)):
            raise IndexError(f"graph rows out of range for {len(self)} graphs")
        r = np.where(r < 0, r + len(self), r)
        a_idx, ao = _gather(self.atom_offsets, r)
        b_idx, bo = _gather(self.bond_offsets, r)
        return PackedGraphs(
            self.atom_features[a_idx],
            self.bonds[b_idx],
            self.bond_features[b_idx],
            ao,
            bo,
            self.vocabulary,
        )

    # -- files --------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (``graphs.npz``, compressed) atomically; return the path.

        The file holds ``format_version`` (int64, 1), ``vocabulary`` (the
        :class:`GraphVocabulary` as JSON text), ``atom_features`` (uint8 ``[atoms, 7]``),
        ``bonds`` (int32 ``[bonds, 2]``, local atom indices, each bond once),
        ``bond_features`` (uint8 ``[bonds, 3]``), ``atom_offsets`` and ``bond_offsets``
        (int64 ``[n_graphs + 1]``). It loads with ``allow_pickle=False``.
        """
        dest = Path(path)
        with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                format_version=np.int64(_FORMAT_VERSION),
                vocabulary=np.array(self.vocabulary.model_dump_json()),
                atom_features=self.atom_features,
                bonds=self.bonds,
                bond_features=self.bond_features,
                atom_offsets=self.atom_offsets,
                bond_offsets=self.bond_offsets,
            )
        return dest

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PackedGraphs:
        """Read a file written by :meth:`save`.

        Raises
        ------
        DataNotFoundError
            If the file is missing.
        ChemistryError
            If it is not a pharmafl graphs file or is inconsistent.
        """
        p = Path(path)
        if not p.is_file():
            raise DataNotFoundError(
                "graphs file not found.", file=p, fix="run `pharmafl prepare` for this partner."
            )
        try:
            with np.load(p, allow_pickle=False) as z:
                version = int(z["format_version"])
                vocab = GraphVocabulary.model_validate_json(str(z["vocabulary"]))
                arrays = {
                    k: z[k]
                    for k in (
                        "atom_features",
                        "bonds",
                        "bond_features",
                        "atom_offsets",
                        "bond_offsets",
                    )
                }
        except (KeyError, ValueError, OSError) as exc:
            raise ChemistryError(
                f"not a pharmafl graphs file ({type(exc).__name__}).",
                file=p,
                fix="regenerate it with `pharmafl prepare`.",
            ) from None
        if version != _FORMAT_VERSION:
            raise ChemistryError(
                f"graphs file format {version}, expected {_FORMAT_VERSION}.",
                file=p,
                fix="regenerate it with this pharmafl version.",
            )
        try:
            return cls(vocabulary=vocab, **arrays)
        except ChemistryError as exc:
            raise ChemistryError(exc.message, file=p, fix="regenerate it.") from None


__all__ = [
    "ATOM_FEATURES",
    "BOND_FEATURES",
    "DEFAULT_GRAPH_VOCABULARY",
    "GraphVocabulary",
    "MolGraph",
    "PackedGraphs",
    "encode_graph",
    "mol_to_graph",
]
