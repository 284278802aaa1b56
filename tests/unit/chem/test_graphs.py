"""Molecular graphs: vocabulary, features, packing, npz and PyG round trips."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from rdkit import Chem

from pharmafl.chem import (
    ATOM_FEATURES,
    BOND_FEATURES,
    DEFAULT_GRAPH_VOCABULARY,
    GraphVocabulary,
    PackedGraphs,
    encode_graph,
    mol_to_graph,
)
from pharmafl.chem.errors import MoleculeRejectedError
from pharmafl.common.errors import ChemistryError, DataNotFoundError

V = DEFAULT_GRAPH_VOCABULARY


def test_vocabulary_cardinalities() -> None:
    assert len(V.atom_cardinalities) == len(ATOM_FEATURES) == 7
    assert len(V.bond_cardinalities) == len(BOND_FEATURES) == 3
    assert V.atom_cardinalities[0] == len(V.atomic_numbers) + 1
    assert V.bond_cardinalities == (5, 2, 2)


def test_vocabulary_validation() -> None:
    with pytest.raises(ValidationError):
        GraphVocabulary(atomic_numbers=(6, 6))
    with pytest.raises(ValidationError):
        GraphVocabulary(bond_types=("SINGLE", "QUINTUPLE_ISH"))
    with pytest.raises(ValidationError):
        GraphVocabulary(degrees=())
    with pytest.raises(ValidationError, match="at most 254 categories"):  # one byte per feature
        GraphVocabulary(degrees=tuple(range(255)))
    assert len(GraphVocabulary(degrees=tuple(range(254))).degrees) == 254
    assert GraphVocabulary.model_validate_json(V.model_dump_json()) == V


def test_acetic_acid_features() -> None:
    g = mol_to_graph(Chem.MolFromSmiles("CC(=O)O"))
    c = V.atomic_numbers.index(6)
    o = V.atomic_numbers.index(8)
    sp3 = V.hybridizations.index("SP3")
    sp2 = V.hybridizations.index("SP2")
    zero = V.formal_charges.index(0)
    # atomic_num, degree, formal_charge, num_hs, hybridization, aromatic, in_ring
    assert g.x.tolist() == [
        [c, V.degrees.index(1), zero, V.num_hs.index(3), sp3, 0, 0],
        [c, V.degrees.index(3), zero, V.num_hs.index(0), sp2, 0, 0],
        [o, V.degrees.index(1), zero, V.num_hs.index(0), sp2, 0, 0],
        [o, V.degrees.index(1), zero, V.num_hs.index(1), sp2, 0, 0],
    ]
    assert g.x.dtype == np.int64 and g.edge_index.dtype == np.int64
    assert g.edge_index.tolist() == [[0, 1, 1, 2, 1, 3], [1, 0, 2, 1, 3, 1]]
    single, double = V.bond_types.index("SINGLE"), V.bond_types.index("DOUBLE")
    assert g.edge_attr.tolist() == [
        [single, 0, 0],
        [single, 0, 0],
        [double, 1, 0],
        [double, 1, 0],
        [single, 1, 0],
        [single, 1, 0],
    ]


def test_aromatic_ring_and_other_category() -> None:
    g = mol_to_graph(Chem.MolFromSmiles("c1ccccc1[Sn](C)(C)C"))
    assert g.x[:6, 5].tolist() == [1] * 6 and g.x[:6, 6].tolist() == [1] * 6
    other_element = len(V.atomic_numbers)
    assert g.x[6, 0] == other_element
    aromatic = V.bond_types.index("AROMATIC")
    assert int((g.edge_attr[:, 0] == aromatic).sum()) == 12
    assert g.edge_index.shape == (2, 2 * 10)


def test_single_atom_and_empty() -> None:
    g = mol_to_graph(Chem.MolFromSmiles("C"))
    assert g.num_nodes == 1 and g.edge_index.shape == (2, 0) and g.edge_attr.shape == (0, 3)
    with pytest.raises(MoleculeRejectedError) as info:
        mol_to_graph(Chem.Mol())
    assert info.value.code == "graph"


def _pack(smiles: list[str]) -> PackedGraphs:
    return PackedGraphs.from_mols([Chem.MolFromSmiles(s) for s in smiles])


SMILES = ["CC(=O)O", "c1ccccc1", "C", "CCN(CC)CC", "O=C(O)c1ccccc1"]


def test_packed_get_equals_mol_to_graph() -> None:
    packed = _pack(SMILES)
    assert len(packed) == 5
    for i, s in enumerate(SMILES):
        a, b = packed.get(i), mol_to_graph(Chem.MolFromSmiles(s))
        assert np.array_equal(a.x, b.x)
        assert np.array_equal(a.edge_index, b.edge_index)
        assert np.array_equal(a.edge_attr, b.edge_attr)
    assert np.array_equal(packed.get(-1).x, packed.get(4).x)
    for beyond in (5, -6):  # -6 would wrap round to the last graph
        with pytest.raises(IndexError, match=f"graph index {beyond} out of range for 5"):
            packed.get(beyond)


def test_npz_round_trip(tmp_path) -> None:
    packed = _pack(SMILES)
    path = packed.save(tmp_path / "graphs.npz")
    assert path.name == "graphs.npz" and list(tmp_path.iterdir()) == [path]
    loaded = PackedGraphs.load(path)
    assert loaded == packed
    assert loaded.vocabulary == V


def test_load_errors(tmp_path) -> None:
    with pytest.raises(DataNotFoundError):
        PackedGraphs.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(ChemistryError, match="not a pharmafl graphs file"):
        PackedGraphs.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ChemistryError):
        PackedGraphs.load(tmp_path / "junk.npz")
    saved = _pack(SMILES).save(tmp_path / "graphs.npz")
    with np.load(saved, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(tmp_path / "v2.npz", **{**arrays, "format_version": np.array(2)})
    with pytest.raises(ChemistryError, match="graphs file format 2, expected 1") as err:
        PackedGraphs.load(tmp_path / "v2.npz")
    assert "regenerate" in (err.value.fix or "")


def test_inconsistent_offsets_are_refused() -> None:
    p = _pack(SMILES[:2])
    with pytest.raises(ChemistryError, match="inconsistent"):
        PackedGraphs(p.atom_features, p.bonds, p.bond_features, p.atom_offsets + 1, p.bond_offsets)
    with pytest.raises(ChemistryError, match="inconsistent"):
        PackedGraphs(p.atom_features[:-1], p.bonds, p.bond_features, p.atom_offsets, p.bond_offsets)


def test_select_and_concatenate() -> None:
    packed = _pack(SMILES)
    sel = packed.select([4, 0, 0])
    assert len(sel) == 3
    assert sel == _pack([SMILES[4], SMILES[0], SMILES[0]])
    assert len(packed.select([])) == 0
    joined = PackedGraphs.concatenate([_pack(SMILES[:2]), PackedGraphs.empty(), _pack(SMILES[2:])])
    assert joined == packed
    for beyond in (7, -6):  # -6 would wrap round to the last graph
        with pytest.raises(IndexError, match="out of range for 5 graphs"):
            packed.select([0, beyond])
    other = GraphVocabulary(degrees=(0, 1, 2, 3, 4))
    foreign = PackedGraphs.from_mols([Chem.MolFromSmiles("CCO")], other)
    with pytest.raises(ChemistryError, match="different vocabularies"):
        PackedGraphs.concatenate([packed, foreign])


def test_to_pyg() -> None:
    torch = pytest.importorskip("torch")
    packed = _pack(SMILES)
    data = packed.to_pyg(0)
    g = packed.get(0)
    assert data.num_nodes == 4
    assert data.x.dtype == torch.int64
    assert torch.equal(data.edge_index, torch.from_numpy(g.edge_index))
    assert torch.equal(data.edge_attr, torch.from_numpy(g.edge_attr))


def test_compact_arrays() -> None:
    atoms, bonds, feats = encode_graph(Chem.MolFromSmiles("CCO"))
    assert atoms.dtype == np.uint8 and bonds.dtype == np.int32 and feats.dtype == np.uint8
    assert bonds.tolist() == [[0, 1], [1, 2]]


def test_to_pyg_batch_equals_from_data_list() -> None:
    torch = pytest.importorskip("torch")
    from torch_geometric.data import Batch

    packed = _pack(SMILES)
    rows = [4, 2, 0]
    ours = packed.to_pyg_batch(rows)
    ref = Batch.from_data_list([packed.to_pyg(i) for i in rows])
    assert ours.num_graphs == 3
    for name in ("x", "edge_index", "edge_attr", "batch", "ptr"):
        assert torch.equal(getattr(ours, name), getattr(ref, name)), name
    assert packed.to_pyg_batch().num_graphs == len(SMILES)
