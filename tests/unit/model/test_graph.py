"""Graph trunk over pharmafl.chem's PackedGraphs: batching and a few training steps."""

from __future__ import annotations

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
