"""Where everything of a consortium lives: one module names every folder and file.

A consortium folder (what ``pharmafl consortium simulate`` writes, or what an operator and
its partners agree to lay out on one machine) holds::

    CONSORTIUM_DIR/
      operator/        OperatorLayout: identity, roster, plan, state, ledger, runs, study
      partners/<id>/   PartnerLayout: exports, key, prepared/, cache/, models/, identity,
                       roster pin, the ledger heads it saw
      exchange/        the exchange store of the embedded default
      report/          summary.json + report.html
      demo.json        only in a ``pharmafl demo`` output: the demo's settings

Across organisations each party has only its own folder (an operator folder, or one partner
folder); the same layouts name what is inside. Nothing else in pharmafl spells these names.
Torch-free and dependency-free (both sides import it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pharmafl.common.errors import ConfigError

#: Run id of the consortium's main training run. Its files keep their historical places
#: (``operator/plan.json``, ``operator/state/``, ``PARTNER_DIR/models/federated/``); every
#: other run lives in a ``runs/<run id>/`` folder of its own.
MAIN_RUN_ID = "train"

OPERATOR_DIR = "operator"
PARTNERS_DIR = "partners"
EXCHANGE_DIR = "exchange"
REPORT_DIR = "report"
#: Written by ``pharmafl demo`` into its output folder: a folder ``demo --out`` may replace.
DEMO_FILE = "demo.json"
SIMULATION_FILE = "simulation.json"

IDENTITY_DIR = "identity"
ROSTER_FILE = "roster.json"
ROSTER_PIN_FILE = "roster.pin"
CONSORTIUM_FILE = "consortium.json"
KEY_FILE = "key.json"

PLAN_FILE = "plan.json"
INITIAL_TRUNK_FILE = "initial_trunk.npz"
STATE_DIR = "state"
CHECKPOINT_FILE = "checkpoint.json"
BEST_TRUNK_FILE = "best_trunk.npz"
LEDGER_FILE = "ledger.jsonl"
LEDGER_HEADS_FILE = "ledger_heads.jsonl"
AGGREGATED_STARTS_FILE = "aggregated_starts.json"
FINAL_TRUNK_FILE = "final_trunk.npz"
RUNS_DIR = "runs"
POOLED_DIR = "pooled"
CONTRIBUTION_DIR = "contribution"
CONTRIBUTION_FILE = "contribution.json"

PREPARED_DIR = "prepared"
MANIFEST_FILE = "manifest.json"
#: A partner's private caches (never shared, safe to delete: they only save time).
CACHE_DIR = "cache"
PREPARE_CACHE_DIR = "prepare"
DESCRIBE_CACHE_FILE = "describe.npz"
MODELS_DIR = "models"
LOCAL_MODEL = "local"
FEDERATED_MODEL = "federated"
POOLED_MODEL = "pooled"
MODEL_SUBDIR = "model"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"


#: An identifier that names a folder or file (a run id, a partner, a model): one plain path
#: component, never ``.``, ``..``, empty or with a separator. Run ids and party ids are
#: narrower still (``pharmafl.contract.runs.RUN_ID_PATTERN``, the roster's party ids).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


def _child(root: Path, *names: str) -> Path:
    return root.joinpath(*names)


def _named(folder: Path, name: str, what: str) -> Path:
    """``folder/name`` for an identifier ``name`` that may come from another party (a signed
    spec, a roster, a ledger): refused unless it is one plain name whose resolved path stays
    in ``folder`` (a link that leads out is refused too).

    Raises
    ------
    ConfigError
        Naming the identifier and what a valid one looks like.
    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise ConfigError(
            f"{what} {name!r} is not a plain name; it would leave {folder}.",
            fix="use 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit "
            "(no '/', no '..'); if it came in a signed spec or document, report it to its "
            "author.",
        )
    path = _child(folder, name)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise ConfigError(
            f"{what} {name!r} resolves outside {folder} (a link leads out).",
            file=path,
            fix="replace the link by a real folder, or remove it.",
        )
    return path


