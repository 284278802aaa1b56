"""Which saved model a partner command uses: ``local``, ``federated``, ``pooled`` or a folder.

- ``local``: the partner's local-only baseline, ``PARTNER_DIR/models/local/``;
- ``federated``: the consortium's main run, ``PARTNER_DIR/models/federated/model/``;
- ``pooled``: the simulation's pooled reference, with a head for this partner, in
  ``PARTNER_DIR/models/pooled/`` or, in a consortium folder, ``operator/pooled/`` or
  ``models/pooled/``;
- any other text: a saved model folder (``model.pt`` + ``hyperparameters.json``).

By default (:func:`default_model`) commands use the federated model when there is one, else
the local one, and say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pharmafl.common.errors import DataNotFoundError, ModelError
from pharmafl.layout import (
    FEDERATED_MODEL,
    LOCAL_MODEL,
    MAIN_RUN_ID,
    MODEL_SUBDIR,
    PARTNERS_DIR,
    POOLED_MODEL,
    ConsortiumLayout,
    PartnerLayout,
)
from pharmafl.model.persist import MODEL_FILE, load_hyperparameters
from pharmafl.model.pooled import POOLED_MODEL_DIR, head_name

#: The models a partner may name, in the order commands look for them.
MODEL_NAMES: tuple[str, ...] = (FEDERATED_MODEL, LOCAL_MODEL, POOLED_MODEL)


@dataclass(frozen=True)
class ModelChoice:
    """A saved model and the head whose tasks are this partner's."""

    name: str
    """``local``, ``federated``, ``pooled``, or the folder's name."""
    path: Path
    head: str

    def describe(self) -> str:
        """``federated (…/models/federated/model, head local)``, for messages."""
        return f"{self.name} ({self.path}, head {self.head})"


def _candidates(partner_dir: Path, name: str) -> list[Path]:
    layout = PartnerLayout(partner_dir)
    if name == LOCAL_MODEL:
        return [layout.model_dir(LOCAL_MODEL)]
    if name == FEDERATED_MODEL:
        return [layout.run_dir(MAIN_RUN_ID) / MODEL_SUBDIR]
    out = [layout.model_dir(POOLED_MODEL)]
    parent = partner_dir.resolve().parent
    if parent.name == PARTNERS_DIR:
        root = ConsortiumLayout(parent.parent)
        out += [root.operator.pooled, root.root / POOLED_MODEL_DIR]
    return out


def _head(path: Path, partner_dir: Path, head: str | None) -> str | None:
    """The head of ``path``'s model for this partner (None: the model has none for it)."""
    heads = list(load_hyperparameters(path).model.heads)
    if head is not None:
        if head not in heads:
            raise ModelError(
                f"the model has no head {head!r}; it has: {', '.join(heads)}.",
                file=path,
                fix="pass one of those with --head.",
            )
        return head
    for name in (LOCAL_MODEL, head_name(partner_dir.resolve().name)):
        if name in heads:
            return name
    return heads[0] if len(heads) == 1 else None


def find_model(partner_dir: str | Path, name: str, head: str | None = None) -> ModelChoice | None:
    """The named model (``local``, ``federated``, ``pooled``) if this partner has it."""
    pdir = Path(partner_dir)
    for path in _candidates(pdir, name):
        if (path / MODEL_FILE).is_file():
            h = _head(path, pdir, head)
            if h is not None:
                return ModelChoice(name=name, path=path, head=h)
    return None


def resolve_model(
    partner_dir: str | Path, spec: str | None = None, head: str | None = None
) -> ModelChoice:
    """The model a command uses: ``spec`` (a name of :data:`MODEL_NAMES` or a folder), or
    :func:`default_model` when ``spec`` is None.

    Raises
    ------
    DataNotFoundError
        The named model was not trained (or the folder holds no model).
    ModelError
        The model has no head for this partner (``head`` names one explicitly).
    """
    pdir = Path(partner_dir)
    if spec is None:
        return default_model(pdir, head)
    if spec in MODEL_NAMES:
        found = find_model(pdir, spec, head)
        if found is None:
            where = ", ".join(str(p) for p in _candidates(pdir, spec))
            raise DataNotFoundError(
                f"no {spec} model for this partner (looked in {where}).",
                file=pdir,
                fix=_TRAIN_HINT[spec],
            )
        return found
    path = Path(spec)
    if not (path / MODEL_FILE).is_file():
        raise DataNotFoundError(
            "not a saved model folder (no model.pt).",
            file=path,
            fix=f"pass one of {', '.join(MODEL_NAMES)} or a folder written by pharmafl.",
        )
    h = _head(path, pdir, head)
    if h is None:
        heads = ", ".join(load_hyperparameters(path).model.heads)
        raise ModelError(
            f"the model has several heads ({heads}) and none is this partner's.",
            file=path,
            fix="choose one with --head.",
        )
    return ModelChoice(name=path.name, path=path, head=h)


_TRAIN_HINT = {
    LOCAL_MODEL: "train it: `pharmafl baseline PARTNER_DIR`.",
    FEDERATED_MODEL: "it is written by the consortium's federated training (`pharmafl train`).",
    POOLED_MODEL: "the pooled reference exists in simulations only (`pharmafl pooled DIR`).",
}


def default_model(partner_dir: str | Path, head: str | None = None) -> ModelChoice:
    """The federated model when there is one, else the local-only one.

    Raises
    ------
    DataNotFoundError
        Neither was trained.
    """
    for name in (FEDERATED_MODEL, LOCAL_MODEL):
        found = find_model(partner_dir, name, head)
        if found is not None:
            return found
    raise DataNotFoundError(
        "this partner has no trained model (neither federated nor local).",
        file=PartnerLayout(Path(partner_dir)).models,
        fix="train the local-only model: `pharmafl baseline PARTNER_DIR`.",
    )


def available_models(partner_dir: str | Path) -> list[ModelChoice]:
    """Every named model this partner has: local, federated, pooled (in that order)."""
    found = (find_model(partner_dir, n) for n in (LOCAL_MODEL, FEDERATED_MODEL, POOLED_MODEL))
    return [m for m in found if m is not None]


__all__ = [
    "MODEL_NAMES",
    "ModelChoice",
    "available_models",
    "default_model",
    "find_model",
    "resolve_model",
]
