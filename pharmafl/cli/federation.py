"""``pharmafl train`` (operator) and ``pharmafl federation setup`` (simulated consortia)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pharmafl.cli.interrupt import interruptible

if TYPE_CHECKING:
    from pharmafl.contract import FederationPlan
    from pharmafl.secure import DPConfig

federation_app = typer.Typer(
    help="Set up federated training for a simulated consortium.", no_args_is_help=True
)


DpNoise = Annotated[
    float | None,
    typer.Option(help="Differential privacy: noise multiplier z (off when not given)."),
]
DpClip = Annotated[
    float, typer.Option(help="Differential privacy: L2 bound C on each weighted update.")
]
DpSplit = Annotated[
    int, typer.Option(help="Differential privacy: honest partners the noise is split over.")
]


def _dp(noise_multiplier: float | None, clip_norm: float, min_contributors: int) -> DPConfig | None:
    """The DP options as a config (None without a noise multiplier); bad values are one
    clear error."""
    from pydantic import ValidationError

    from pharmafl.common.errors import ConfigError, validation_summary
    from pharmafl.secure import DPConfig

    if noise_multiplier is None:
        return None
    try:
        return DPConfig(
            clip_norm=clip_norm,
            noise_multiplier=noise_multiplier,
            min_contributors=min_contributors,
        )
    except ValidationError as exc:
        raise ConfigError(
            f"invalid differential privacy option: {validation_summary(exc)}.",
            fix="--dp-noise-multiplier > 0, --dp-clip-norm > 0, --dp-min-contributors >= 1.",
        ) from None


Rounds = Annotated[int, typer.Option(min=1, help="Round budget.")]
Hidden = Annotated[str, typer.Option(help="Trunk hidden sizes, comma-separated.")]
Dropout = Annotated[float, typer.Option(min=0.0, max=0.95, help="Trunk dropout.")]
LocalEpochs = Annotated[float, typer.Option(help="Local epochs per round.")]
Lr = Annotated[float, typer.Option(help="Partner learning rate.")]
BatchSize = Annotated[
    int | None, typer.Option(help="Partner batch size (default: --batch-ratio of its rows).")
]
BatchRatio = Annotated[
    float, typer.Option(min=0.0001, max=1.0, help="Batch size as a fraction of a partner's rows.")
]
MinSteps = Annotated[int, typer.Option(min=1, help="At least this many local steps a round.")]
WeightDecay = Annotated[float, typer.Option(min=0.0, help="Partner weight decay.")]
ProxMu = Annotated[float, typer.Option(min=0.0, help="FedProx μ (0 = FedAvg).")]
KeepOptimizer = Annotated[
    bool,
    typer.Option(
        "--keep-optimizer/--fresh-optimizer",
        help="Partners keep their local Adam moments between rounds (local, never sent; "
        "on Tox21 +0.005 to +0.030 federated test ROC-AUC over restarting Adam every round).",
    ),
]
HeadFinetune = Annotated[
    int,
    typer.Option(min=0, max=100, help="Epochs fine-tuning each private head on the final trunk."),
]
WeightCap = Annotated[
    int | None,
    typer.Option(
        min=100,
        help="Cap on a partner's FedAvg weight (its training rows), so that no partner, e.g. "
        "a large public one, dominates the trunk (default: no cap).",
    ),
]
ServerOpt = Annotated[str, typer.Option(help="fedavg, fedavgm, fedadam, fedyogi.")]
Seed = Annotated[int, typer.Option(help="Seed of the initial trunk and local training.")]
RingBits = Annotated[
    int,
    typer.Option(
        help="Bits per trunk parameter in a masked update: 32 (exact FedAvg), or 16 / 8 "
        "(0.5× / 0.25× the bytes: stochastic rounding, partners weighted equally)."
    ),
]


def build_plan(
    *,
    rounds: int,
    hidden: str,
    dropout: float,
    local: dict[str, Any],
    server_optimizer: str,
    seed: int,
    dp: DPConfig | None,
    ring_bits: int = 32,
) -> FederationPlan:
    """The main run's plan from the command-line options (one clear error when invalid)."""
    from pydantic import ValidationError

    from pharmafl.common.errors import ConfigError, validation_summary
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.secure import QuantizationConfig
    from pharmafl.server.optimizers import make_server_optimizer

    try:
        sizes = [int(h) for h in hidden.split(",") if h.strip()]
        return FederationPlan(
            rounds=rounds,
            seed=seed,
            trunk={"kind": "sparse", "hidden_sizes": sizes, "dropouts": [dropout] * len(sizes)},
            local=LocalTrainingSpec(**local),
            server_optimizer=make_server_optimizer(server_optimizer).config,
            quantization=QuantizationConfig.for_ring(ring_bits),
        ).with_dp(dp)
    except (ValidationError, ValueError) as exc:
        why = validation_summary(exc) if isinstance(exc, ValidationError) else str(exc)
        raise ConfigError(
            f"invalid federation plan: {why}.",
            fix="check the options against the command's --help (e.g. --hidden 2000 or "
            "--hidden 1000,500).",
        ) from None


