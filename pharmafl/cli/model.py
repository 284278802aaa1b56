"""``pharmafl baseline`` and ``pharmafl pooled``: thin wrappers around :mod:`pharmafl.model`
(``predict``, ``tasks`` and ``evaluate`` are in :mod:`pharmafl.cli.results`, registered from
:data:`pharmafl.cli.main.COMMAND_MODULES`).

Every training option defaults to "not given": values come from ``--config FILE`` (YAML or
JSON with ``trunk`` and ``train`` sections, the fields of ``SparseTrunkConfig`` /
``GraphTrunkConfig`` and ``TrainConfig``), then from the options given on the command line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from pharmafl.cli.interrupt import interruptible
from pharmafl.common.errors import ConfigError

console = Console(stderr=True)

_Str = str | None
_Int = int | None
_Float = float | None
TrunkKind = Annotated[
    _Str, typer.Option("--trunk", help="Trunk family: sparse (default) or graph.")
]
Hidden = Annotated[
    _Str,
    typer.Option(
        "--hidden",
        help="Hidden sizes, comma-separated (baseline: chosen by data size unless --hidden, "
        "--dropout or --weight-decay is given; pooled: 2000).",
    ),
]
Dropout = Annotated[
    _Str,
    typer.Option(
        "--dropout", help="Dropout per hidden layer, comma-separated (baseline: by data size; 0.6)."
    ),
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
Patience = Annotated[
    _Int,
    typer.Option(
        "--patience",
        help="Early stopping: epochs without validation improvement before stopping, the "
        "best epoch restored (3; 0 = off, keep the last epoch).",
    ),
]
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
    if train.get("early_stopping_patience") == 0:  # --patience 0: early stopping off
        train["early_stopping_patience"] = None
    for fold in ("fold_va", "fold_te"):  # -1: no such fold (None means "not given" above)
        if isinstance(train.get(fold), int) and train[fold] < 0:
            train[fold] = None
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


#: Said once per line where an aggregate metric has no value.
NOT_SCORABLE = (
    "n/a: no task of this fold passes the evaluation quorum (too few labels per fold; "
    "`pharmafl prepare` prints the quorums)"
)


def metrics_line(label: str, split: Any, names: tuple[str, ...]) -> str:
    """``label: name value ...`` with ``n/a`` and one reason instead of a bare NaN."""
    import math

    values = {n: split.metric(n) for n in names}
    text = "  ".join(f"{n} {'n/a' if math.isnan(v) else f'{v:.4f}'}" for n, v in values.items())
    missing = any(math.isnan(v) for v in values.values())
    return f"{label}: {text}" + (f"  ({NOT_SCORABLE})" if missing else "")


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Any]:
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_interactive,  # a bar is for a terminal, not a log
    ) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


#: The trunk options every training command takes (name → its typer annotation).
_TRUNK_OPTIONS: dict[str, Any] = {
    "trunk": TrunkKind,
    "hidden": Hidden,
    "dropout": Dropout,
    "non_linearity": NonLinearity,
    "input_transform": InputTransform,
    "graph_conv": GraphConv,
    "graph_hidden": GraphHidden,
    "graph_layers": GraphLayers,
}
#: The training options every training command takes (name → its typer annotation).
_TRAIN_OPTIONS: dict[str, Any] = {
    "epochs": Epochs,
    "lr": Lr,
    "batch_ratio": BatchRatio,
    "batch_size": BatchSize,
    "optimizer": Optimizer,
    "weight_decay": WeightDecay,
    "lr_steps": LrSteps,
    "lr_alpha": LrAlpha,
    "fold_va": FoldVa,
    "fold_te": FoldTe,
    "patience": Patience,
    "regression_weight": RegressionWeight,
    "seed": Seed,
    "threads": Threads,
}


def _train_opts(opts: dict[str, Any]) -> dict[str, Any]:
    """The training options as TrainConfig fields (None: not given)."""
    steps = _floats(opts["lr_steps"])
    renamed = {"patience": "early_stopping_patience", "threads": "num_threads"}
    out = {renamed.get(k, k): v for k, v in opts.items() if k != "lr_steps"}
    return out | {"lr_steps": None if steps is None else [int(s) for s in steps]}


Configs = tuple[Any, Any, bool]


def sized_by_data(
    config_file: Path | None, trunk_opts: dict[str, Any], train: dict[str, Any]
) -> bool:
    """True when neither the options nor ``--config`` set the trunk's width and dropout or the
    weight decay of a sparse trunk: ``baseline`` then chooses them by data size."""
    doc = _read_config_file(config_file)
    given_trunk = {k for k, v in (doc.get("trunk") or {}).items() if v is not None}
    given_train = {k for k, v in (doc.get("train") or {}).items() if v is not None}
    sparse = (trunk_opts.get("trunk") or (doc.get("trunk") or {}).get("kind", "sparse")) == "sparse"
    return (
        sparse
        and trunk_opts.get("hidden") is None
        and trunk_opts.get("dropout") is None
        and train.get("weight_decay") is None
        and not given_trunk & {"hidden_sizes", "dropouts"}
        and "weight_decay" not in given_train
    )


def with_model_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a training command the shared ``--config``, trunk and training options.

    The command declares ``configs: Configs`` instead of the ~20 options; it receives the
    (trunk config, TrainConfig) pair built by :func:`build_configs` from ``--config`` and
    the options given, and whether none of them set the regularisation (:func:`sized_by_data`).
    One declaration of the options for ``baseline`` and ``pooled``.
    """
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "configs"]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ann)
        for name, ann in (("config", ConfigFile), *_TRUNK_OPTIONS.items(), *_TRAIN_OPTIONS.items())
    ]

    @functools.wraps(command)
    def run(**kwargs: Any) -> None:
        config = kwargs.pop("config")
        trunk = {k: kwargs.pop(k) for k in _TRUNK_OPTIONS}
        train = {k: kwargs.pop(k) for k in _TRAIN_OPTIONS}
        trunk_cfg, train_cfg = build_configs(config, trunk, _train_opts(train))
        by_size = sized_by_data(config, trunk, train)
        command(**kwargs, configs=(trunk_cfg, train_cfg, by_size))

    run.__signature__ = signature.replace(parameters=own + shared)  # type: ignore[attr-defined]
    del run.__wrapped__  # typer reads the signature above, not the command's
    return run


