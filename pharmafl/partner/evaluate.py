"""``pharmafl evaluate``: score a partner's models on compounds it measured after training.

The new measurements are read, standardized, described and labelled exactly as ``prepare``
does (:mod:`pharmafl.partner.newdata`); every model the partner has (local-only, federated,
the pooled reference in simulations, any saved folder) predicts them with the partner's own
head; :func:`pharmafl.evaluation.newdata.score_new_data` scores them by the partner's own
assay ids and compares each with the local-only model, with 95 % bootstrap intervals over
tasks and over compounds. The result is a printed table and a JSON document
(:class:`NewDataEvaluation`, ``schemas/new_data_evaluation.schema.json``) that stays with the
partner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pharmafl import __version__
from pharmafl.common.errors import PreparationError
from pharmafl.common.io import atomic_write_text
from pharmafl.data.catalogue import load_catalogue
from pharmafl.evaluation.bootstrap import COMPOUND_RESAMPLES
from pharmafl.evaluation.newdata import LabelQuorum, ModelPredictions, score_new_data
from pharmafl.layout import LOCAL_MODEL, PartnerLayout
from pharmafl.model.predict import load_predictor, predict_described, task_names
from pharmafl.model.select import ModelChoice, available_models, resolve_model
from pharmafl.partner.evaluation_report import NewDataEvaluation
from pharmafl.partner.newdata import NewMeasurements, new_data_config, read_new_measurements
from pharmafl.partner.prepare import PartnerContext, load_partner_context

log = logging.getLogger(__name__)


def _choices(pdir: Path, models: Sequence[str] | None) -> list[ModelChoice]:
    chosen = [resolve_model(pdir, m) for m in models] if models else available_models(pdir)
    if not chosen:
        resolve_model(pdir)  # raises: no model at all
    names: set[str] = set()
    out = []
    for c in chosen:
        name, i = c.name, 2
        while name in names:
            name, i = f"{c.name}_{i}", i + 1
        names.add(name)
        out.append(ModelChoice(name=name, path=c.path, head=c.head))
    return out


def _predict(ctx: PartnerContext, choice: ModelChoice, new: NewMeasurements) -> ModelPredictions:
    net, hp = load_predictor(choice, ctx.params)
    head = hp.model.heads[choice.head]
    task_names(ctx.partner_dir, head.n_cls_tasks, head.n_reg_tasks)  # same tasks, or refuse
    preds = predict_described(net, hp, new.x, new.graphs, choice.head)
    return ModelPredictions(
        name=choice.name, path=str(choice.path), head=choice.head,
        cls=preds.cls_prob, reg=preds.reg_value,
    )  # fmt: skip


def _graph_models(choices: Sequence[ModelChoice]) -> bool:
    from pharmafl.model.persist import load_hyperparameters

    return any(load_hyperparameters(c.path).model.trunk.kind == "graph" for c in choices)


def evaluate_new_measurements(
    partner_dir: str | Path,
    inputs: Sequence[str] = (),
    *,
    config: str | Path | None = None,
    models: Sequence[str] | None = None,
    baseline: str = LOCAL_MODEL,
    quorum: LabelQuorum | None = None,
    keep_training_overlap: bool = False,
    resamples: int = COMPOUND_RESAMPLES,
    seed: int = 0,
    workers: int = 1,
) -> NewDataEvaluation:
    """Score the partner's models on new measurements (module docstring).

    Parameters
    ----------
    partner_dir : path
        The partner folder (config, consortium parameters and key, ``prepared/``, models).
    inputs : sequence of str
        New files: ``NEW`` replaces the one export the config reads, ``OLD=NEW`` replaces
        the config's file ``OLD`` (as the config writes it).
    config : path, optional
        A partner config for the new files instead (paths relative to its folder).
    models : sequence of str, optional
        ``local``, ``federated``, ``pooled`` or model folders; default: every one trained.
    baseline : str
        The model the others are compared with.
    quorum : LabelQuorum, optional
        New labels a task needs to be scored.
    keep_training_overlap : bool
        Also score compounds identical to training rows.
    resamples, seed
        Compound bootstrap resamples and seed.
    workers : int
        Processes for standardization and descriptors.
    """
    ctx = load_partner_context(partner_dir)
    catalogue = load_catalogue(PartnerLayout(ctx.partner_dir).prepared)
    if not catalogue.partner_ids:
        raise PreparationError(
            "prepared/ was written before tasks carried your assay ids, so new measurements "
            "cannot be matched to them.",
            file=PartnerLayout(ctx.partner_dir).prepared,
            fix="run `pharmafl prepare PARTNER_DIR` again: the same data give the same "
            "matrices, so your trained models stay valid.",
        )
    choices = _choices(ctx.partner_dir, models)
    cfg, base = new_data_config(ctx, inputs, config)
    new = read_new_measurements(
        ctx, cfg, base, catalogue, keep_training_overlap=keep_training_overlap,
        with_graphs=_graph_models(choices), workers=workers,
    )  # fmt: skip
    predictions = [_predict(ctx, c, new) for c in choices]
    scores = score_new_data(
        new.labels, predictions, quorum=quorum, baseline=baseline, resamples=resamples, seed=seed
    )
    log.info("scored %d models on %d new compounds", len(choices), scores.n_rows)
    return NewDataEvaluation(
        pharmafl_version=__version__,
        partner=ctx.config.name,
        created_at=datetime.now(UTC),
        inputs=[str(config)] if config is not None else list(inputs),
        excluded_training_overlap=not keep_training_overlap,
        counts=new.counts,
        assays_without_task=new.assays_without_task,
        scores=scores,
        rejections=new.rejections,
    )


def write_evaluation(doc: NewDataEvaluation, path: str | Path) -> Path:
    """Write the document as JSON, atomically."""
    return atomic_write_text(Path(path), doc.model_dump_json(indent=2) + "\n")


__all__ = [
    "evaluate_new_measurements",
    "write_evaluation",
]