@dataclass(frozen=True)
class _PartyLayout:
    """What every party's folder holds: its signing identity, the roster and the consortium
    parameters."""

    root: Path

    @property
    def identity(self) -> Path:
        return _child(self.root, IDENTITY_DIR)

    @property
    def roster(self) -> Path:
        return _child(self.root, ROSTER_FILE)

    @property
    def consortium(self) -> Path:
        return _child(self.root, CONSORTIUM_FILE)


@dataclass(frozen=True)
class OperatorLayout(_PartyLayout):
    """The operator's folder: identity, roster, consortium parameters, runs and ledger."""

    @property
    def initial_trunk(self) -> Path:
        return _child(self.root, INITIAL_TRUNK_FILE)

    @property
    def ledger(self) -> Path:
        return _child(self.root, LEDGER_FILE)

    @property
    def plan(self) -> Path:
        """The main run's plan."""
        return _child(self.root, PLAN_FILE)

    @property
    def pooled(self) -> Path:
        """The pooled reference model (simulations only: it needs every partner's data)."""
        return _child(self.root, POOLED_DIR)

    @property
    def contribution_dir(self) -> Path:
        """Per-study caches of the contribution study."""
        return _child(self.root, CONTRIBUTION_DIR)

    @property
    def contribution(self) -> Path:
        """The last contribution study's result."""
        return _child(self.root, CONTRIBUTION_FILE)

    def run_dir(self, run_id: str | None = None) -> Path:
        """Where a run's plan, state and final trunk live (``None``: the main run).

        Raises
        ------
        ConfigError
            ``run_id`` is not one plain name inside ``runs/``.
        """
        if run_id is None:
            return self.root
        return _named(_child(self.root, RUNS_DIR), run_id, "run id")

    def run_initial_trunk(self, run_id: str | None = None) -> Path:
        """A run's own initial trunk (a run with its own seed), else the consortium's."""
        if run_id is not None and run_id != MAIN_RUN_ID:
            own = _child(self.run_dir(run_id), INITIAL_TRUNK_FILE)
            if own.is_file():
                return own
        return self.initial_trunk

    def run_plan(self, run_id: str | None = None) -> Path:
        return _child(self.run_dir(run_id), PLAN_FILE)

    def state_dir(self, run_id: str | None = None) -> Path:
        return _child(self.run_dir(run_id), STATE_DIR)

    def final_trunk(self, run_id: str | None = None) -> Path:
        return _child(self.run_dir(run_id), FINAL_TRUNK_FILE)


@dataclass(frozen=True)
class PartnerLayout(_PartyLayout):
    """One partner's folder: its exports and key, prepared data, models and identity."""

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def roster_pin(self) -> Path:
        return _child(self.root, ROSTER_PIN_FILE)

    @property
    def ledger_heads(self) -> Path:
        """The operator's ledger heads this partner saw in signed round specs (append-only;
        its evidence against a rewritten ledger)."""
        return _child(self.root, LEDGER_HEADS_FILE)

    @property
    def aggregated_starts(self) -> Path:
        """Every global trunk this partner revealed an update from, with the contributors
        of that aggregate (any run; pharmafl.partner.reveals)."""
        return _child(self.root, AGGREGATED_STARTS_FILE)

    @property
    def key(self) -> Path:
        """The consortium key (owner-only; never leaves the partner)."""
        return _child(self.root, KEY_FILE)

    @property
    def prepared(self) -> Path:
        return _child(self.root, PREPARED_DIR)

    @property
    def manifest(self) -> Path:
        """The preparation manifest (counts and hashes; may leave the partner)."""
        return _child(self.root, PREPARED_DIR, MANIFEST_FILE)

    @property
    def prepare_cache(self) -> Path:
        """``cache/prepare/``: what ``prepare`` keeps between runs (private, disposable)."""
        return _child(self.root, CACHE_DIR, PREPARE_CACHE_DIR)

    @property
    def describe_cache(self) -> Path:
        """The per-molecule results of the last ``prepare`` (pharmafl.chem.cache)."""
        return _child(self.prepare_cache, DESCRIBE_CACHE_FILE)

    @property
    def models(self) -> Path:
        return _child(self.root, MODELS_DIR)

    def model_dir(self, name: str) -> Path:
        """``models/<name>/`` (``local``, ``federated``, ``pooled``); ``name`` must be one
        plain name (:class:`~pharmafl.common.errors.ConfigError` otherwise)."""
        return _named(_child(self.root, MODELS_DIR), name, "model name")

    @property
    def local_metrics(self) -> Path:
        """The local-only baseline's metrics."""
        return _child(self.model_dir(LOCAL_MODEL), METRICS_FILE)

    def run_dir(self, run_id: str) -> Path:
        """The partner's folder of one federated run: ``models/federated/`` for the main run,
        ``models/runs/<run id>/`` for any other.

        Raises
        ------
        ConfigError
            ``run_id`` (it comes from the operator's spec) is not one plain name inside
            ``models/runs/``.
        """
        if run_id == MAIN_RUN_ID:
            return self.model_dir(FEDERATED_MODEL)
        return _named(_child(self.root, MODELS_DIR, RUNS_DIR), run_id, "run id")

    @property
    def federated_metrics(self) -> Path:
        """The main run's federated model's metrics (after its final evaluation)."""
        return _child(self.run_dir(MAIN_RUN_ID), MODEL_SUBDIR, METRICS_FILE)