def _baseline_interrupted(partner_dir: Path, out: Path | None) -> Callable[[], str]:
    """What a Ctrl-C during ``baseline`` left: no model; the last epoch's checkpoint, if any."""
    from pharmafl.model.baseline import CHECKPOINT_FILE, LOCAL_MODEL_DIR

    dest = out if out is not None else partner_dir / LOCAL_MODEL_DIR

    def note() -> str:
        if not (partner_dir / CHECKPOINT_FILE).is_file():
            return f"nothing written to {dest}"
        return (
            f"nothing written to {dest}; `pharmafl baseline {partner_dir} --resume` continues "
            "from the last finished epoch"
        )

    return note


def _echo_scores(report: Any) -> None:
    """A model's validation and test scores, one line each."""
    for name, split in (("validation", report.validation), ("test", report.test)):
        if split is not None:
            typer.echo(metrics_line(name, split, ("roc_auc", "auc_pr", "rmse")))


def _tree_baseline(partner_dir: Path, kind: str, train_cfg: Any, out: Path | None) -> None:
    """``baseline --model rf|gbm``: the same folds and seed as the network."""
    from pharmafl.common.errors import ConfigError
    from pharmafl.model.trees import TreeConfig, run_tree_baseline

    if kind not in ("rf", "gbm"):
        raise ConfigError(f"unknown --model {kind!r}.", fix="use net, rf or gbm.")
    cfg = TreeConfig(
        kind="rf" if kind == "rf" else "gbm",
        seed=train_cfg.seed % 2**32,
        fold_va=train_cfg.fold_va,
        fold_te=train_cfg.fold_te,
        n_jobs=train_cfg.num_threads or 1,
    )
    with _progress(f"{kind} per task") as update:
        report = run_tree_baseline(partner_dir, cfg, out_dir=out, progress=update)
    _echo_scores(report)


