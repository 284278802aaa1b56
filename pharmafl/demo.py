"""``pharmafl demo``: a whole consortium on one machine, from public data to the report.

Simulates a 6-partner consortium from FS-Mol, prepares every partner (its own flow, its own
folder), trains each partner's local-only baseline, runs federated training with secure
aggregation (embedded launcher: partners in threads, only envelopes through
``DIR/exchange``), trains the pooled reference (the simulation's upper bound), runs the
contribution study when the consortium has two valuation groups or more (six partners or
more: every coalition of groups trained federatedly, exact Shapley and leave-one-out values
per group; with fewer, valuing partners would expose their updates, docs/security.md), and
writes ``DIR/report/summary.json`` + ``report.html`` with the same report
builder as ``pharmafl report``. Every step is the same code a real consortium runs; only the
sizes differ between the default and ``--quick``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from pharmafl.common.errors import ConfigError
from pharmafl.common.io import atomic_write_text
from pharmafl.layout import ConsortiumLayout

if TYPE_CHECKING:
    from pharmafl.common.params import TaskParams
    from pharmafl.contract import SparseTrunkConfig
    from pharmafl.model import TrainConfig
    from pharmafl.report import ConsortiumSummary

log = logging.getLogger(__name__)


class DemoConfig(BaseModel):
    """Sizes and hyperparameters of the demo consortium."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field("fsmol", description="Public dataset to simulate from.")
    source: str | None = Field(
        None, description="Any file of a supported shape instead of the dataset (own data)."
    )
    target_family: str | None = Field(
        "kinase",
        description="FS-Mol: keep only assays of this protein super-family. Real consortia "
        "overlap on target families (every pharma runs kinase assays); a random split of all "
        "1,700 FS-Mol targets gives partners little to learn from each other at demo size. "
        "None = all assays.",
    )
    partners: int = Field(
        6,
        ge=2,
        le=26,
        description="Partners. Six make two valuation groups of three, the fewest a "
        "contribution study can value (docs/security.md).",
    )
    max_compounds: int = Field(3500, ge=100, description="Compounds per partner (cap).")
    auxiliary_compounds: int | None = Field(
        None,
        ge=100,
        description="Add an auxiliary public partner ('public') with the assays no partner "
        "kept, up to this many compounds (FS-Mol); it trains the trunk, its heads are not part "
        "of the consortium's benefit. None = no auxiliary partner.",
    )
    auxiliary_source: str | None = Field(
        None,
        description="A public file (FS-Mol long shape) the auxiliary partner's assays come "
        "from instead of the assays no partner kept (SimulationSpec.auxiliary_source), e.g. "
        "FS-Mol's other target families.",
    )
    free_riders: tuple[str, ...] = Field(
        (),
        description="Partners whose results are shuffled within each assay (a free-rider "
        "rehearsal, SimulationSpec.free_riders); the contribution study must rank them last.",
    )
    seed: int = Field(0, ge=0)
    key_file: str | None = Field(
        None,
        description="Existing consortium key file (mode 600) instead of a fresh random key: "
        "same key and seed, same folds and tasks (a reproducible rehearsal).",
    )
    strategy: str = Field("hash", description="Assay assignment: hash or family.")
    hidden: int = Field(500, ge=8, description="Trunk width (one sparse hidden layer).")
    dropout: float = Field(0.5, ge=0, lt=1)
    batch_size: int | None = Field(
        128, ge=1, description="Batch size (None: 2 % of each partner's training rows)."
    )
    lr: float = Field(1e-3, gt=0)
    local_epochs: int = Field(25, ge=1, description="Baseline/pooled epoch budget.")
    patience: int = Field(4, ge=1, description="Early-stopping patience (epochs).")
    rounds: int = Field(8, ge=1, description="Federated round budget.")
    round_epochs: float = Field(2.0, gt=0, description="Local epochs per federated round.")
    fed_patience: int = Field(3, ge=1, description="Rounds without validation improvement.")
    server_optimizer: str = Field("fedavg")
    prox_mu: float = Field(0.0, ge=0, description="FedProx proximal term (0 = FedAvg).")
    weight_cap: int | None = Field(
        None, ge=100, description="Cap on a partner's FedAvg weight (see LocalTrainingSpec)."
    )
    ring_bits: Literal[8, 16, 32, 64] = Field(
        32, description="Bits per trunk parameter in a masked update (8: 0.25× the bytes)."
    )
    final_trunk: Literal["best", "last"] = Field(
        "last",
        description="Trunk the partners fine-tune their heads on after the last round (see "
        "FederationPlan.final_trunk).",
    )
    head_finetune_epochs: int = Field(10, ge=0)
    keep_optimizer: bool = Field(
        True, description="Partners keep their Adam moments between rounds (see plan)."
    )
    study_rounds: int | None = Field(
        None,
        ge=1,
        description="Contribution study: federated rounds per coalition (every coalition of "
        "valuation groups is trained, securely aggregated, for exact Shapley values; six "
        "partners or more make two groups of three). None: the main run's budget and "
        "patience, so the grand coalition measures what the main run did; a number is a "
        "cheaper, truncated estimate.",
    )
    study_parallel: int = Field(2, ge=1, le=8, description="Coalitions trained at a time.")
    pooled: bool = Field(
        True, description="Train the pooled reference (off: a recipe probe, benchmarks)."
    )
    contribution: bool = Field(
        True, description="Run the contribution study (when there are ≥ 2 valuation groups)."
    )
    dp_noise_multiplier: float | None = Field(
        None,
        ge=0,
        description="Differential privacy of every federated round (noise multiplier z, clip "
        "dp_clip_norm, noise split over 2 honest partners); None: off. ε per partner is in the "
        "report.",
    )
    dp_clip_norm: float = Field(0.1, gt=0, description="DP: L2 bound on each weighted update.")
    workers: int = Field(0, ge=0, description="Preparation processes (0 = all cores).")
    task_quorum: int = Field(
        25,
        ge=1,
        description="Training quorum of a task: actives and inactives each for a "
        "classification task, uncensored values for a regression task (twice it in all). "
        "TUNER's 25 drops the compounds of small assays; a consortium of small partners may "
        "choose less (consortium parameters, agreed by all).",
    )
    eval_fold_min: int = Field(
        5,
        ge=1,
        description="Evaluation quorum: actives and inactives per fold. MELLODDY uses 10 for "
        "pharma-sized partners; simulated partners of a few thousand compounds have few "
        "assays with 10/10 in every fold, so the demo counts tasks with 5/5.",
    )

    @classmethod
    def quick(cls, **overrides: object) -> DemoConfig:
        """A smaller consortium and shorter rounds (same code paths).

        8 rounds of 1 local epoch and the default 10 head fine-tuning epochs: with 4 rounds
        and 5 epochs the trunk was still improving every round and the heads under-fitted,
        and the federated models scored 0.01-0.05 AUC-PR below local-only on every partner.
        """
        base: dict[str, object] = {
            "max_compounds": 800,
            "hidden": 250,
            "local_epochs": 10,
            "rounds": 8,
            "round_epochs": 1.0,
            "fed_patience": 3,
        }
        return cls.model_validate(base | overrides)