@dataclass(frozen=True)
class ConsortiumLayout:
    """A consortium folder with the operator and every partner on one machine."""

    root: Path

    @property
    def operator(self) -> OperatorLayout:
        return OperatorLayout(_child(self.root, OPERATOR_DIR))

    @property
    def partners_dir(self) -> Path:
        return _child(self.root, PARTNERS_DIR)

    @property
    def simulation(self) -> Path:
        """What a simulation wrote the consortium from (``simulate``'s manifest)."""
        return _child(self.root, SIMULATION_FILE)

    @property
    def exchange(self) -> Path:
        """The embedded default's exchange store."""
        return _child(self.root, EXCHANGE_DIR)

    @property
    def report(self) -> Path:
        return _child(self.root, REPORT_DIR)

    @property
    def demo_marker(self) -> Path:
        """``demo.json``: the folder is a ``pharmafl demo`` output (with the demo's settings)."""
        return _child(self.root, DEMO_FILE)

    def partner(self, name: str) -> PartnerLayout:
        """``partners/<name>/``; ``name`` (from a roster, a ledger, a plan) must be one plain
        name (:class:`~pharmafl.common.errors.ConfigError` otherwise)."""
        return PartnerLayout(_named(self.partners_dir, name, "partner name"))

    def partner_dirs(self) -> dict[str, Path]:
        """Every partner folder, by name (sorted); empty when there is no ``partners/``."""
        if not self.partners_dir.is_dir():
            return {}
        return {p.name: p for p in sorted(self.partners_dir.iterdir()) if p.is_dir()}

    def partners(self) -> list[PartnerLayout]:
        return [PartnerLayout(p) for p in self.partner_dirs().values()]


__all__ = [
    "AGGREGATED_STARTS_FILE",
    "BEST_TRUNK_FILE",
    "CACHE_DIR",
    "CHECKPOINT_FILE",
    "CONSORTIUM_FILE",
    "CONTRIBUTION_DIR",
    "CONTRIBUTION_FILE",
    "ConsortiumLayout",
    "DEMO_FILE",
    "DESCRIBE_CACHE_FILE",
    "EXCHANGE_DIR",
    "FEDERATED_MODEL",
    "FINAL_TRUNK_FILE",
    "IDENTITY_DIR",
    "INITIAL_TRUNK_FILE",
    "KEY_FILE",
    "LEDGER_FILE",
    "LEDGER_HEADS_FILE",
    "LOCAL_MODEL",
    "MAIN_RUN_ID",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "MODELS_DIR",
    "MODEL_SUBDIR",
    "NAME_PATTERN",
    "OPERATOR_DIR",
    "OperatorLayout",
    "PARTNERS_DIR",
    "PLAN_FILE",
    "POOLED_DIR",
    "POOLED_MODEL",
    "PREPARED_DIR",
    "PREPARE_CACHE_DIR",
    "PartnerLayout",
    "REPORT_DIR",
    "REPORT_FILE",
    "ROSTER_FILE",
    "ROSTER_PIN_FILE",
    "RUNS_DIR",
    "SIMULATION_FILE",
    "STATE_DIR",
    "SUMMARY_FILE",
]