def _public_baseline(
    partner_dir: Path, public_dir: Path, trunk_cfg: Any, train_cfg: Any, out: Path | None
) -> None:
    """``baseline --with-public DIR``: the partner's tasks and the public ones, one network."""
    from pharmafl.model.public import run_local_with_public

    report = run_local_with_public(partner_dir, public_dir, trunk_cfg, train_cfg, out_dir=out)
    _echo_scores(report)


def register(app: typer.Typer) -> None:
    """Attach ``baseline`` and ``pooled`` to ``app``."""

    @app.command("baseline")
    @with_model_options
    def baseline(
        partner_dir: Annotated[Path, typer.Argument(help="Partner folder holding prepared/.")],
        out: Annotated[
            Path | None, typer.Option("--out", help="Default PARTNER_DIR/models/local.")
        ] = None,
        resume: Annotated[
            bool, typer.Option("--resume", help="Continue from the last checkpoint.")
        ] = False,
        checkpoint: Annotated[
            bool, typer.Option("--checkpoint/--no-checkpoint", help="Checkpoint every epoch.")
        ] = True,
        model: Annotated[
            str,
            typer.Option(
                "--model",
                help="net: the multi-task network (models/local); rf: a random forest per "
                "task (models/local_rf); gbm: gradient boosting per task (models/local_gbm).",
            ),
        ] = "net",
        with_public: Annotated[
            Path | None,
            typer.Option(
                "--with-public",
                help="net only: train the partner's tasks together with this public "
                "partner's (its folder, prepared with the same key) in one network on this "
                "machine (models/local_public): what the partner could do with public data "
                "without joining.",
            ),
        ] = None,
        configs: Configs = (None, None, False),
    ) -> None:
        """Train a local-only (single-partner) reference: the network (PARTNER_DIR/models/
        local/), per-task random forests or gradient boosting (--model rf|gbm), or the
        network with public data (--with-public); the report compares federated with the
        best of them on validation."""
        from pharmafl.model import run_baseline

        trunk_cfg, train_cfg, by_size = configs
        if model != "net":
            _tree_baseline(partner_dir, model, train_cfg, out)
            return
        if with_public is not None:
            _public_baseline(partner_dir, with_public, trunk_cfg, train_cfg, out)
            return
        with (
            interruptible(_baseline_interrupted(partner_dir, out)),
            _progress("training") as update,
        ):
            report = run_baseline(
                partner_dir,
                trunk_cfg,
                train_cfg,
                out_dir=out,
                resume=resume,
                checkpoint=checkpoint,
                progress=update,
                by_size=by_size,
            )
        _echo_scores(report)

    @app.command("pooled")
    @with_model_options
    def pooled(
        dirs: Annotated[
            list[Path],
            typer.Argument(
                help="A consortium folder with partners/*/prepared, or partner folders."
            ),
        ],
        out: Annotated[
            Path | None, typer.Option("--out", help="Default DIR/models/pooled.")
        ] = None,
        configs: Configs = (None, None, False),
    ) -> None:
        """Train one model on all simulated partners (one head each): the upper bound."""
        from pharmafl.model import run_pooled

        trunk_cfg, train_cfg, _ = configs
        with _progress("pooled training") as update:
            report = run_pooled(dirs, trunk_cfg, train_cfg, out_dir=out, progress=update)
        for name, rep in report.partners.items():
            if rep.test is not None:
                typer.echo(metrics_line(f"{name}: test", rep.test, ("roc_auc", "auc_pr")))
