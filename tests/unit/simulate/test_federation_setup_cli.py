"""``pharmafl federation setup``: the plan it writes, differential privacy included."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from typer.testing import CliRunner

from pharmafl.cli.main import app
from pharmafl.contract import FederationPlan
from pharmafl.layout import ConsortiumLayout


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    for key in dst.glob("partners/*/key.json"):
        os.chmod(key, 0o600)
    return dst


def test_setup_writes_dp_into_the_plan(small_consortium: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    with_dp = _copy(small_consortium, tmp_path / "dp")
    args = ["federation", "setup", str(with_dp), "--hidden", "16", "--dp-noise-multiplier", "1.5"]
    res = runner.invoke(app, [*args, "--dp-clip-norm", "0.2", "--dp-min-contributors", "3"])
    assert res.exit_code == 0, res.output
    plan = FederationPlan.model_validate_json(ConsortiumLayout(with_dp).operator.plan.read_text())
    assert plan.dp is not None
    assert (plan.dp.noise_multiplier, plan.dp.clip_norm, plan.dp.min_contributors) == (1.5, 0.2, 3)

    without = _copy(small_consortium, tmp_path / "plain")
    res = runner.invoke(app, ["federation", "setup", str(without), "--hidden", "16"])
    assert res.exit_code == 0, res.output
    plan = FederationPlan.model_validate_json(ConsortiumLayout(without).operator.plan.read_text())
    assert plan.dp is None


def test_setup_fits_the_quantization_clip_to_the_dp_noise(
    small_consortium: Path, tmp_path: Path
) -> None:
    target = _copy(small_consortium, tmp_path / "wide")
    args = ["federation", "setup", str(target), "--hidden", "16", "--dp-noise-multiplier", "3"]
    res = CliRunner().invoke(app, [*args, "--dp-clip-norm", "0.9"])
    assert res.exit_code == 0, res.output
    plan = FederationPlan.model_validate_json(ConsortiumLayout(target).operator.plan.read_text())
    assert plan.dp is not None and plan.quantization.dp_violation(plan.dp) is None
    assert plan.quantization.clip > 1.0  # raised from the default so the noise is not clamped


def test_setup_refuses_bad_dp_in_one_line(small_consortium: Path, tmp_path: Path) -> None:
    from pharmafl.common.errors import ConfigError

    target = _copy(small_consortium, tmp_path / "bad")
    args = ["federation", "setup", str(target), "--dp-noise-multiplier", "1"]
    res = CliRunner().invoke(app, [*args, "--dp-min-contributors", "0"])
    assert isinstance(res.exception, ConfigError)
    assert "min_contributors" in str(res.exception)
    assert not ConsortiumLayout(target).operator.plan.exists()  # nothing was set up
    assert not ConsortiumLayout(target).operator.identity.exists()


def test_setup_writes_the_local_recipe(small_consortium: Path, tmp_path: Path) -> None:
    """Head fine-tuning, local steps, batch ratio, weight decay, FedProx, a kept optimizer:
    the plan's."""
    cdir = _copy(small_consortium, tmp_path / "recipe")
    res = CliRunner().invoke(
        app,
        [
            "federation", "setup", str(cdir), "--hidden", "16",
            "--head-finetune-epochs", "5", "--min-steps", "25", "--batch-ratio", "0.05",
            "--weight-decay", "1e-5", "--prox-mu", "0.01", "--fresh-optimizer",
            "--weight-cap", "3000",
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    local = FederationPlan.model_validate_json(
        ConsortiumLayout(cdir).operator.plan.read_text()
    ).local
    assert (local.head_finetune_epochs, local.min_steps, local.batch_ratio) == (5, 25, 0.05)
    assert (local.weight_decay, local.prox_mu, local.batch_size) == (1e-5, 0.01, None)
    assert not local.keep_optimizer and local.weight_cap == 3000


def test_setup_compresses_updates_on_request(small_consortium: Path, tmp_path: Path) -> None:
    from pharmafl.common.errors import ConfigError
    from pharmafl.secure.quantize import COMPRESSED_CLIP

    target = _copy(small_consortium, tmp_path / "ring8")
    args = ["federation", "setup", str(target), "--hidden", "16", "--ring-bits", "8"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    plan = FederationPlan.model_validate_json(ConsortiumLayout(target).operator.plan.read_text())
    assert plan.quantization.ring_bits == 8 and plan.quantization.compressed
    assert plan.quantization.clip == COMPRESSED_CLIP  # round 0's clip on update entries
    assert plan.local.keep_optimizer  # the measured default (docs/benchmarks.md)

    bad = _copy(small_consortium, tmp_path / "ring12")
    res = CliRunner().invoke(app, ["federation", "setup", str(bad), "--ring-bits", "12"])
    assert isinstance(res.exception, ConfigError)
    assert "ring_bits" in str(res.exception)
    assert not ConsortiumLayout(bad).operator.plan.exists()


def test_setup_refuses_a_consortium_that_has_identities(
    small_consortium: Path, tmp_path: Path
) -> None:
    """A second setup would replace every identity and key the partners already pinned."""
    from pharmafl.common.errors import FederationError

    cdir = _copy(small_consortium, tmp_path / "twice")
    runner = CliRunner()
    assert runner.invoke(app, ["federation", "setup", str(cdir), "--hidden", "16"]).exit_code == 0
    op = ConsortiumLayout(cdir).operator
    identity = op.identity
    before = {p: p.read_bytes() for p in sorted(identity.rglob("*")) if p.is_file()}
    plan = op.plan.read_bytes()
    res = runner.invoke(app, ["federation", "setup", str(cdir), "--hidden", "32"])
    assert isinstance(res.exception, FederationError), res.output
    assert "already has identities" in str(res.exception)
    assert {p: p.read_bytes() for p in sorted(identity.rglob("*")) if p.is_file()} == before
    assert op.plan.read_bytes() == plan  # the first setup's
