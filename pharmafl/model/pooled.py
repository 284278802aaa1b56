"""Pooled mode: one trunk trained on every simulated partner's data, one head per partner.

This is the simulation's upper bound for federated learning (all data in one place, no
privacy): the batches of all partners are interleaved in a shuffled round-robin within each
epoch (each partner contributes its own ``batch_ratio`` batches), one optimizer updates the
shared trunk and the head of the partner whose batch it is, and each partner's tasks are
scored separately on its own validation and test folds. Folds are keyed by scaffold and thus
consistent across partners, so no test compound of one partner trains another's batch under a
different fold.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pharmafl.common.errors import ConfigError, DataNotFoundError, ModelError
from pharmafl.common.io import atomic_write_text
from pharmafl.evaluation.documents import EpochRecord, MetricsReport, PooledReport
from pharmafl.layout import MODELS_DIR, POOLED_MODEL, ConsortiumLayout, PartnerLayout
from pharmafl.model.baseline import LOCAL_MODEL_DIR, fit_trunk_to_data
from pharmafl.model.config import (
    GraphTrunkConfig,
    HeadConfig,
    ModelConfig,
    SparseTrunkConfig,
    TrainConfig,
)
from pharmafl.model.data import PreparedData, load_prepared
from pharmafl.model.multitask import MultiTaskModel
from pharmafl.model.optim import build_optimizer, learning_rate, set_learning_rate
from pharmafl.model.persist import METRICS_FILE, save_model_dir
from pharmafl.model.training import LocalTrainer, ProgressCallback

log = logging.getLogger(__name__)

POOLED_MODEL_DIR = Path(MODELS_DIR) / POOLED_MODEL


@dataclass
class PooledResult:
    """The trained pooled model and each partner's metrics."""

    model: MultiTaskModel
    report: PooledReport


def head_name(partner: str) -> str:
    """A valid head name (Python identifier) for a partner folder name."""
    name = re.sub(r"\W", "_", partner)
    return name if name.isidentifier() else f"p_{name}"


def train_pooled(
    partners: Mapping[str, PreparedData],
    trunk: SparseTrunkConfig | GraphTrunkConfig,
    config: TrainConfig,
    *,
    progress: ProgressCallback | None = None,
) -> PooledResult:
    """Train one trunk with one head per partner on all partners' training folds.

    Parameters
    ----------
    partners : mapping of head name to PreparedData
    trunk : trunk config (data-given sizes are set from the first partner)
    config : TrainConfig
        ``epochs``, folds, optimizer, … as for local training; early stopping (if set)
        follows the mean validation metric over partners.
    progress : callable, optional
        ``progress(done_steps, total_steps)``.
    """
    if not partners:
        raise ConfigError("pooled training needs at least one partner.")
    names = list(partners)
    first = partners[names[0]]
    widths = {n: d.n_features for n, d in partners.items()}
    if len(set(widths.values())) != 1:
        raise ModelError(
            f"partners have different feature counts {widths}.",
            fix="prepare every partner with the same consortium parameters and key.",
        )
    trunk = fit_trunk_to_data(trunk, first)
    model_cfg = ModelConfig(
        trunk=trunk,
        heads={
            n: HeadConfig(n_cls_tasks=d.n_cls_tasks, n_reg_tasks=d.n_reg_tasks)
            for n, d in partners.items()
        },
    )
    model = MultiTaskModel.from_config(model_cfg, seed=config.seed)
    optimizer = build_optimizer(model.parameters(), config)
    trainers = {
        n: LocalTrainer(model, d, config, head=n, optimizer=optimizer) for n, d in partners.items()
    }
    total = config.epochs * sum(t.steps_per_epoch for t in trainers.values())
    done = 0
    history: list[EpochRecord] = []
    best: tuple[float, int, dict] | None = None
    bad = 0
    for epoch in range(config.epochs):
        lr = learning_rate(config, epoch)
        set_learning_rate(optimizer, lr)
        schedule = np.concatenate(
            [np.full(t.steps_per_epoch, i) for i, t in enumerate(trainers.values())]
        )
        np.random.default_rng([config.seed, 2, epoch]).shuffle(schedule)
        perms = {n: t.permutation(epoch) for n, t in trainers.items()}
        position = dict.fromkeys(names, 0)
        losses: list[float] = []
        t0 = time.perf_counter()
        for i in schedule:
            n = names[int(i)]
            tr = trainers[n]
            k = position[n]
            rows = perms[n][k * tr.batch_size : (k + 1) * tr.batch_size]
            losses.append(tr.train_step(rows))
            position[n] += 1
            tr.step += 1
            done += 1
            if progress is not None:
                progress(done, total)
        seconds = time.perf_counter() - t0
        for tr in trainers.values():
            tr.epoch += 1
        validation: dict[str, float | None] = {}
        scores = []
        for n, tr in trainers.items():
            if len(tr.valid_rows) == 0:
                continue
            m = tr.evaluate("validation").metric(tr.selection_metric)
            validation[f"{n}_{tr.selection_metric}"] = None if math.isnan(m) else m
            scores.append(-m if tr.selection_metric == "rmse" else m)
        finite = [s for s in scores if math.isfinite(s)]
        mean_score = float(np.mean(finite)) if finite else math.nan
        validation["mean_score"] = None if math.isnan(mean_score) else mean_score
        history.append(
            EpochRecord(
                epoch=epoch + 1,
                step=done,
                lr=lr,
                train_loss=float(np.mean(losses)) if losses else None,
                seconds=seconds,
                validation=validation,
            )
        )
        log.info(
            "pooled epoch %d: loss %.5f, mean validation score %.4f",
            epoch + 1,
            history[-1].train_loss or math.nan,
            mean_score,
        )
        patience = config.early_stopping_patience
        if patience is not None:
            if math.isfinite(mean_score) and (best is None or mean_score > best[0]):
                best = (mean_score, epoch + 1, copy.deepcopy(model.state_dict()))
                bad = 0
            else:
                bad += 1
                if bad >= patience:
                    break
    best_epoch = None
    if best is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    reports = {}
    for n, tr in trainers.items():
        reports[n] = MetricsReport(
            model_name="pooled",
            head=n,
            fold_va=config.fold_va,
            fold_te=config.fold_te,
            epochs_trained=tr.epoch,
            best_epoch=best_epoch,
            validation=tr.evaluate("validation") if len(tr.valid_rows) else None,
            test=tr.evaluate("test") if len(tr.test_rows) else None,
        )
    return PooledResult(model=model, report=PooledReport(partners=reports, history=history))


