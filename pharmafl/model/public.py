"""A partner's local reference with public data: its own tasks and a public partner's, one
network trained on the partner's own machine.

An auxiliary public partner (``consortium simulate --auxiliary-compounds``: public assays no
partner holds) helps the federated trunk; but a partner could download the same public data
and train with it alone, without joining. So the consortium's benefit is measured against
that too: ``run_local_with_public`` trains one trunk over the partner's training folds and the
public partner's (a pooled run of the two, one head each; early stopping on the mean of both
heads' validation scores, as the federated run selects its round over every contributor), and
writes the partner's head's metrics as ``models/local_public/metrics.json``, a local reference
that :func:`pharmafl.report.partners.best_local` weighs with the others on validation.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pharmafl.common.errors import ConfigError
from pharmafl.evaluation.documents import MetricsReport
from pharmafl.layout import MODELS_DIR, PartnerLayout
from pharmafl.model.config import GraphTrunkConfig, SparseTrunkConfig, TrainConfig
from pharmafl.model.data import load_prepared
from pharmafl.model.persist import save_model_dir
from pharmafl.model.pooled import head_name, train_pooled

log = logging.getLogger(__name__)

#: Model folder (under ``models/``) and model name of the reference.
PUBLIC_REFERENCE = "local_public"


def _consistency_hash(folder: Path) -> str | None:
    """The consistency hash (parameters and key) ``prepare`` recorded; None without one."""
    try:
        return json.loads(PartnerLayout(folder).manifest.read_text()).get("consistency_hash")
    except (OSError, ValueError, AttributeError):
        return None


def _check_same_key(mine: Path, public: Path) -> None:
    """Refuse public data prepared under another key or parameters: its descriptors would be
    permuted differently and its folds would not agree (a test scaffold could train)."""
    ours, theirs = _consistency_hash(mine), _consistency_hash(public)
    if ours is not None and theirs is not None and ours != theirs:
        raise ConfigError(
            "the public partner was prepared with another consortium key or parameters: its "
            "descriptors and folds do not agree with yours.",
            file=PartnerLayout(public).manifest,
            fix="prepare the public data with your consortium.json and key.json.",
        )


def run_local_with_public(
    partner_dir: str | Path,
    public_dir: str | Path,
    trunk: SparseTrunkConfig | GraphTrunkConfig,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
) -> MetricsReport:
    """Train the partner's tasks together with the public partner's, score the partner's head
    on its own validation and test folds, and write ``models/local_public/`` (atomically):
    the model (both heads), ``hyperparameters.json`` and the partner's ``metrics.json``."""
    mine, public = Path(partner_dir), Path(public_dir)
    if head_name(mine.name) == head_name(public.name):
        raise ConfigError(
            "the public partner is the partner itself.",
            file=public,
            fix="give the auxiliary public partner's folder (prepared with the same key).",
        )
    _check_same_key(mine, public)
    graph = trunk.kind == "graph"
    data = {
        head_name(d.name): load_prepared(PartnerLayout(d).prepared, with_graphs=graph)
        for d in (mine, public)
    }
    result = train_pooled(data, trunk, config)
    report = result.report.partners[head_name(mine.name)].model_copy(
        update={"model_name": PUBLIC_REFERENCE}
    )
    dest = Path(out_dir) if out_dir is not None else mine / MODELS_DIR / PUBLIC_REFERENCE
    save_model_dir(
        dest, result.model, config, metrics=report, extra={"public_partner": public.name}
    )
    log.info("wrote %s (the partner's tasks trained with %s's)", dest, public.name)
    return report


__all__ = ["PUBLIC_REFERENCE", "run_local_with_public"]