def local_spec(
    *,
    local_epochs: float,
    lr: float,
    batch_size: int | None,
    batch_ratio: float,
    min_steps: int,
    weight_decay: float,
    prox_mu: float,
    head_finetune_epochs: int,
    keep_optimizer: bool = False,
    weight_cap: int | None = None,
) -> dict[str, Any]:
    """The partners' local recipe (LocalTrainingSpec fields) from the command-line options."""
    return {
        "epochs": local_epochs,
        "learning_rate": lr,
        "batch_size": batch_size,
        "batch_ratio": batch_ratio,
        "min_steps": min_steps,
        "weight_decay": weight_decay,
        "prox_mu": prox_mu,
        "head_finetune_epochs": head_finetune_epochs,
        "keep_optimizer": keep_optimizer,
        "weight_cap": weight_cap,
    }


#: The command-line options that make the partners' local recipe (see :func:`local_spec`).
LOCAL_OPTIONS: tuple[str, ...] = (
    "local_epochs",
    "lr",
    "batch_size",
    "batch_ratio",
    "min_steps",
    "weight_decay",
    "prox_mu",
    "head_finetune_epochs",
    "keep_optimizer",
    "weight_cap",
)


def local_spec_of(options: dict[str, Any]) -> dict[str, Any]:
    """:func:`local_spec` from a command's options (its ``locals()``)."""
    return local_spec(**{k: options[k] for k in LOCAL_OPTIONS})


def write_initial_trunk(plan: FederationPlan, out: Path) -> str:
    """Write the plan's initial global trunk; return its SHA-256."""
    from pharmafl.common.io import atomic_write_bytes, sha256_bytes
    from pharmafl.contract.trunk import trunk_to_bytes
    from pharmafl.model import initial_trunk

    data = trunk_to_bytes(initial_trunk(plan.trunk, plan.seed))
    atomic_write_bytes(out, data)
    return sha256_bytes(data)


@federation_app.command("setup")
def setup(
    consortium_dir: Annotated[Path, typer.Argument(help="Folder from `consortium simulate`.")],
    rounds: Rounds = 10,
    hidden: Hidden = "2000",
    dropout: Dropout = 0.6,
    local_epochs: LocalEpochs = 1.0,
    lr: Lr = 1e-3,
    batch_size: BatchSize = None,
    batch_ratio: BatchRatio = 0.02,
    min_steps: MinSteps = 10,
    weight_decay: WeightDecay = 0.0,
    prox_mu: ProxMu = 0.0,
    head_finetune_epochs: HeadFinetune = 3,
    keep_optimizer: KeepOptimizer = True,
    weight_cap: WeightCap = None,
    server_optimizer: ServerOpt = "fedavg",
    seed: Seed = 0,
    ring_bits: RingBits = 32,
    dp_noise_multiplier: DpNoise = None,
    dp_clip_norm: DpClip = 0.1,
    dp_min_contributors: DpSplit = 2,
) -> None:
    """Create identities, the signed roster and pins, plan.json and the initial trunk."""
    from pharmafl.simulate.federation import setup_federation

    plan = build_plan(
        rounds=rounds,
        hidden=hidden,
        dropout=dropout,
        local=local_spec_of(locals()),
        server_optimizer=server_optimizer,
        seed=seed,
        dp=_dp(dp_noise_multiplier, dp_clip_norm, dp_min_contributors),
        ring_bits=ring_bits,
    )
    odir = setup_federation(consortium_dir, plan)
    typer.echo(f"operator folder ready: {odir}")


