"""``pharmafl train`` (operator) and ``pharmafl federation setup`` (simulated consortia)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

federation_app = typer.Typer(
    help="Set up federated training for a simulated consortium.", no_args_is_help=True
)


@federation_app.command("setup")
def setup(
    consortium_dir: Annotated[Path, typer.Argument(help="Folder from `consortium simulate`.")],
    rounds: Annotated[int, typer.Option(min=1, help="Round budget.")] = 10,
    hidden: Annotated[str, typer.Option(help="Trunk hidden sizes, comma-separated.")] = "2000",
    dropout: Annotated[float, typer.Option(min=0.0, max=0.95, help="Trunk dropout.")] = 0.6,
    local_epochs: Annotated[float, typer.Option(help="Local epochs per round.")] = 1.0,
    lr: Annotated[float, typer.Option(help="Partner learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Partner batch size.")] = 512,
    server_optimizer: Annotated[str, typer.Option(help="fedavg, fedavgm, fedadam, fedyogi.")] = (
        "fedavg"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the initial trunk and local training.")] = 0,
    dp_noise_multiplier: Annotated[
        float | None,
        typer.Option(help="Differential privacy: noise multiplier z (off when not given)."),
    ] = None,
    dp_clip_norm: Annotated[
        float, typer.Option(help="Differential privacy: L2 bound C on each weighted update.")
    ] = 0.1,
    dp_min_contributors: Annotated[
        int, typer.Option(help="Differential privacy: honest partners the noise is split over.")
    ] = 2,
) -> None:
    """Create identities, the signed roster and pins, plan.json and the initial trunk."""
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.secure import DPConfig
    from pharmafl.server.optimizers import make_server_optimizer
    from pharmafl.simulate.federation import setup_federation

    sizes = [int(h) for h in hidden.split(",") if h.strip()]
    plan = FederationPlan(
        rounds=rounds,
        seed=seed,
        trunk={"kind": "sparse", "hidden_sizes": sizes, "dropouts": [dropout] * len(sizes)},
        local=LocalTrainingSpec(epochs=local_epochs, learning_rate=lr, batch_size=batch_size),
        server_optimizer=make_server_optimizer(server_optimizer).config,
        dp=None
        if dp_noise_multiplier is None
        else DPConfig(
            clip_norm=dp_clip_norm,
            noise_multiplier=dp_noise_multiplier,
            min_contributors=dp_min_contributors,
        ),
    )
    odir = setup_federation(consortium_dir, plan)
    typer.echo(f"operator folder ready: {odir}")


@federation_app.command("init-trunk")
def init_trunk(
    plan: Annotated[Path, typer.Argument(help="The operator's plan.json (trunk config, seed).")],
    out: Annotated[Path, typer.Option(help="Where to write the initial trunk (.npz).")],
) -> None:
    """Create the initial global trunk from the plan (run once on a partner-side machine:
    it needs torch; the operator then copies it to operator/initial_trunk.npz)."""
    from pharmafl.common.io import atomic_write_bytes, sha256_bytes
    from pharmafl.contract import FederationPlan
    from pharmafl.contract.trunk import trunk_to_bytes
    from pharmafl.simulate.federation import initial_trunk

    p = FederationPlan.model_validate_json(plan.read_text(encoding="utf-8"))
    data = trunk_to_bytes(initial_trunk(p.trunk, p.seed))
    atomic_write_bytes(out, data)
    typer.echo(f"{out}: sha256 {sha256_bytes(data)}")


def train(
    consortium_dir: Annotated[
        Path, typer.Argument(help="Consortium folder (operator/, partners/).")
    ],
    exchange: Annotated[
        str | None, typer.Option(help="Exchange store URL (default: CONSORTIUM_DIR/exchange).")
    ] = None,
    launcher: Annotated[
        str, typer.Option(help="embedded (all partners here) or distributed (Prefect workers).")
    ] = "embedded",
    resume: Annotated[bool, typer.Option(help="Continue from the last completed round.")] = False,
    rounds: Annotated[int | None, typer.Option(help="Override the plan's round budget.")] = None,
) -> None:
    """Run federated training: rounds of local training and secure aggregation."""
    from flows.train import run_train
    from pharmafl.common.errors import ConfigError

    if launcher not in ("embedded", "distributed"):
        raise ConfigError(f"unknown launcher {launcher!r}.", fix="embedded or distributed.")
    result = run_train(
        consortium_dir,
        exchange_url=exchange,
        launcher="distributed" if launcher == "distributed" else "embedded",
        resume=resume,
        rounds=rounds,
    )
    for rec in result.history:
        typer.echo(
            f"round {rec.round}: contributors {','.join(rec.contributors)}"
            f"{' dropped ' + ','.join(rec.dropped) if rec.dropped else ''}, "
            f"mean validation AUC-PR {rec.mean_validation_auc_pr}"
        )
    typer.echo(
        json.dumps(result.model_dump(include={"rounds", "stop_reason", "final_trunk_sha256"}))
    )


def register(app: typer.Typer) -> None:
    """Attach ``train`` and the ``federation`` group to ``app``."""
    app.command("train")(train)
    app.add_typer(federation_app, name="federation")