@dataclass
class DemoResult:
    """Where the demo wrote its outputs, and its summary."""

    out_dir: Path
    summary_path: Path
    report_path: Path
    summary: ConsortiumSummary
    table: str


class _Clock:
    """Wall time of each demo step, printed as the step ends."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 1)
        self.say(f"  {name}: {self.timings[name]:.1f} s")

    def total(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def _family_source(family: str, folder: Path) -> str:
    """An FS-Mol-shaped file with only the assays of one protein super-family."""
    import pandas as pd

    from pharmafl.common.settings import data_dir

    fsmol = data_dir("fsmol")
    meta = pd.read_csv(fsmol / "fsmol_assay_metadata.csv")
    keep = set(meta.loc[meta["protein_super_family"] == family, "assay_chembl_id"])
    if not keep:
        known = sorted(meta["protein_super_family"].dropna().unique())[:10]
        raise ConfigError(
            f"no FS-Mol assay has protein super-family {family!r}.",
            fix=f"use one of {', '.join(known)} … or target_family=None.",
        )
    rows = pd.read_csv(fsmol / "fsmol_chembl27_measurements.csv.gz")
    path = folder / f"fsmol-{family}.csv"
    rows[rows["assay_chembl_id"].isin(keep)].to_csv(path, index=False)
    return str(path)


def _simulate(out: Path, cfg: DemoConfig, family: str | None) -> None:
    """Simulate the partners' folders, with the demo's evaluation quorum."""
    from pharmafl.common.params import ConsortiumParameters, EvaluationQuorum
    from pharmafl.simulate import SimulationSpec, simulate_consortium

    quorum = EvaluationQuorum(
        num_active_fold_min=cfg.eval_fold_min, num_inactive_fold_min=cfg.eval_fold_min
    )
    tasks = _task_params(cfg.task_quorum).model_copy(update={"evaluation_quorum": quorum})
    with tempfile.TemporaryDirectory(prefix="pharmafl-demo-") as tmp:
        source = _family_source(family, Path(tmp)) if family else cfg.source
        spec = SimulationSpec.model_validate(
            {
                "dataset": cfg.dataset,
                "source": source,
                "partners": cfg.partners,
                "max_compounds": cfg.max_compounds,
                "auxiliary_compounds": cfg.auxiliary_compounds,
                "auxiliary_source": cfg.auxiliary_source,
                "free_riders": cfg.free_riders,
                "seed": cfg.seed,
                "strategy": cfg.strategy,
            }
        )
        simulate_consortium(
            out,
            spec,
            force=True,
            key_file=cfg.key_file,
            parameters=ConsortiumParameters(
                consortium_name=f"simulated-{cfg.dataset}",
                tasks=tasks,
            ),
        )


def _task_params(n: int) -> TaskParams:
    """TUNER's task parameters with training quorum ``n`` (DemoConfig.task_quorum) for every
    assay type but the auxiliary HTS one (which keeps its own)."""
    from pharmafl.common.params import TaskParams

    base = TaskParams()
    cls = {
        t: q
        if t == "AUX_HTS"
        else q.model_copy(update={"num_active_total": n, "num_inactive_total": n})
        for t, q in base.classification_quorum.items()
    }
    reg = {
        t: q.model_copy(update={"num_total": 2 * n, "num_uncensored_total": n})
        for t, q in base.regression_quorum.items()
    }
    return base.model_copy(update={"classification_quorum": cls, "regression_quorum": reg})


def _prepare(layout: ConsortiumLayout, cfg: DemoConfig, say: Callable[[str], None]) -> None:
    """Prepare every partner (its own flow run) and print its counts."""
    from flows.prepare import run_prepare

    for name, folder in layout.partner_dirs().items():
        c = run_prepare(folder, workers=cfg.workers)["counts"]
        say(
            f"  {name}: {c['compounds_input']} compounds → {c['descriptor_vectors']} rows, "
            f"{c['classification_tasks']} classification / {c['regression_tasks']} regression tasks"
        )


def _configs(cfg: DemoConfig) -> tuple[SparseTrunkConfig, TrainConfig]:
    """The trunk and the local training of the baselines and the pooled reference."""
    from pharmafl.contract import SparseTrunkConfig
    from pharmafl.model import TrainConfig

    trunk = SparseTrunkConfig(hidden_sizes=(cfg.hidden,), dropouts=(cfg.dropout,))
    train = TrainConfig(
        seed=cfg.seed,
        epochs=cfg.local_epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        lr_steps=(),
        early_stopping_patience=cfg.patience,
        selection_metric="auc_pr",
    )
    return trunk, train


def _federate(layout: ConsortiumLayout, cfg: DemoConfig, trunk: SparseTrunkConfig) -> None:
    """Set up the federation (identities, roster, plan, initial trunk) and train it."""
    from flows.train import run_train
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.secure import DPConfig, QuantizationConfig
    from pharmafl.server.optimizers import make_server_optimizer
    from pharmafl.simulate.federation import setup_federation

    plan = FederationPlan(
        rounds=cfg.rounds,
        patience=cfg.fed_patience,
        seed=cfg.seed,
        trunk=trunk.model_dump(mode="json"),
        local=LocalTrainingSpec(
            epochs=cfg.round_epochs,
            learning_rate=cfg.lr,
            batch_size=cfg.batch_size,
            head_finetune_epochs=cfg.head_finetune_epochs,
            keep_optimizer=cfg.keep_optimizer,
            prox_mu=cfg.prox_mu,
            weight_cap=cfg.weight_cap,
        ),
        server_optimizer=make_server_optimizer(cfg.server_optimizer).config,
        final_trunk=cfg.final_trunk,
        stage_timeout_s=900,
        quantization=QuantizationConfig.for_ring(cfg.ring_bits),
    ).with_dp(
        None
        if cfg.dp_noise_multiplier is None
        else DPConfig(
            clip_norm=cfg.dp_clip_norm, noise_multiplier=cfg.dp_noise_multiplier, min_contributors=2
        )
    )
    setup_federation(layout.root, plan)
    run_train(layout.root, exchange_url=str(layout.exchange))


def _study(layout: ConsortiumLayout, cfg: DemoConfig) -> None:
    """The contribution study: every coalition of two or more partners, exact Shapley."""
    from flows.contribution import run_contribution_study
    from pharmafl.accounting import StudyConfig

    run_contribution_study(
        layout.root,
        StudyConfig(rounds=cfg.study_rounds, parallel=cfg.study_parallel),
        exchange_url=str(layout.exchange),
    )


def _groups(layout: ConsortiumLayout) -> int:
    """How many valuation groups the consortium's signed policy declares."""
    from pharmafl.secure import load_roster

    policy = load_roster(layout.operator.roster).security_policy
    return len(policy.valuation_groups or ())