@federation_app.command("init-trunk")
def init_trunk(
    plan: Annotated[Path, typer.Argument(help="The operator's plan.json (trunk config, seed).")],
    out: Annotated[Path, typer.Option(help="Where to write the initial trunk (.npz).")],
) -> None:
    """Create the initial global trunk from the plan (any machine with pharmafl installed;
    the operator's folder keeps it as operator/initial_trunk.npz)."""
    from pharmafl.contract import FederationPlan

    p = FederationPlan.model_validate_json(plan.read_text(encoding="utf-8"))
    typer.echo(f"{out}: sha256 {write_initial_trunk(p, out)}")


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
    dp_noise_multiplier: DpNoise = None,
    dp_clip_norm: DpClip = 0.1,
    dp_min_contributors: DpSplit = 2,
) -> None:
    """Run federated training: rounds of local training and secure aggregation. With
    ``--dp-noise-multiplier`` every round from now on uses differential privacy (written
    into the operator's plan.json; ε per partner is in the report)."""
    from flows.train import dropped_text, run_train
    from pharmafl.common.errors import ConfigError

    if launcher not in ("embedded", "distributed"):
        raise ConfigError(f"unknown launcher {launcher!r}.", fix="embedded or distributed.")
    dp = _dp(dp_noise_multiplier, dp_clip_norm, dp_min_contributors)
    if dp is not None:
        _set_plan_dp(consortium_dir, dp)
    resumable = f"completed rounds are kept: `pharmafl train {consortium_dir} --resume` goes on"
    with interruptible(resumable):
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
            f"{' dropped ' + dropped_text(rec) if rec.dropped else ''}, "
            f"mean validation AUC-PR {rec.mean_validation_auc_pr}"
        )
    typer.echo(
        json.dumps(result.model_dump(include={"rounds", "stop_reason", "final_trunk_sha256"}))
    )


def _set_plan_dp(consortium_dir: Path, dp: DPConfig) -> None:
    """Write ``dp`` into the operator's plan (validated as a whole before it is replaced)."""
    from pydantic import ValidationError

    from pharmafl.common.errors import ConfigError, validation_summary
    from pharmafl.common.io import atomic_write_text, read_model
    from pharmafl.contract import FederationPlan
    from pharmafl.layout import ConsortiumLayout

    path = ConsortiumLayout(consortium_dir).operator.plan
    fix = "set the plan up with `pharmafl federation setup` (or write plan.json) first."
    plan = read_model(path, FederationPlan, what="federation plan", error=ConfigError, fix=fix)
    try:
        updated = plan.with_dp(dp)
    except ValidationError as exc:
        raise ConfigError(
            f"the plan with this differential privacy is invalid: {validation_summary(exc)}.",
            file=path,
            fix="check the DP options against `pharmafl train --help`.",
        ) from None
    atomic_write_text(path, updated.model_dump_json(indent=2) + "\n")
    typer.echo(
        f"{path}: differential privacy on every round (z = {dp.noise_multiplier}, "
        f"C = {dp.clip_norm}, noise split over {dp.min_contributors}; quantization clip "
        f"{updated.quantization.clip})"
    )


def register(app: typer.Typer) -> None:
    """Attach ``train`` and the ``federation`` group to ``app``."""
    app.command("train")(train)
    app.add_typer(federation_app, name="federation")
