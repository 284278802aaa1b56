"""``pharmafl baseline``, ``pharmafl pooled`` and ``pharmafl predict``: thin wrappers around
:mod:`pharmafl.model`.

Every training option defaults to "not given": values come from ``--config FILE`` (YAML or
JSON with ``trunk`` and ``train`` sections, the fields of ``SparseTrunkConfig`` /
``GraphTrunkConfig`` and ``TrainConfig``), then from the options given on the command line.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from pharmafl.common.errors import ConfigError

console = Console(stderr=True)

_Str = str | None
_Int = int | None
_Float = float | None
TrunkKind = Annotated[
    _Str, typer.Option("--trunk", help="Trunk family: sparse (default) or graph.")
]
Hidden = Annotated[_Str, typer.Option("--hidden", help="Hidden sizes, comma-separated (2000).")]
Dropout = Annotated[
    _Str, typer.Option("--dropout", help="Dropout per hidden layer, comma-separated (0.6).")
]
NonLinearity = Annotated[_Str, typer.Option("--non-linearity", help="relu or tanh.")]
InputTransform = Annotated[
    _Str, typer.Option("--input-transform", help="none, binarize (default) or log1p.")
]
GraphConv = Annotated[_Str, typer.Option("--graph-conv", help="Graph trunk: gine or attentivefp.")]
GraphHidden = Annotated[_Int, typer.Option("--graph-hidden", help="Graph trunk width (256).")]
GraphLayers = Annotated[_Int, typer.Option("--graph-layers", help="Message-passing layers (4).")]
Epochs = Annotated[_Int, typer.Option("--epochs", help="Maximum epochs (20).")]
Lr = Annotated[_Float, typer.Option("--lr", help="Learning rate (1e-3).")]
BatchRatio = Annotated[
    _Float, typer.Option("--batch-ratio", help="Batch = ratio × training rows (0.02).")
]
BatchSize = Annotated[_Int, typer.Option("--batch-size", help="Fixed batch size.")]
Optimizer = Annotated[_Str, typer.Option("--optimizer", help="adam (default), adamw or sgd.")]
WeightDecay = Annotated[_Float, typer.Option("--weight-decay", help="Weight decay (0).")]
LrSteps = Annotated[_Str, typer.Option("--lr-steps", help="Epochs of LR drops, comma-separated.")]
LrAlpha = Annotated[_Float, typer.Option("--lr-alpha", help="LR factor at each drop (0.3).")]
FoldVa = Annotated[_Int, typer.Option("--fold-va", help="Validation fold (1; -1 = none).")]
FoldTe = Annotated[_Int, typer.Option("--fold-te", help="Test fold (0; -1 = none).")]
Patience = Annotated[_Int, typer.Option("--patience", help="Early-stopping patience (epochs).")]
RegressionWeight = Annotated[
    _Float, typer.Option("--regression-weight", help="Hybrid cls/reg balance (0.5).")
]
Seed = Annotated[_Int, typer.Option("--seed", help="Random seed (0).")]
Threads = Annotated[_Int, typer.Option("--threads", help="torch threads (default: torch's).")]
ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML/JSON file with trunk and train sections.")
]


def _floats(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated numbers, got {text!r}.") from None


def _read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise ConfigError("config file not found.", file=path)
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file is not valid JSON/YAML ({exc}).", file=path) from None
    if not isinstance(doc, dict) or set(doc) - {"trunk", "train"}:
        raise ConfigError(
            "config file must be a mapping with 'trunk' and/or 'train' sections.", file=path
        )
    return doc


def build_configs(
    config_file: Path | None, trunk_opts: dict[str, Any], train_opts: dict[str, Any]
) -> tuple[Any, Any]:
    """(trunk config, TrainConfig) from a config file overridden by the given options."""
    from pharmafl.model import TrainConfig, TrunkConfig

    doc = _read_config_file(config_file)
    trunk: dict[str, Any] = dict(doc.get("trunk") or {})
    train: dict[str, Any] = dict(doc.get("train") or {})
    kind = trunk_opts.get("trunk") or trunk.get("kind", "sparse")
    trunk["kind"] = kind
    if kind == "sparse":
        trunk.setdefault("hidden_sizes", [2000])
        trunk.setdefault("dropouts", [0.6] * len(trunk["hidden_sizes"]))
        hidden = _floats(trunk_opts.get("hidden"))
        if hidden is not None:
            trunk["hidden_sizes"] = [int(h) for h in hidden]
        drops = _floats(trunk_opts.get("dropout"))
        if drops is not None:
            trunk["dropouts"] = list(drops)
        if len(trunk["dropouts"]) == 1 and len(trunk["hidden_sizes"]) > 1:
            trunk["dropouts"] = trunk["dropouts"] * len(trunk["hidden_sizes"])
        for opt, fieldname in (
            ("non_linearity", "non_linearity"),
            ("input_transform", "input_transform"),
        ):
            if trunk_opts.get(opt) is not None:
                trunk[fieldname] = trunk_opts[opt]
    else:
        for opt, fieldname in (
            ("graph_conv", "conv"),
            ("graph_hidden", "hidden_size"),
            ("graph_layers", "num_layers"),
        ):
            if trunk_opts.get(opt) is not None:
                trunk[fieldname] = trunk_opts[opt]
        drops = _floats(trunk_opts.get("dropout"))
        if drops is not None:
            trunk["dropout"] = drops[0]
    for k, v in train_opts.items():
        if v is not None:
            train[k] = v
    try:
        trunk_cfg = TypeAdapter(TrunkConfig).validate_python(trunk)
        train_cfg = TrainConfig.model_validate(train)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid model/training setting {where}: {first['msg']}.",
            file=config_file,
            fix="see `pharmafl baseline --help` and schemas/train_config.schema.json.",
        ) from None
    return trunk_cfg, train_cfg


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Any]:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _train_opts(
    epochs: int | None,
    lr: float | None,
    batch_ratio: float | None,
    batch_size: int | None,
    optimizer: str | None,
    weight_decay: float | None,
    lr_steps: str | None,
    lr_alpha: float | None,
    fold_va: int | None,
    fold_te: int | None,
    patience: int | None,
    regression_weight: float | None,
    seed: int | None,
    threads: int | None,
) -> dict[str, Any]:
    steps = _floats(lr_steps)
    return {
        "epochs": epochs,
        "lr": lr,
        "batch_ratio": batch_ratio,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "lr_steps": None if steps is None else [int(s) for s in steps],
        "lr_alpha": lr_alpha,
        "fold_va": None if fold_va is None or fold_va < 0 else fold_va,
        "fold_te": None if fold_te is None or fold_te < 0 else fold_te,
        "early_stopping_patience": patience,
        "regression_weight": regression_weight,
        "seed": seed,
        "num_threads": threads,
    }


def register(app: typer.Typer) -> None:
    """Attach ``baseline``, ``pooled`` and ``predict`` to ``app``."""

    @app.command("baseline")
    def baseline(
        partner_dir: Annotated[Path, typer.Argument(help="Partner folder holding prepared/.")],
        config: ConfigFile = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Default PARTNER_DIR/models/local.")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue from the last checkpoint.")
        ] = False,
        checkpoint: Annotated[
            bool, typer.Option("--checkpoint/--no-checkpoint", help="Checkpoint every epoch.")
        ] = True,
        trunk: TrunkKind = None,
        hidden: Hidden = None,
        dropout: Dropout = None,
        non_linearity: NonLinearity = None,
        input_transform: InputTransform = None,
        graph_conv: GraphConv = None,
        graph_hidden: GraphHidden = None,
        graph_layers: GraphLayers = None,
        epochs: Epochs = None,
        lr: Lr = None,
        batch_ratio: BatchRatio = None,
        batch_size: BatchSize = None,
        optimizer: Optimizer = None,
        weight_decay: WeightDecay = None,
        lr_steps: LrSteps = None,
        lr_alpha: LrAlpha = None,
        fold_va: FoldVa = None,
        fold_te: FoldTe = None,
        patience: Patience = None,
        regression_weight: RegressionWeight = None,
        seed: Seed = None,
        threads: Threads = None,
    ) -> None:
        """Train the local-only (single-partner) model; write PARTNER_DIR/models/local/."""
        from pharmafl.model import run_baseline

        trunk_cfg, train_cfg = build_configs(
            config,
            dict(
                trunk=trunk,
                hidden=hidden,
                dropout=dropout,
                non_linearity=non_linearity,
                input_transform=input_transform,
                graph_conv=graph_conv,
                graph_hidden=graph_hidden,
                graph_layers=graph_layers,
            ),
            _train_opts(
                epochs,
                lr,
                batch_ratio,
                batch_size,
                optimizer,
                weight_decay,
                lr_steps,
                lr_alpha,
                fold_va,
                fold_te,
                patience,
                regression_weight,
                seed,
                threads,
            ),
        )
        with _progress("training") as update:
            report = run_baseline(
                partner_dir,
                trunk_cfg,
                train_cfg,
                out_dir=out,
                resume=resume,
                checkpoint=checkpoint,
                progress=update,
            )
        for name, split in (("validation", report.validation), ("test", report.test)):
            if split is not None:
                typer.echo(
                    f"{name}: roc_auc {split.metric('roc_auc'):.4f}  "
                    f"auc_pr {split.metric('auc_pr'):.4f}  rmse {split.metric('rmse'):.4f}"
                )

    @app.command("pooled")
    def pooled(
        dirs: Annotated[
            list[Path],
            typer.Argument(
                help="A consortium folder with partners/*/prepared, or partner folders."
            ),
        ],
        config: ConfigFile = None,
        out: Annotated[
            Path | None, typer.Option("--out", help="Default DIR/models/pooled.")
        ] = None,
        trunk: TrunkKind = None,
        hidden: Hidden = None,
        dropout: Dropout = None,
        non_linearity: NonLinearity = None,
        input_transform: InputTransform = None,
        graph_conv: GraphConv = None,
        graph_hidden: GraphHidden = None,
        graph_layers: GraphLayers = None,
        epochs: Epochs = None,
        lr: Lr = None,
        batch_ratio: BatchRatio = None,
        batch_size: BatchSize = None,
        optimizer: Optimizer = None,
        weight_decay: WeightDecay = None,
        lr_steps: LrSteps = None,
        lr_alpha: LrAlpha = None,
        fold_va: FoldVa = None,
        fold_te: FoldTe = None,
        patience: Patience = None,
        regression_weight: RegressionWeight = None,
        seed: Seed = None,
        threads: Threads = None,
    ) -> None:
        """Train one model on all simulated partners (one head each): the upper bound."""
        from pharmafl.model import run_pooled

        trunk_cfg, train_cfg = build_configs(
            config,
            dict(
                trunk=trunk,
                hidden=hidden,
                dropout=dropout,
                non_linearity=non_linearity,
                input_transform=input_transform,
                graph_conv=graph_conv,
                graph_hidden=graph_hidden,
                graph_layers=graph_layers,
            ),
            _train_opts(
                epochs,
                lr,
                batch_ratio,
                batch_size,
                optimizer,
                weight_decay,
                lr_steps,
                lr_alpha,
                fold_va,
                fold_te,
                patience,
                regression_weight,
                seed,
                threads,
            ),
        )
        with _progress("pooled training") as update:
            report = run_pooled(dirs, trunk_cfg, train_cfg, out_dir=out, progress=update)
        for name, rep in report.partners.items():
            if rep.test is not None:
                typer.echo(
                    f"{name}: test roc_auc {rep.test.metric('roc_auc'):.4f}  "
                    f"auc_pr {rep.test.metric('auc_pr'):.4f}"
                )

    @app.command("predict")
    def predict(
        partner_dir: Annotated[
            Path, typer.Argument(help="Partner folder (consortium parameters, key, model).")
        ],
        input_file: Annotated[
            Path, typer.Option("--input", help="CSV/TSV with a smiles column (+ id), or an SDF.")
        ],
        out_file: Annotated[Path, typer.Option("--out", help="Output CSV (matrices beside it).")],
        model_dir: Annotated[
            Path | None,
            typer.Option("--model", help="Saved model folder (default PARTNER_DIR/models/local)."),
        ] = None,
        mc_samples: Annotated[
            int, typer.Option("--mc-samples", min=0, help="MC-dropout passes (0 = off).")
        ] = 0,
        embeddings: Annotated[
            bool, typer.Option("--embeddings", help="Also write trunk embeddings.")
        ] = False,
        workers: Annotated[
            int, typer.Option("--workers", min=0, help="Processes for descriptors (0 = all).")
        ] = 1,
        head: Annotated[
            str, typer.Option("--head", help="Which head's tasks to predict.")
        ] = "local",
    ) -> None:
        """Predict new structures with a partner's model; bad structures are reported per row."""
        from pharmafl.model import predict_structures

        result = predict_structures(
            partner_dir,
            input_file,
            out_file,
            model_dir=model_dir,
            head=head,
            mc_samples=mc_samples,
            embeddings=embeddings,
            workers=workers,
        )
        typer.echo(
            f"predicted {result.n_ok} of {result.n_input} structures "
            f"({result.n_failed} failed, see status/message): {', '.join(map(str, result.files))}"
        )