def _left_out(layout: ConsortiumLayout, summary: ConsortiumSummary) -> list[str]:
    """Partners without a row in the summary (no scorable test task at the demo's size)."""
    rows = {p.name for p in summary.partners}
    return [name for name in layout.partner_dirs() if name not in rows]


def check_demo_out(out_dir: str | Path, *, force: bool = False) -> None:
    """Refuse an output folder the demo would wrongly replace: one that exists, is not empty
    and is not a previous demo output (no ``demo.json``), unless ``force``."""
    layout = ConsortiumLayout(Path(out_dir))
    root = layout.root
    if force or not root.is_dir() or not any(root.iterdir()) or layout.demo_marker.is_file():
        return
    raise ConfigError(
        f"the output folder is not empty and is not a previous demo output (it has no "
        f"{layout.demo_marker.name}); the demo replaces its output folder.",
        file=root,
        fix="choose another --out (a new or empty folder), or pass --force to replace it.",
    )


def _mark_demo_out(layout: ConsortiumLayout, cfg: DemoConfig) -> None:
    """Mark the (freshly simulated) folder as a demo output that a later demo may replace."""
    from pharmafl import __version__

    doc = {"pharmafl_version": __version__, "config": cfg.model_dump(mode="json")}
    atomic_write_text(layout.demo_marker, json.dumps(doc, indent=2) + "\n")


