"""``pharmafl federation init-trunk``: the initial trunk from a plan, reproducible by seed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.contract import FederationPlan
from pharmafl.contract.trunk import trunk_from_bytes


def _plan(tmp_path: Path, seed: int) -> Path:
    plan = FederationPlan(
        seed=seed, trunk={"kind": "sparse", "input_size": 256, "hidden_sizes": [16, 8]}
    )
    path = tmp_path / f"plan-{seed}.json"
    path.write_text(plan.model_dump_json())
    return path


def test_init_trunk_is_trunk_only_and_seeded(tmp_path: Path) -> None:
    runner = CliRunner()
    outs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / f"{name}.npz"
        res = runner.invoke(
            app, ["federation", "init-trunk", str(_plan(tmp_path, seed)), "--out", str(out)]
        )
        assert res.exit_code == 0, res.output
        outs.append(out.read_bytes())
    state = trunk_from_bytes(outs[0])
    assert state and all(k.startswith("trunk.") for k in state)
    assert state["trunk.input.weight"].shape == (256, 16)
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
