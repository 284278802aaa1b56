"""The multi-task model: one shared trunk (``trunk.``) and named private heads (``heads.``).

Parameter names carry the trust boundary (STYLE.md §12): :func:`export_trunk` returns only
``trunk.*`` entries, so a head can never reach the aggregator by accident, and
:func:`import_trunk` loads a trunk by name into any model built from the same trunk config.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from pharmafl.common.errors import ModelError
from pharmafl.model.config import HeadConfig, ModelConfig
from pharmafl.model.dropout import GLOBAL_RNG_LOCK
from pharmafl.model.heads import HeadOutput, TaskHead
from pharmafl.model.trunks import build_trunk

TRUNK_PREFIX = "trunk."
HEADS_PREFIX = "heads."


class MultiTaskModel(nn.Module):
    """Shared trunk + private heads.

    Parameters
    ----------
    trunk : nn.Module
        Any trunk with an ``output_size`` attribute (see :mod:`pharmafl.model.trunks`).
    heads : mapping of str to TaskHead
        Head name → head (``"local"`` for a partner's own model; one per partner in pooled
        mode).
    config : ModelConfig, optional
        The hyperparameters that rebuild this model (:meth:`from_config` sets it).
    """

    def __init__(
        self,
        trunk: nn.Module,
        heads: Mapping[str, TaskHead],
        config: ModelConfig | None = None,
    ) -> None:
        super().__init__()
        if not heads:
            raise ModelError("a model needs at least one head.")
        self.trunk = trunk
        self.heads = nn.ModuleDict(dict(heads))
        self.config = config

    @classmethod
    def from_config(cls, config: ModelConfig, *, seed: int | None = None) -> MultiTaskModel:
        """Build a freshly initialised model from its hyperparameters.

        With ``seed`` the initial weights come from a forked torch RNG seeded with it (the
        global RNG is left untouched), so the same seed gives the same model.
        """
        if seed is not None:
            with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                return cls.from_config(config)
        trunk = build_trunk(config.trunk)
        out = config.trunk.output_size
        heads = {
            name: TaskHead(
                out,
                h.n_cls_tasks,
                h.n_reg_tasks,
                dropout=config.trunk.last_dropout if h.dropout is None else h.dropout,
            )
            for name, h in config.heads.items()
        }
        return cls(trunk, heads, config)

    @property
    def head_names(self) -> list[str]:
        """Names of the heads."""
        return list(self.heads.keys())

    def head(self, name: str) -> TaskHead:
        """The head called ``name``."""
        if name not in self.heads:
            raise ModelError(
                f"the model has no head {name!r}; it has: {', '.join(self.head_names)}."
            )
        head = self.heads[name]
        assert isinstance(head, TaskHead)
        return head

    def embed(self, inputs: Any) -> torch.Tensor:
        """Trunk output (pre-activation compound representation), ``(b, output_size)``."""
        out: torch.Tensor = self.trunk(inputs)
        return out

    def forward(self, inputs: Any, head: str = "local") -> HeadOutput:
        return self.head(head)(self.embed(inputs))

    def extra_repr(self) -> str:
        return f"heads={self.head_names}"


def build_model(config: ModelConfig, *, seed: int | None = None) -> MultiTaskModel:
    """Alias of :meth:`MultiTaskModel.from_config`."""
    return MultiTaskModel.from_config(config, seed=seed)


def local_model_config(
    trunk: Any, n_cls_tasks: int, n_reg_tasks: int, *, head: str = "local"
) -> ModelConfig:
    """A :class:`ModelConfig` with one head sized for a partner's tasks."""
    return ModelConfig(
        trunk=trunk, heads={head: HeadConfig(n_cls_tasks=n_cls_tasks, n_reg_tasks=n_reg_tasks)}
    )


def initial_trunk(trunk: Any, seed: int) -> dict[str, Any]:
    """The consortium's initial global trunk (numpy arrays by name): the shared trunk config
    built with the shared seed, so any party with the plan makes the same one."""
    with GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MultiTaskModel.from_config(local_model_config(trunk, 1, 0))
    return {k: v.numpy() for k, v in export_trunk(model).items()}


def trunk_state_names(model: nn.Module) -> list[str]:
    """Names (``trunk.*``) of every trunk parameter and buffer of ``model``."""
    return [k for k in model.state_dict() if k.startswith(TRUNK_PREFIX)]


def export_trunk(model: nn.Module, *, copy: bool = True) -> dict[str, torch.Tensor]:
    """The trunk's state by name: only keys under ``trunk.``, never a head.

    Parameters
    ----------
    model : nn.Module
        A :class:`MultiTaskModel` (or any module with a ``trunk`` child).
    copy : bool
        Return detached copies (default) rather than views of the live tensors.

    Raises
    ------
    ModelError
        If the model has no trunk parameters.
    """
    state = {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK_PREFIX)}
    if not state:
        raise ModelError("the model has no parameters under 'trunk.'.")
    if any(k.startswith(HEADS_PREFIX) for k in state):  # pragma: no cover - by construction
        raise ModelError("refusing to export a head parameter.")
    return {k: (v.detach().clone() if copy else v.detach()) for k, v in state.items()}


def import_trunk(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load a trunk state (from :func:`export_trunk`) into ``model`` by name.

    Every ``trunk.*`` entry of the model must be present with the same shape; nothing else
    may be given. Heads are untouched.

    Raises
    ------
    ModelError
        Names or shapes do not match (the message lists them, never values).
    """
    own = {k: v for k, v in model.state_dict().items() if k.startswith(TRUNK_PREFIX)}
    given = set(state)
    foreign = sorted(k for k in given if not k.startswith(TRUNK_PREFIX))
    if foreign:
        raise ModelError(
            f"a trunk state may only hold 'trunk.' entries; got {foreign[:5]}.",
            fix="pass the dict returned by export_trunk().",
        )
    missing, unexpected = sorted(set(own) - given), sorted(given - set(own))
    if missing or unexpected:
        raise ModelError(
            f"trunk state does not match the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}.",
            fix="build both models from the same trunk config.",
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise ModelError(
            f"trunk state shapes differ for {bad[:5]}.",
            fix="build both models from the same trunk config.",
        )
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(dtype=v.dtype, device=v.device))


__all__ = [
    "HEADS_PREFIX",
    "MultiTaskModel",
    "TRUNK_PREFIX",
    "build_model",
    "export_trunk",
    "import_trunk",
    "local_model_config",
    "trunk_state_names",
]