def _public_references(
    layout: ConsortiumLayout,
    trunk: SparseTrunkConfig,
    train: TrainConfig,
    say: Callable[[str], None],
) -> None:
    """With an auxiliary public partner: each partner's local reference trained with the
    public data too (what it could do without joining; ``pharmafl.model.public``)."""
    from pharmafl.model.public import run_local_with_public
    from pharmafl.simulate import AUXILIARY_NAME

    dirs = layout.partner_dirs()
    if AUXILIARY_NAME not in dirs:
        return
    say(f"  and each partner with the public partner's data ({AUXILIARY_NAME}), still alone")
    for name, folder in dirs.items():
        if name != AUXILIARY_NAME:
            run_local_with_public(folder, dirs[AUXILIARY_NAME], trunk, train)


def prepare_demo(
    out_dir: str | Path,
    config: DemoConfig | None = None,
    *,
    say: Callable[[str], None] = print,
    force: bool = False,
) -> None:
    """Steps 1-2 of the demo into ``out_dir`` (which it replaces, as :func:`run_demo`): the
    simulated partners, each prepared by its own flow. A copy of the folder can be trained
    several times (:func:`train_demo`), e.g. one recipe after another on the same data."""
    from pharmafl.common.secret import load_consortium_key

    cfg = config or DemoConfig()
    check_demo_out(out_dir, force=force)
    if cfg.key_file is not None:
        load_consortium_key(cfg.key_file)  # a bad key file stops the demo before any work
    layout = ConsortiumLayout(Path(out_dir))
    clock = _Clock(say)
    family = _family(cfg)
    say(
        f"1/7 simulating {cfg.partners} partners from {cfg.dataset}"
        f"{f' ({family} assays)' if family else ''} into {layout.root}"
    )
    with clock.step("simulate"):
        _simulate(layout.root, cfg, family)
        _mark_demo_out(layout, cfg)
    say("2/7 preparing each partner locally (standardize, describe, fold, tasks)")
    with clock.step("prepare"):
        _prepare(layout, cfg, say)
    _write_timings(layout, clock)


