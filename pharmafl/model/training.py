"""Local training of the trunk and one head on one partner's matrices.

Folds as SparseChem (``--fold_va``, ``--fold_te``): rows of the test fold are removed before
training and are only scored by :meth:`LocalTrainer.evaluate` with ``"test"`` after training;
model selection (early stopping) looks at the validation fold only. The federation layer reuses
:class:`LocalTrainer` unchanged: it imports the global trunk (:func:`import_trunk`), trains for
a number of steps or epochs (optionally with the FedProx term, Li et al., MLSys 2020), and
exports the trunk (:func:`export_trunk`).

Determinism: the batch order of epoch ``e`` is a permutation drawn from ``(seed, e)`` and the
dropout masks of step ``s`` from a generator seeded with ``(seed, s)``
(:func:`pharmafl.model.dropout.seeded_randomness`), so nothing global is touched, trainers in
threads of one process do not disturb each other, and a run resumed from a checkpoint (even
mid-epoch) continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from pharmafl.common.errors import ConfigError, ModelError
from pharmafl.common.io import atomic_path
from pharmafl.evaluation.documents import EpochRecord, SplitMetrics
from pharmafl.model.batching import (
    GraphInputBatcher,
    LabelBatch,
    LabelBatcher,
    SparseInputBatcher,
)
from pharmafl.model.config import ModelConfig, SparseTrunkConfig, TrainConfig
from pharmafl.model.data import PreparedData
from pharmafl.model.dropout import seeded_randomness
from pharmafl.model.heads import HeadOutput, censored_mse_loss, classification_loss
from pharmafl.model.multitask import TRUNK_PREFIX, MultiTaskModel, export_trunk, import_trunk
from pharmafl.model.optim import build_optimizer, learning_rate, set_learning_rate
from pharmafl.model.scoring import Predictions, evaluate_predictions, predict_rows
from pharmafl.model.trunks import GraphTrunk, SparseInputTrunk

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "pharmafl.checkpoint/1"
ProgressCallback = Callable[[int, int], None]


def input_batcher(model: MultiTaskModel, data: PreparedData) -> Callable[[np.ndarray], Any]:
    """The batcher that turns row indices of ``data`` into inputs of ``model``'s trunk.

    Raises
    ------
    ModelError
        The data does not fit the trunk (feature count, missing graphs, vocabulary).
    """
    trunk = model.trunk
    if isinstance(trunk, SparseInputTrunk):
        if trunk.input_size != data.n_features:
            raise ModelError(
                f"the trunk expects {trunk.input_size} input features, the data has "
                f"{data.n_features}.",
                file=data.source,
                fix="use the consortium's fingerprint fold_size as the trunk input_size.",
            )
        cfg = model.config.trunk if model.config is not None else None
        transform = cfg.input_transform if isinstance(cfg, SparseTrunkConfig) else "none"
        return SparseInputBatcher(data.x, transform)
    if isinstance(trunk, GraphTrunk):
        if data.graphs is None:
            raise ModelError(
                "the graph trunk needs molecular graphs but none were loaded.",
                file=data.source,
                fix="load the data with load_prepared(..., with_graphs=True).",
            )
        vocab = data.graphs.vocabulary
        if (
            tuple(vocab.atom_cardinalities) != trunk.atom_cardinalities
            or tuple(vocab.bond_cardinalities) != trunk.bond_cardinalities
        ):
            raise ModelError(
                "the graphs' vocabulary does not match the graph trunk's cardinalities.",
                file=data.source,
                fix="set atom_cardinalities/bond_cardinalities from the graph vocabulary.",
            )
        return GraphInputBatcher(data.graphs)
    raise ModelError(f"no input batcher for trunk type {type(trunk).__name__}.")


def regression_stats(y_reg: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-task mean and standard deviation of the stored values in ``rows``.

    Tasks with fewer than two values or zero spread get std 1 (and mean 0 without values).
    """
    sub = sp.csc_matrix(y_reg[rows])
    counts = np.diff(sub.indptr).astype(np.float64)
    sums = np.asarray(sub.sum(axis=0)).reshape(-1)
    sq = np.asarray(sub.multiply(sub).sum(axis=0)).reshape(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / counts, 0.0)
        var = np.where(counts > 1, sq / counts - mean**2, 1.0)
    std = np.sqrt(np.clip(var, 0.0, None))
    std = np.where((std > 1e-6) & np.isfinite(std), std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


@dataclass
class TrainResult:
    """What one :meth:`LocalTrainer.train` call did.

    Attributes
    ----------
    steps : int
        Optimizer steps taken.
    mean_loss : float
        Mean normalized batch loss over those steps (NaN if none).
    seconds : float
        Wall time.
    epochs : list of EpochRecord
        Epochs completed during the call.
    stopped_early : bool
        Early stopping ended training.
    """

    steps: int
    mean_loss: float
    seconds: float
    epochs: list[EpochRecord] = field(default_factory=list)
    stopped_early: bool = False


class LocalTrainer:
    """Trains ``model``'s trunk and head ``head`` on ``data`` (SparseChem's training loop).

    Parameters
    ----------
    model : MultiTaskModel
        Built from a :class:`ModelConfig` (checkpoints store it).
    data : PreparedData
    config : TrainConfig
    head : str
        The head trained on this data.
    optimizer : torch.optim.Optimizer, optional
        Use this optimizer (e.g. one shared by several partners' trainers in pooled mode)
        instead of building one over the trunk and this head.

    Notes
    -----
    Only the trunk and this head are optimized. Regression targets are standardized per task
    over the training rows when ``config.normalize_regression`` (stats stored in the head).
    The loss of a batch is ``(c_cls · Σ w·BCE + c_reg · Σ w·censored SE) / normalize_loss``
    (``normalize_loss`` defaults to the batch size) with hybrid factors ``c_cls = 2(1−rw)``,
    ``c_reg = 2·rw`` when both task types exist (SparseChem's ``regression_weight`` rw).
    """

    def __init__(
        self,
        model: MultiTaskModel,
        data: PreparedData,
        config: TrainConfig,
        *,
        head: str = "local",
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.config = config
        self.head_name = head
        self.head = model.head(head)
        if self.head.n_cls_tasks != data.n_cls_tasks or self.head.n_reg_tasks != data.n_reg_tasks:
            raise ModelError(
                f"head {head!r} has {self.head.n_cls_tasks} classification and "
                f"{self.head.n_reg_tasks} regression outputs; the data has "
                f"{data.n_cls_tasks} and {data.n_reg_tasks} tasks.",
                file=data.source,
                fix="size the head from the partner's weights files.",
            )
        self.inputs = input_batcher(model, data)
        self.train_rows = data.rows_not_in_folds([config.fold_va, config.fold_te])
        self.valid_rows = (
            data.rows_in_folds([config.fold_va])
            if config.fold_va is not None
            else np.zeros(0, dtype=np.int64)
        )
        self.test_rows = (
            data.rows_in_folds([config.fold_te])
            if config.fold_te is not None
            else np.zeros(0, dtype=np.int64)
        )
        if len(self.train_rows) == 0:
            raise ModelError(
                "no training rows left after removing the validation and test folds.",
                file=data.source,
                fix="check fold_va / fold_te against the folds present in the data.",
            )
        n_train = len(self.train_rows)
        self.batch_size = config.batch_size or max(1, math.ceil(config.batch_ratio * n_train))
        self.steps_per_epoch = math.ceil(n_train / self.batch_size)
        mean = std = None
        if config.normalize_regression and data.n_reg_tasks:
            mean, std = regression_stats(data.y_reg, self.train_rows)
            self.head.set_regression_stats(mean, std)
        self.labels = LabelBatcher(data, mean, std)
        self.cls_weight = torch.as_tensor(data.cls_weights["training_weight"].to_numpy(np.float32))
        self.reg_weight = torch.as_tensor(data.reg_weights["training_weight"].to_numpy(np.float32))
        self.reg_censored_weight = torch.as_tensor(
            data.reg_weights["censored_weight"].to_numpy(np.float32)
        )
        hybrid = data.n_cls_tasks > 0 and data.n_reg_tasks > 0
        rw = config.regression_weight
        self.cls_factor = 2.0 * (1.0 - rw) if hybrid else 1.0
        self.reg_factor = 2.0 * rw if hybrid else 1.0
        params = [p for n, p in model.named_parameters() if n.startswith(TRUNK_PREFIX)]
        params += list(self.head.parameters())
        self.optimizer = optimizer if optimizer is not None else build_optimizer(params, config)
        self.epoch = 0
        self.step = 0
        self.position = 0
        self.history: list[EpochRecord] = []
        self._acc = {"loss": 0.0, "n": 0, "seconds": 0.0}
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_evals = 0
        self.stopped = False

    # -- schedule and randomness ----------------------------------------------------------------

    def permutation(self, epoch: int) -> np.ndarray:
        """Training rows in the (seeded) order of ``epoch``."""
        rng = np.random.default_rng([self.config.seed, 0, epoch])
        return rng.permutation(self.train_rows)

    def _step_seed(self, step: int) -> int:
        return int(np.random.SeedSequence([self.config.seed, 1, step]).generate_state(1)[0])

    @property
    def selection_metric(self) -> str:
        """The validation metric used for early stopping."""
        m = self.config.selection_metric
        if m == "auto":
            return "roc_auc" if self.data.n_cls_tasks else "rmse"
        return m

    # -- one step -------------------------------------------------------------------------------

    def batch_loss(self, out: HeadOutput, labels: LabelBatch, n_rows: int) -> torch.Tensor:
        """The normalized training loss of one batch (see the class notes)."""
        total = torch.zeros(())
        if out.cls_logits is not None:
            total = total + self.cls_factor * classification_loss(
                out.cls_logits, labels.cls_y, labels.cls_mask, self.cls_weight
            )
        if out.reg_values is not None:
            total = total + self.reg_factor * censored_mse_loss(
                out.reg_values,
                labels.reg_y,
                labels.reg_censor,
                labels.reg_mask,
                self.reg_weight,
                self.reg_censored_weight,
                censored=self.config.censored_loss,
            )
        return total / (self.config.normalize_loss or n_rows)

    def _set_proximal(self, mu: float, reference: Mapping[str, torch.Tensor] | None) -> None:
        """FedProx: ``μ (w − w_ref)`` joins every trunk gradient (None/0: off)."""
        pairs = None
        if reference is not None and mu > 0:
            pairs = [
                (p, reference[n])
                for n, p in self.model.named_parameters()
                if n.startswith(TRUNK_PREFIX)
            ]
        setter = getattr(self.optimizer, "set_proximal", None)
        if setter is None:
            if pairs:
                raise ModelError(
                    "FedProx needs an optimizer from pharmafl.model.build_optimizer.",
                    fix="do not pass a custom optimizer together with prox_mu > 0.",
                )
            return
        setter(mu, pairs)

    def train_step(self, rows: np.ndarray) -> float:
        """One optimizer step on ``rows`` (dropout seeded by the current step counter).

        Counters are not advanced (:meth:`train` does that). Returns the batch loss.
        """
        inputs = self.inputs(rows)
        labels = self.labels(rows)
        self.model.train()
        with seeded_randomness(self.model, self._step_seed(self.step)):
            out = self.model(inputs, head=self.head_name)
            loss = self.batch_loss(out, labels, len(rows))
            loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    # -- training -------------------------------------------------------------------------------

    def train(
        self,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        prox_mu: float = 0.0,
        global_trunk: Mapping[str, torch.Tensor] | None = None,
        evaluate: bool | None = None,
        checkpoint: str | Path | None = None,
        progress: ProgressCallback | None = None,
    ) -> TrainResult:
        """Train for ``epochs`` epochs or ``steps`` optimizer steps (default: up to
        ``config.epochs`` in total).

        Parameters
        ----------
        epochs, steps : int, optional
            At most one. Training continues from where the previous call stopped.
        prox_mu : float
            FedProx coefficient μ: adds ``μ/2 ||w − w_global||²`` over the trunk.
        global_trunk : mapping, optional
            The global trunk state (``export_trunk`` keys). When given it is loaded into the
            model first and is the FedProx reference; without it the reference is the trunk
            at the start of this call.
        evaluate : bool, optional
            Score the validation fold at epoch ends (default: in epoch mode only).
        checkpoint : path, optional
            Write a resumable checkpoint there at every epoch end and at the end.
        progress : callable, optional
            ``progress(done_steps, total_steps)`` after every step.
        """
        if epochs is not None and steps is not None:
            raise ConfigError("give epochs or steps, not both.")
        if prox_mu < 0:
            raise ConfigError(f"prox_mu must be >= 0, got {prox_mu}.")
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        if global_trunk is not None:
            import_trunk(self.model, global_trunk)
        reference: Mapping[str, torch.Tensor] | None = None
        if prox_mu > 0:
            reference = (
                {k: v.detach().clone() for k, v in global_trunk.items()}
                if global_trunk is not None
                else export_trunk(self.model)
            )
        if evaluate is None:
            evaluate = steps is None
        spe = self.steps_per_epoch
        if steps is not None:
            target = self.step + int(steps)
        else:
            n_epochs = max(self.config.epochs - self.epoch, 0) if epochs is None else int(epochs)
            target = (self.epoch + n_epochs) * spe
        total = max(target - self.step, 0)
        start_step, t0 = self.step, time.perf_counter()
        losses: list[float] = []
        done_epochs: list[EpochRecord] = []
        self._set_proximal(prox_mu, reference)
        try:
            self._loop(
                target, total, start_step, evaluate, checkpoint, progress, losses, done_epochs
            )
        finally:
            self._set_proximal(0.0, None)
        if self.config.early_stopping_patience is not None and (
            self.stopped or self.epoch >= self.config.epochs
        ):
            self.restore_best()
        if checkpoint is not None and self.step > start_step:
            self.save_checkpoint(checkpoint)
        return TrainResult(
            steps=self.step - start_step,
            mean_loss=float(np.mean(losses)) if losses else math.nan,
            seconds=time.perf_counter() - t0,
            epochs=done_epochs,
            stopped_early=self.stopped,
        )

    def _loop(
        self,
        target: int,
        total: int,
        start_step: int,
        evaluate: bool,
        checkpoint: str | Path | None,
        progress: ProgressCallback | None,
        losses: list[float],
        done_epochs: list[EpochRecord],
    ) -> None:
        spe = self.steps_per_epoch
        perm = self.permutation(self.epoch)
        while self.step < target and not self.stopped:
            t_step = time.perf_counter()
            rows = perm[self.position * self.batch_size : (self.position + 1) * self.batch_size]
            lr = learning_rate(self.config, self.epoch)
            set_learning_rate(self.optimizer, lr)
            loss = self.train_step(rows)
            if not math.isfinite(loss):
                raise ModelError(
                    f"training loss became {loss} at step {self.step}.",
                    fix="lower the learning rate or check the regression values.",
                )
            losses.append(loss)
            self._acc["loss"] += loss
            self._acc["n"] += 1
            self._acc["seconds"] += time.perf_counter() - t_step
            self.step += 1
            self.position += 1
            if self.position == spe:
                done_epochs.append(self._end_epoch(lr, evaluate))
                if checkpoint is not None:
                    self.save_checkpoint(checkpoint)
                perm = self.permutation(self.epoch)
            if progress is not None:
                progress(self.step - start_step, total)

    def _end_epoch(self, lr: float, evaluate: bool) -> EpochRecord:
        self.epoch += 1
        self.position = 0
        acc = self._acc
        record = EpochRecord(
            epoch=self.epoch,
            step=self.step,
            lr=lr,
            train_loss=acc["loss"] / acc["n"] if acc["n"] else None,
            seconds=acc["seconds"],
        )
        self._acc = {"loss": 0.0, "n": 0, "seconds": 0.0}
        every = self.config.eval_every
        due = (every > 0 and self.epoch % every == 0) or self.epoch == self.config.epochs
        if evaluate and due and len(self.valid_rows):
            val = self.evaluate("validation")
            agg: dict[str, float | None] = {}
            for part in (val.classification, val.regression):
                if part is not None:
                    prefix = "" if part.task_type == "classification" else "reg_"
                    agg |= {f"{prefix}{k}": v for k, v in part.aggregate.items()}
            record = record.model_copy(update={"validation": agg})
            self._update_early_stopping(val.metric(self.selection_metric))
        self.history.append(record)
        log.info(
            "epoch %d: loss %.5f, lr %.2e, %.1f s%s",
            self.epoch,
            record.train_loss if record.train_loss is not None else math.nan,
            lr,
            record.seconds,
            f", validation {self.selection_metric} "
            f"{(record.validation or {}).get(self.selection_metric)}"
            if record.validation
            else "",
        )
        return record

    def _update_early_stopping(self, value: float) -> None:
        patience = self.config.early_stopping_patience
        if patience is None:
            return
        lower_better = self.selection_metric == "rmse"
        score = -value if lower_better else value
        if math.isfinite(score) and (self.best_metric is None or score > self.best_metric):
            self.best_metric = score
            self.best_epoch = self.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.bad_evals = 0
        else:
            self.bad_evals += 1
            if self.bad_evals >= patience:
                log.info("early stopping after epoch %d (best %s)", self.epoch, self.best_epoch)
                self.stopped = True

    def restore_best(self) -> None:
        """Load the best validated state (early stopping), if one was kept."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)

    # -- evaluation -----------------------------------------------------------------------------

    def rows(self, split: str) -> np.ndarray:
        """Row indices of ``"train"``, ``"validation"`` or ``"test"``."""
        table = {"train": self.train_rows, "validation": self.valid_rows, "test": self.test_rows}
        if split not in table:
            raise ConfigError(f"unknown split {split!r}; valid: {', '.join(table)}.")
        return table[split]

    def predict(self, split: str, **kwargs: Any) -> Predictions:
        """Predictions of this head for a split (keywords go to :func:`predict_rows`)."""
        kwargs.setdefault("batch_size", self.config.eval_batch_size)
        return predict_rows(
            self.model, self.inputs, self.rows(split), head=self.head_name, **kwargs
        )

    def evaluate(self, split: str = "validation") -> SplitMetrics:
        """Per-task and aggregate metrics on a split (dropout off)."""
        rows = self.rows(split)
        return evaluate_predictions(self.data, rows, self.predict(split))

    # -- checkpoints ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds (tensors, numbers, strings only)."""
        if self.model.config is None:
            raise ModelError("checkpoints need a model built from a ModelConfig.")
        return {
            "format": CHECKPOINT_FORMAT,
            "model_config": self.model.config.model_dump(mode="json"),
            "train_config": self.config.model_dump(mode="json"),
            "head": self.head_name,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "counters": {"epoch": self.epoch, "step": self.step, "position": self.position},
            "acc": dict(self._acc),
            "history": [r.model_dump(mode="json") for r in self.history],
            "best": {
                "metric": self.best_metric,
                "epoch": self.best_epoch,
                "bad_evals": self.bad_evals,
                "stopped": self.stopped,
            },
            "best_state": self.best_state,
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write a resumable checkpoint atomically."""
        with atomic_path(path) as tmp:
            torch.save(self.state(), tmp)
        return Path(path)

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state` dict into this trainer (same model and data shapes)."""
        self.model.load_state_dict(state["model_state"])
        self.optimizer.load_state_dict(state["optimizer_state"])
        c = state["counters"]
        self.epoch, self.step, self.position = int(c["epoch"]), int(c["step"]), int(c["position"])
        self._acc = dict(state["acc"])
        self.history = [EpochRecord.model_validate(r) for r in state["history"]]
        b = state["best"]
        self.best_metric, self.best_epoch = b["metric"], b["epoch"]
        self.bad_evals, self.stopped = int(b["bad_evals"]), bool(b["stopped"])
        self.best_state = state["best_state"]

    @classmethod
    def from_checkpoint(cls, path: str | Path, data: PreparedData) -> LocalTrainer:
        """Rebuild model, optimizer and progress from :meth:`save_checkpoint`'s file.

        Raises
        ------
        ModelError
            Missing, unreadable or foreign checkpoint.
        """
        state = load_checkpoint(path)
        model = MultiTaskModel.from_config(ModelConfig.model_validate(state["model_config"]))
        trainer = cls(
            model,
            data,
            TrainConfig.model_validate(state["train_config"]),
            head=str(state["head"]),
        )
        trainer.load_state(state)
        return trainer


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file (tensors and plain values only: ``weights_only`` loading)."""
    p = Path(path)
    if not p.is_file():
        raise ModelError("checkpoint not found.", file=p, fix="train without --resume first.")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        raise ModelError(
            f"cannot read checkpoint ({type(exc).__name__}).",
            file=p,
            fix="delete it and train again.",
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelError("not a pharmafl checkpoint.", file=p, fix="delete it and train again.")
    return state


def train_local(
    model: MultiTaskModel,
    data: PreparedData,
    config: TrainConfig,
    *,
    head: str = "local",
    steps: int | None = None,
    epochs: int | None = None,
    prox_mu: float = 0.0,
    global_trunk: Mapping[str, torch.Tensor] | None = None,
) -> TrainResult:
    """One-shot local training with a fresh optimizer (see :meth:`LocalTrainer.train`).

    For several federated rounds that should keep optimizer state and the position in the
    epoch, keep one :class:`LocalTrainer` and call its ``train`` each round instead.
    """
    trainer = LocalTrainer(model, data, config, head=head)
    return trainer.train(steps=steps, epochs=epochs, prox_mu=prox_mu, global_trunk=global_trunk)


__all__ = [
    "CHECKPOINT_FORMAT",
    "LocalTrainer",
    "TrainResult",
    "input_batcher",
    "load_checkpoint",
    "regression_stats",
    "train_local",
]