def find_partner_dirs(paths: Sequence[str | Path]) -> dict[str, Path]:
    """Partner folders (with ``prepared/``) from partner folders or one consortium folder.

    A single folder that has no ``prepared/`` but a ``partners/`` sub-folder (the simulation
    layout) stands for every ``partners/*`` holding ``prepared/``.
    """
    dirs: list[Path] = []
    for p in map(Path, paths):
        if PartnerLayout(p).prepared.is_dir():
            dirs.append(p)
        elif (c := ConsortiumLayout(p)).partners_dir.is_dir():
            dirs += [d.root for d in c.partners() if d.prepared.is_dir()]
        else:
            raise DataNotFoundError(
                "neither a partner folder with prepared/ nor a consortium folder with partners/.",
                file=p,
                fix="run `pharmafl prepare` for each partner first.",
            )
    if not dirs:
        raise DataNotFoundError("no prepared partners found.", file=str(paths))
    out: dict[str, Path] = {}
    for d in dirs:
        name = head_name(d.name)
        if name in out:
            raise ConfigError(f"two partners map to the head name {name!r}.", file=d)
        out[name] = d
    return out


def _comparison(report: PooledReport, partner_dirs: Mapping[str, Path]) -> pd.DataFrame:
    rows = []
    for n, rep in report.partners.items():
        row: dict[str, object] = {"partner": n}
        local_file = partner_dirs[n] / LOCAL_MODEL_DIR / METRICS_FILE
        local = (
            MetricsReport.model_validate_json(local_file.read_text(encoding="utf-8"))
            if local_file.is_file()
            else None
        )
        for tag, r in (("local", local), ("pooled", rep)):
            for metric in ("roc_auc", "auc_pr"):
                row[f"{tag}_test_{metric}"] = r.test.metric(metric) if r and r.test else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def run_pooled(
    paths: Sequence[str | Path],
    trunk: SparseTrunkConfig | GraphTrunkConfig,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> PooledReport:
    """Load partners, train the pooled model and write it with its metrics.

    Writes ``model.pt``, ``hyperparameters.json``, ``metrics.json`` (:class:`PooledReport`)
    and ``comparison.csv`` (per partner: local-only and pooled test ROC-AUC / AUC-PR, the
    local values read from each partner's ``models/local/metrics.json`` when present) into
    ``out_dir`` (default ``<consortium or first partner folder>/models/pooled``).
    """
    partner_dirs = find_partner_dirs(paths)
    graph = trunk.kind == "graph"
    data = {
        n: load_prepared(PartnerLayout(d).prepared, with_graphs=graph)
        for n, d in partner_dirs.items()
    }
    result = train_pooled(data, trunk, config, progress=progress)
    table = _comparison(result.report, partner_dirs)
    dest = Path(out_dir) if out_dir is not None else Path(paths[0]) / POOLED_MODEL_DIR
    save_model_dir(
        dest,
        result.model,
        config,
        metrics=result.report,
        extra={"partners": {n: str(d) for n, d in partner_dirs.items()}},
    )
    atomic_write_text(dest / "comparison.csv", table.to_csv(index=False))
    log.info("pooled model written to %s\n%s", dest, table.to_string(index=False))
    return result.report


__all__ = [
    "POOLED_MODEL_DIR",
    "PooledReport",
    "PooledResult",
    "find_partner_dirs",
    "head_name",
    "run_pooled",
    "train_pooled",
]
