"""Graph trunk over pharmafl.chem's PackedGraphs: batching and a few training steps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pharmafl.model import (
    GraphInputBatcher,
    GraphTrunkConfig,
    LocalTrainer,
    MultiTaskModel,
    TrainConfig,
    export_trunk,
    fit_trunk_to_data,
    load_prepared,
    local_model_config,
    write_synthetic_prepared,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

chem_graphs = pytest.importorskip("pharmafl.chem.graphs", reason="pharmafl.chem graphs missing")


@pytest.fixture(scope="module")
def graph_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    write_synthetic_prepared(
        root / "prepared",
        n_rows=120,
        n_features=64,
        n_cls_tasks=3,
        n_reg_tasks=2,
        label_density=0.5,
        with_graphs=True,
        seed=4,
    )
    return load_prepared(root / "prepared", with_graphs=True)


def test_graph_batcher_matches_per_graph_conversion(graph_data) -> None:
    from torch_geometric.data import Batch

    rows = np.array([7, 2, 50, 2])
    ours = GraphInputBatcher(graph_data.graphs)(rows)
    ref = Batch.from_data_list([graph_data.graphs.to_pyg(int(r)) for r in rows])
    assert ours.num_graphs == 4
    for name in ("x", "edge_index", "edge_attr", "batch"):
        assert torch.equal(getattr(ours, name), getattr(ref, name)), name


def test_real_molecules_pack_and_embed() -> None:
    from rdkit import Chem

    mols = [Chem.MolFromSmiles(s) for s in ("CCO", "c1ccccc1O", "CC(=O)N")]
    packed = chem_graphs.PackedGraphs.from_mols(mols)
    trunk_cfg = GraphTrunkConfig(hidden_size=8, num_layers=2)
    model = MultiTaskModel.from_config(local_model_config(trunk_cfg, 2, 0))
    out = model.embed(GraphInputBatcher(packed)(np.arange(3)))
    assert out.shape == (3, 8)


@pytest.mark.parametrize("conv", ["gine", "attentivefp"])
def test_graph_trunk_trains_a_few_steps(graph_data, conv) -> None:
    trunk = fit_trunk_to_data(
        GraphTrunkConfig(conv=conv, hidden_size=16, num_layers=2, dropout=0.0, head_dropout=0.0),
        graph_data,
    )
    torch.manual_seed(0)
    model = MultiTaskModel.from_config(
        local_model_config(trunk, graph_data.n_cls_tasks, graph_data.n_reg_tasks)
    )
    before = export_trunk(model)
    trainer = LocalTrainer(model, graph_data, TrainConfig(lr=0.01, batch_size=16, seed=1))
    rows = trainer.train_rows[:32]
    losses = [trainer.train_step(rows) for _ in range(8)]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    after = export_trunk(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    val = trainer.evaluate("validation")
    assert val.classification is not None and val.regression is not None


def test_graph_batch_norm_state_is_float_and_one_row_batches_use_running_stats() -> None:
    trunk_cfg = GraphTrunkConfig(hidden_size=8, num_layers=2)
    model = MultiTaskModel.from_config(local_model_config(trunk_cfg, 2, 0), seed=0)
    state = export_trunk(model)
    # Running statistics travel with the trunk (they are averaged like weights); no int64
    # ``num_batches_tracked`` counter that an average would make meaningless.
    assert any(k.endswith("running_mean") for k in state)
    assert all(v.dtype == torch.float32 for v in state.values()), {
        k: v.dtype for k, v in state.items() if v.dtype != torch.float32
    }
    from rdkit import Chem

    packed = chem_graphs.PackedGraphs.from_mols([Chem.MolFromSmiles("c1ccccc1O")])
    model.train()
    model.embed(GraphInputBatcher(packed)(np.arange(1)))
    after = export_trunk(model)
    # One molecule: the pooled embedding's norm has no batch statistics and keeps its running
    # ones; the atom-level norms saw 7 atoms and updated theirs.
    readout = [k for k in state if k.startswith("trunk.readout_norm.running")]
    assert len(readout) == 2
    assert all(torch.equal(state[k], after[k]) for k in readout)
    assert not torch.equal(state["trunk.norms.0.running_mean"], after["trunk.norms.0.running_mean"])


def _structure_task(smiles: list[str]) -> tuple[list[Any], np.ndarray]:
    """A real-molecule task a graph network must learn: topological polar surface area ≥ 90 Å².

    TPSA sums contributions of N/O/S/P atoms by their bonding and hydrogens (Ertl et al.,
    J. Med. Chem. 43:3714, 2000): learnable from atoms, bonds and neighbourhoods only. With the
    default batch norm the graph trunk reaches ROC-AUC ≈ 0.97 here; the former per-graph layer
    norm ≈ 0.80.
    """
    from rdkit import Chem
    from rdkit.Chem import rdMolDescriptors

    mols = [m for m in map(Chem.MolFromSmiles, smiles) if m is not None]  # 4 do not parse
    labels = np.array([rdMolDescriptors.CalcTPSA(m) >= 90 for m in mols], np.float32)
    return mols, labels


def test_graph_trunk_learns_a_structural_property_of_real_molecules() -> None:
    from pathlib import Path

    import pandas as pd
    from sklearn.metrics import roc_auc_score

    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "chem"
    smiles = pd.read_csv(fixtures / "fsmol_sample.csv")["smiles"].tolist()
    mols, labels = _structure_task(smiles)
    assert 0.2 < labels.mean() < 0.8  # a balanced enough task on the FS-Mol sample
    packed = chem_graphs.PackedGraphs.from_mols(mols)
    batcher = GraphInputBatcher(packed)
    trunk_cfg = GraphTrunkConfig(hidden_size=32, num_layers=3, dropout=0.0, head_dropout=0.0)
    model = MultiTaskModel.from_config(local_model_config(trunk_cfg, 1, 0), seed=3)
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    train, test = np.arange(0, 100), np.arange(100, len(mols))
    rng = np.random.default_rng(0)
    y = torch.from_numpy(labels)
    for _ in range(30):
        model.train()
        for rows in np.array_split(rng.permutation(train), 4):
            logits = model(batcher(rows)).cls_logits
            assert logits is not None
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y[rows])
            optim.zero_grad()
            loss.backward()
            optim.step()
    model.eval()
    with torch.no_grad():
        scores = model(batcher(test)).cls_logits
    assert scores is not None
    assert roc_auc_score(labels[test], scores[:, 0].numpy()) > 0.9


def test_a_graph_trunk_refuses_graphs_of_another_vocabulary_and_unknown_layers(
    graph_data,
) -> None:
    from pharmafl.common.errors import ConfigError, ModelError
    from pharmafl.model.trunks import build_trunk

    fitted = fit_trunk_to_data(GraphTrunkConfig(hidden_size=8, num_layers=1), graph_data)
    wider = fitted.model_copy(update={"atom_cardinalities": (*fitted.atom_cardinalities[:-1], 9)})
    model = MultiTaskModel.from_config(
        local_model_config(wider, graph_data.n_cls_tasks, graph_data.n_reg_tasks)
    )
    with pytest.raises(ModelError, match="vocabulary does not match the graph trunk"):
        LocalTrainer(model, graph_data, TrainConfig())
    with pytest.raises(ConfigError, match="unknown graph conv 'gcn'; valid: gine, attentivefp"):
        build_trunk(fitted.model_copy(update={"conv": "gcn"}))
    with pytest.raises(ConfigError, match="unknown graph norm 'group'; valid: batch, layer"):
        build_trunk(fitted.model_copy(update={"norm": "group"}))
    with pytest.raises(ConfigError, match="unknown pooling 'attention'; valid: sum, mean, max"):
        build_trunk(fitted.model_copy(update={"pooling": "attention"}))


def test_a_graph_trunk_without_graphs_is_refused(graph_data) -> None:
    import dataclasses

    from pharmafl.common.errors import ModelError

    trunk = fit_trunk_to_data(GraphTrunkConfig(hidden_size=8, num_layers=1), graph_data)
    model = MultiTaskModel.from_config(
        local_model_config(trunk, graph_data.n_cls_tasks, graph_data.n_reg_tasks)
    )
    with pytest.raises(ModelError, match="needs molecular graphs but none were loaded"):
        LocalTrainer(model, dataclasses.replace(graph_data, graphs=None), TrainConfig())
