"""Regularisation chosen by data size: trunk width, dropout and weight decay of a sparse trunk
for a given number of training rows, when the user sets none of them.

Small partners overfit a wide trunk within two or three epochs unless dropout is heavy; large
ones underfit under heavy dropout. The rule is a short table, measured with
``benchmarks/quality.py`` and the recipe sweep it documents (``docs/benchmarks.md``); the
choice and its reason are written to the model's ``hyperparameters.json`` (``extra.
regularisation``), so a saved model says why it has the width and dropout it has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pharmafl.model.config import SparseTrunkConfig, TrainConfig


@dataclass(frozen=True)
class SizeRule:
    """One row of the rule: up to ``max_rows`` training rows (None: any), these settings."""

    max_rows: int | None
    hidden: int
    dropout: float
    weight_decay: float


#: Measured on the Tox21 (≈ 2,100 training rows per partner) and FS-Mol kinase consortia of
#: ``benchmarks/quality.py``: at ≈ 2 k rows, hidden 2,000 with dropout 0.8 beats dropout 0.5–0.6
#: (and hidden 500/1,000) on test ROC-AUC and AUC-PR; SparseChem's usual 0.6 is kept for
#: mid-sized partners and lighter dropout for the largest ones.
RULES: tuple[SizeRule, ...] = (
    SizeRule(max_rows=10_000, hidden=2000, dropout=0.8, weight_decay=0.0),
    SizeRule(max_rows=100_000, hidden=2000, dropout=0.6, weight_decay=0.0),
    SizeRule(max_rows=None, hidden=4000, dropout=0.4, weight_decay=0.0),
)


def rule_for(train_rows: int) -> SizeRule:
    """The first rule whose ``max_rows`` covers ``train_rows``."""
    for rule in RULES:
        if rule.max_rows is None or train_rows <= rule.max_rows:
            return rule
    raise AssertionError("the last rule has no bound")  # pragma: no cover


def regularise(
    trunk: SparseTrunkConfig, train: TrainConfig, train_rows: int
) -> tuple[SparseTrunkConfig, TrainConfig, dict[str, Any]]:
    """``trunk`` and ``train`` with the width, dropout and weight decay the rule gives for
    ``train_rows`` (one hidden layer), and the record written to ``hyperparameters.json``."""
    rule = rule_for(train_rows)
    bound = "any size" if rule.max_rows is None else f"≤ {rule.max_rows:,} training rows"
    record = {
        "chosen_by": "data size",
        "train_rows": int(train_rows),
        "rule": bound,
        "hidden_sizes": [rule.hidden],
        "dropouts": [rule.dropout],
        "weight_decay": rule.weight_decay,
    }
    trunk = trunk.model_copy(update={"hidden_sizes": (rule.hidden,), "dropouts": (rule.dropout,)})
    train = train.model_copy(update={"weight_decay": rule.weight_decay})
    return trunk, train, record


__all__ = ["RULES", "SizeRule", "regularise", "rule_for"]
