"""Trunk/head boundary: export never includes a head, import by name, rebuild from config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pharmafl.common.errors import ConfigError, DataNotFoundError, ModelError
from pharmafl.model import (
    GraphTrunkConfig,
    HeadConfig,
    ModelConfig,
    MultiTaskModel,
    SparseTrunkConfig,
    TrainConfig,
    export_trunk,
    import_trunk,
    input_batcher,
    load_model_dir,
    load_prepared,
    predict_rows,
    save_model_dir,
    trunk_state_names,
)


def _config(n_cls: int = 4, n_reg: int = 2, heads: tuple[str, ...] = ("local",)) -> ModelConfig:
    return ModelConfig(
        trunk=SparseTrunkConfig(input_size=64, hidden_sizes=(16, 8), dropouts=(0.1, 0.2)),
        heads={h: HeadConfig(n_cls_tasks=n_cls, n_reg_tasks=n_reg) for h in heads},
    )


@pytest.mark.parametrize(
    "trunk",
    [
        SparseTrunkConfig(input_size=64, hidden_sizes=(16, 8), dropouts=(0.1, 0.2)),
        GraphTrunkConfig(hidden_size=8, num_layers=2),
        GraphTrunkConfig(conv="attentivefp", hidden_size=8, num_layers=2),
    ],
)
def test_export_trunk_never_includes_a_head(trunk) -> None:
    model = MultiTaskModel.from_config(
        ModelConfig(
            trunk=trunk,
            heads={"a": HeadConfig(n_cls_tasks=3), "b": HeadConfig(n_reg_tasks=2)},
        )
    )
    state = export_trunk(model)
    assert state
    assert all(k.startswith("trunk.") for k in state)
    head_keys = [k for k in model.state_dict() if k.startswith("heads.")]
    assert head_keys and not set(head_keys) & set(state)
    assert sorted(state) == sorted(trunk_state_names(model))
    # Copies, not views of the live parameters.
    name = next(iter(state))
    state[name].add_(1.0)
    assert not torch.equal(state[name], model.state_dict()[name])


def test_import_trunk_by_name_leaves_heads_alone() -> None:
    torch.manual_seed(0)
    src = MultiTaskModel.from_config(_config(4, 2))
    dst = MultiTaskModel.from_config(_config(7, 0, heads=("x", "y")))  # other heads, same trunk
    heads_before = {k: v.clone() for k, v in dst.state_dict().items() if k.startswith("heads.")}
    import_trunk(dst, export_trunk(src))
    for k, v in export_trunk(src).items():
        assert torch.equal(dst.state_dict()[k], v)
    for k, v in heads_before.items():
        assert torch.equal(dst.state_dict()[k], v)


def test_import_trunk_rejects_heads_and_mismatches() -> None:
    model = MultiTaskModel.from_config(_config())
    state = export_trunk(model)
    with pytest.raises(ModelError, match=r"only hold 'trunk\.'"):
        import_trunk(model, {**state, "heads.local.classification.weight": torch.zeros(4, 8)})
    missing = dict(state)
    missing.pop(next(iter(missing)))
    with pytest.raises(ModelError, match="missing"):
        import_trunk(model, missing)
    other = MultiTaskModel.from_config(
        ModelConfig(
            trunk=SparseTrunkConfig(input_size=64, hidden_sizes=(16, 9)),
            heads={"local": HeadConfig(n_cls_tasks=1)},
        )
    )
    with pytest.raises(ModelError, match="shapes differ"):
        import_trunk(model, export_trunk(other))


def test_model_rebuilds_from_saved_hyperparameters(small_prepared, tmp_path) -> None:
    data = load_prepared(small_prepared / "prepared")
    cfg = ModelConfig(
        trunk=SparseTrunkConfig(input_size=data.n_features, hidden_sizes=(12,), dropouts=(0.3,)),
        heads={"local": HeadConfig(n_cls_tasks=data.n_cls_tasks, n_reg_tasks=data.n_reg_tasks)},
    )
    torch.manual_seed(3)
    model = MultiTaskModel.from_config(cfg)
    model.head("local").set_regression_stats(
        np.arange(data.n_reg_tasks, dtype=np.float32), np.full(data.n_reg_tasks, 2.0)
    )
    save_model_dir(tmp_path / "m", model, TrainConfig(epochs=3))
    again, hp = load_model_dir(tmp_path / "m")
    assert hp.model == cfg and hp.train.epochs == 3
    rows = np.arange(50)
    a = predict_rows(model, input_batcher(model, data), rows)
    b = predict_rows(again, input_batcher(again, data), rows)
    assert a.cls_prob is not None and b.cls_prob is not None
    np.testing.assert_array_equal(a.cls_prob, b.cls_prob)
    np.testing.assert_array_equal(a.reg_value, b.reg_value)
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k


def test_config_validation_messages() -> None:
    with pytest.raises(ValueError, match="one dropout per hidden layer"):
        SparseTrunkConfig(hidden_sizes=(4, 4), dropouts=(0.1,))
    with pytest.raises(ValueError, match=r"every dropout must be in \[0, 1\)"):
        SparseTrunkConfig(hidden_sizes=(4, 4), dropouts=(0.1, 1.0))
    with pytest.raises(ValueError, match="hidden sizes must be positive"):
        SparseTrunkConfig(hidden_sizes=(4, 0))
    with pytest.raises(ValueError, match="cardinalities must be positive"):
        GraphTrunkConfig(bond_cardinalities=(5, 0, 2))
    with pytest.raises(ValueError, match="at least one"):
        HeadConfig()
    with pytest.raises(ValueError, match="must differ"):
        TrainConfig(fold_va=1, fold_te=1)
    with pytest.raises(ValueError, match="identifier"):
        ModelConfig(trunk=SparseTrunkConfig(), heads={"bad name": HeadConfig(n_cls_tasks=1)})


def test_an_unknown_head_is_named_with_the_heads_there_are() -> None:
    model = MultiTaskModel.from_config(_config(heads=("local", "public")))
    with pytest.raises(ModelError, match="no head 'alpha'; it has: local, public"):
        model.head("alpha")


def test_trunk_builders_refuse_what_they_cannot_build() -> None:
    from pharmafl.model.trunks import SparseInputTrunk, build_trunk

    with pytest.raises(ConfigError, match="at least one hidden size"):
        SparseInputTrunk(64, ())
    with pytest.raises(ConfigError, match="unknown non_linearity 'gelu'; valid: relu, tanh"):
        SparseInputTrunk(64, (8,), non_linearity="gelu")
    unknown = SparseTrunkConfig.model_construct(kind="transformer")  # e.g. a newer plan
    with pytest.raises(ConfigError, match="unknown trunk kind 'transformer'; valid: graph, sparse"):
        build_trunk(unknown)


def test_only_a_model_built_from_its_config_is_saved(tmp_path) -> None:
    """Without its config nobody could rebuild it: refused before anything is written."""
    built = MultiTaskModel.from_config(_config())
    bare = MultiTaskModel(built.trunk, dict(built.heads))
    with pytest.raises(ModelError, match="only models built from a ModelConfig"):
        save_model_dir(tmp_path / "m", bare, TrainConfig(epochs=1))
    assert not (tmp_path / "m").exists()


def test_a_folder_without_hyperparameters_is_not_a_model(tmp_path) -> None:
    from pharmafl.model.persist import load_hyperparameters

    with pytest.raises(DataNotFoundError, match="model hyperparameters not found") as err:
        load_hyperparameters(tmp_path)
    assert "pharmafl baseline" in (err.value.fix or "")


def test_saved_weights_missing_and_a_trunk_without_parameters(tmp_path) -> None:
    from pharmafl.model.persist import load_model_dir

    model = MultiTaskModel.from_config(_config())
    save_model_dir(tmp_path / "m", model, TrainConfig(epochs=1))
    (tmp_path / "m" / "model.pt").unlink()
    with pytest.raises(DataNotFoundError, match="model weights not found"):
        load_model_dir(tmp_path / "m")
    with pytest.raises(ModelError, match="a model needs at least one head"):
        MultiTaskModel(model.trunk, {})
    hollow = MultiTaskModel(torch.nn.Identity(), dict(model.heads))
    with pytest.raises(ModelError, match=r"no parameters under 'trunk\.'"):
        export_trunk(hollow)