def _family(cfg: DemoConfig) -> str | None:
    return cfg.target_family if cfg.dataset == "fsmol" and cfg.source is None else None


def _write_timings(layout: ConsortiumLayout, clock: _Clock) -> None:
    """Keep the preparation's step timings beside the demo marker (the report shows them)."""
    atomic_write_text(layout.root / _TIMINGS, json.dumps(clock.timings) + "\n")


#: Step timings of :func:`prepare_demo`, read back by :func:`train_demo`.
_TIMINGS = "demo-timings.json"


def train_demo(
    out_dir: str | Path,
    config: DemoConfig | None = None,
    *,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Steps 3-7 of the demo on a folder :func:`prepare_demo` wrote with the same data
    settings (``config``'s training fields may differ): local baselines, federated training,
    pooled reference, contribution study, report."""
    from pharmafl.model import run_baseline, run_pooled
    from pharmafl.report import partner_table, write_report

    cfg = config or DemoConfig()
    layout = ConsortiumLayout(Path(out_dir))
    if not layout.demo_marker.is_file():
        raise ConfigError(
            "the folder was not simulated and prepared by the demo.",
            file=layout.root,
            fix="run `prepare_demo` (or `pharmafl demo`) into it first.",
        )
    clock = _Clock(say)
    timings = layout.root / _TIMINGS
    if timings.is_file():
        clock.timings.update(json.loads(timings.read_text()))
        clock.start -= sum(clock.timings.values())
    family = _family(cfg)
    trunk, train = _configs(cfg)
    say("3/7 local-only baselines (each partner alone)")
    with clock.step("baselines"):
        for folder in layout.partner_dirs().values():
            run_baseline(folder, trunk, train, checkpoint=False)
        _public_references(layout, trunk, train, say)
    say(f"4/7 federated training: up to {cfg.rounds} rounds, secure aggregation")
    with clock.step("federated"):
        _federate(layout, cfg, trunk)
    if cfg.pooled:
        say("5/7 pooled reference (all data in one place: the simulation's upper bound)")
        with clock.step("pooled"):
            partners = list(layout.partner_dirs().values())
            run_pooled(partners, trunk, train, out_dir=layout.operator.pooled)
    if cfg.contribution and _groups(layout) >= 2:
        say(
            f"6/7 contribution study: every coalition of the {_groups(layout)} valuation groups "
            f"trained federatedly ({cfg.study_rounds or cfg.rounds} rounds each, secure "
            "aggregation), exact "
            "Shapley values per group"
        )
        with clock.step("contribution"):
            _study(layout, cfg)
    elif cfg.contribution:
        say(
            "6/7 contribution study skipped: it values groups of at least 3 partners that are "
            "always aggregated together (valuing single partners would expose their updates, "
            "docs/security.md); run the demo with --partners 6 or more for one"
        )
    say("7/7 evaluation and report")
    with clock.step("report"):
        files = write_report(
            layout.root,
            name=f"simulated-{cfg.dataset}{f'-{family}' if family else ''}",
            notes=[
                f"timings (s): {json.dumps(clock.timings)}",
                f"demo config: {cfg.model_dump_json()}",
            ],
            wall_seconds=clock.total(),
        )
    for name in _left_out(layout, files.summary):
        say(
            f"  {name} left out of the tables (see the report's notes): simulate more "
            "compounds per partner (--max-compounds) or lower DemoConfig.eval_fold_min"
        )
    table = partner_table(files.summary)
    say(table)
    return DemoResult(layout.root, files.summary_path, files.report_path, files.summary, table)


def run_demo(
    out_dir: str | Path,
    config: DemoConfig | None = None,
    *,
    say: Callable[[str], None] = print,
    force: bool = False,
) -> DemoResult:
    """Run the whole demo into ``out_dir`` (see the module docstring), which it replaces:
    a non-empty folder that is not a previous demo output only with ``force``."""
    prepare_demo(out_dir, config, say=say, force=force)
    return train_demo(out_dir, config, say=say)


__all__ = [
    "DemoConfig",
    "DemoResult",
    "check_demo_out",
    "prepare_demo",
    "run_demo",
    "train_demo",
]
