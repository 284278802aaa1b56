"""Predicting new structures with a partner's model (``pharmafl predict``).

New structures go through exactly the preparation's standardization and descriptors with the
consortium parameters and key (:func:`pharmafl.chem.describe_structures`), so the scrambled
fingerprint columns match the model's. A structure that fails is reported in its row
(``status = error``, ``message``) and never stops the run. The model is the federated one when
the partner has it, else the local-only one (:mod:`pharmafl.model.select`); the result says
which. Outputs:

- ``OUT`` (CSV): ``row``, the input's id columns under their own names
  (:mod:`pharmafl.model.inputs`), ``input_smiles, canonical_smiles, status, message`` and one
  column per task, named by its label (``CHEMBL123 >=6.5 (cls)``: probability of active;
  ``CHEMBL123 (reg)``: value in the task's units; :func:`pharmafl.data.task_label`), plus
  ``<label> std`` columns with MC-dropout. Without a task catalogue in ``prepared/`` the
  columns are ``cls_<j>`` / ``reg_<j>``. With ``long=True`` one row per compound and task
  instead: ``row``, ids, ``status, message, task, assay_id, kind, threshold, direction,
  prediction`` (+ ``std``);
- ``<OUT stem>-tasks.csv``: one row per task column (label, kind, column index, the partner's
  assay id, threshold, direction, assay type, auxiliary, evaluated);
- ``<OUT stem>-class.npz`` / ``-regr.npz`` (+ ``-class-std.npz`` / ``-regr-std.npz``):
  SparseChem-style ``scipy.sparse`` CSR matrices, input rows × tasks, failed rows empty;
- ``<OUT stem>-hidden.npy`` with ``embeddings``: trunk outputs (NaN rows for failures), as
  SparseChem's ``--trunk_embeddings``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pharmafl.common.errors import ConfigError, ModelError
from pharmafl.common.io import atomic_path, atomic_write_bytes
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
from pharmafl.common.secret import ConsortiumKey, load_consortium_key
from pharmafl.data.catalogue import CATALOGUE_FILE, TaskCatalogue, TaskInfo, load_catalogue
from pharmafl.layout import PartnerLayout
from pharmafl.model.batching import GraphInputBatcher, SparseInputBatcher
from pharmafl.model.config import SparseTrunkConfig
from pharmafl.model.hyperparameters import ModelHyperparameters
from pharmafl.model.inputs import ID_COLUMNS, SMILES_COLUMNS, StructureInput, read_structures
from pharmafl.model.multitask import MultiTaskModel
from pharmafl.model.persist import load_model_dir
from pharmafl.model.scoring import Predictions, predict_rows
from pharmafl.model.select import ModelChoice, resolve_model

log = logging.getLogger(__name__)

#: Columns every wide prediction table starts with (after ``row`` and the id columns).
STATUS_COLUMNS = ("input_smiles", "canonical_smiles", "status", "message")


@dataclass
class PredictResult:
    """What :func:`predict_structures` wrote, and with which model."""

    n_input: int
    n_ok: int
    n_failed: int
    files: list[Path] = field(default_factory=list)
    model: ModelChoice | None = None
    named_tasks: bool = False
    """True when the columns carry the partner's task labels (a task catalogue was found)."""


@dataclass(frozen=True)
class TaskNames:
    """The column name of every task a head predicts (its label, or ``cls_<j>``)."""

    cls: list[str]
    reg: list[str]
    catalogue: TaskCatalogue | None = None


def task_names(partner_dir: str | Path, n_cls: int, n_reg: int) -> TaskNames:
    """Names of a head's tasks from ``prepared/task_catalogue.json``.

    Without a catalogue (SparseChem files from elsewhere) the names are ``cls_<j>`` and
    ``reg_<j>``.

    Raises
    ------
    ModelError
        The catalogue lists other task counts than the head predicts: the model was trained
        on another preparation, so its columns would be mislabelled.
    """
    prepared = PartnerLayout(Path(partner_dir)).prepared
    if not (prepared / CATALOGUE_FILE).is_file():
        log.warning("no %s in %s: task columns are numbered", CATALOGUE_FILE, prepared)
        return TaskNames([f"cls_{j}" for j in range(n_cls)], [f"reg_{j}" for j in range(n_reg)])
    cat = load_catalogue(prepared)
    if (cat.n_classification_tasks, cat.n_regression_tasks) != (n_cls, n_reg):
        raise ModelError(
            f"the model predicts {n_cls} classification and {n_reg} regression tasks, but this "
            f"preparation has {cat.n_classification_tasks} and {cat.n_regression_tasks}: it was "
            "trained on another preparation.",
            file=prepared / CATALOGUE_FILE,
            fix="use a model trained on this preparation (`pharmafl baseline PARTNER_DIR`), or "
            "prepare again the data the model was trained on.",
        )
    if not cat.partner_ids:
        log.warning("%s predates your assay ids in task names: prepare again", prepared)
    return TaskNames(cat.labels("classification"), cat.labels("regression"), cat)


def _csr_rows(values: np.ndarray, rows: np.ndarray, n_rows: int) -> sp.csr_matrix:
    """CSR ``n_rows × tasks``: row ``rows[i]`` stores ``values[i]`` in full (zeros included),
    other rows are empty."""
    width = values.shape[1]
    counts = np.zeros(n_rows, dtype=np.int64)
    counts[rows] = width
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    order = np.argsort(rows, kind="stable")
    data = values[order].reshape(-1).astype(np.float32)
    indices = np.tile(np.arange(width, dtype=np.int64), len(rows))
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, width))


def _npz_bytes(m: sp.csr_matrix) -> bytes:
    buf = io.BytesIO()
    sp.save_npz(buf, m, compressed=True)
    return buf.getvalue()


def resolve_consortium_files(partner_dir: Path) -> tuple[Path, Path | None]:
    """Consortium parameter and key files of a partner.

    From its partner config (``partner.toml``/``.yaml``) when there is one, else
    ``consortium.json`` and ``key.json`` in the folder. A key path of None means the
    ``PHARMAFL_CONSORTIUM_KEY`` environment variable.
    """
    from pharmafl.ingest import CONFIG_FILE_NAMES, find_partner_config

    if any((partner_dir / name).is_file() for name in CONFIG_FILE_NAMES):
        cfg = find_partner_config(partner_dir)
        return cfg.parameters_path(partner_dir), cfg.key_path(partner_dir)
    layout = PartnerLayout(partner_dir)
    return layout.consortium, layout.key if layout.key.is_file() else None


def load_predictor(
    choice: ModelChoice, params: ConsortiumParameters, params_file: Path | None = None
) -> tuple[MultiTaskModel, ModelHyperparameters]:
    """Load a chosen model and check it reads this consortium's fingerprints."""
    model, hp = load_model_dir(choice.path)
    trunk_cfg = hp.model.trunk
    if isinstance(trunk_cfg, SparseTrunkConfig) and (
        trunk_cfg.input_size != params.fingerprint.fold_size
    ):
        raise ModelError(
            f"the model expects {trunk_cfg.input_size} features but the consortium "
            f"fingerprint has fold_size {params.fingerprint.fold_size}.",
            file=params_file,
            fix="use the consortium parameters the model was trained with.",
        )
    return model, hp


def predict_described(
    model: MultiTaskModel,
    hp: ModelHyperparameters,
    x: sp.csr_matrix,
    graphs: Any,
    head: str,
    **kwargs: Any,
) -> Predictions:
    """Predict every row of described structures (``x``; ``graphs`` for a graph trunk) with
    one head; ``kwargs`` go to :func:`pharmafl.model.scoring.predict_rows`."""
    trunk_cfg = hp.model.trunk
    batcher = (
        GraphInputBatcher(graphs)
        if trunk_cfg.kind == "graph"
        else SparseInputBatcher(
            x, trunk_cfg.input_transform if isinstance(trunk_cfg, SparseTrunkConfig) else "none"
        )
    )
    return predict_rows(model, batcher, np.arange(x.shape[0]), head=head, **kwargs)


def _id_frame(structures: StructureInput) -> pd.DataFrame:
    """``row`` and the id columns, renamed where they clash with an output column."""
    taken = {"row", *STATUS_COLUMNS}
    ids = structures.ids.rename(columns=lambda c: f"{c} (input)" if c in taken else c)
    return pd.concat([pd.DataFrame({"row": np.arange(len(structures))}), ids], axis=1)


def _status(described: Any, n: int) -> pd.DataFrame:
    ok = np.asarray(described.row_ids, dtype=np.int64)
    canon = np.full(n, "", dtype=object)
    canon[ok] = described.canonical_smiles
    status = np.full(n, "error", dtype=object)
    status[ok] = "ok"
    message = np.full(n, "", dtype=object)
    for r in described.rejections.itertuples(index=False):
        message[int(r.row)] = f"{r.reason}: {r.message}"
    return pd.DataFrame({"canonical_smiles": canon, "status": status, "message": message})


def _blocks(preds: Predictions, names: TaskNames) -> list[tuple[str, list[str], np.ndarray, Any]]:
    """(SparseChem file tag, column names, values, std) per task kind with outputs."""
    out = []
    for tag, cols, values, std in (
        ("class", names.cls, preds.cls_prob, preds.cls_std),
        ("regr", names.reg, preds.reg_value, preds.reg_std),
    ):
        if values is not None:
            out.append((tag, cols, values, std))
    return out


def _full(values: np.ndarray, ok: np.ndarray, n: int) -> np.ndarray:
    full = np.full((n, values.shape[1]), np.nan, dtype=np.float32)
    full[ok] = values
    return full


def _wide(
    head: pd.DataFrame, preds: Predictions, names: TaskNames, ok: np.ndarray, n: int
) -> pd.DataFrame:
    columns: dict[str, np.ndarray] = {}
    for _, cols, values, std in _blocks(preds, names):
        full = _full(values, ok, n)
        columns |= {c: full[:, j] for j, c in enumerate(cols)}
        if std is not None:
            sfull = _full(std, ok, n)
            columns |= {f"{c} std": sfull[:, j] for j, c in enumerate(cols)}
    return pd.concat([head, pd.DataFrame(columns)], axis=1)


def _task_rows(names: TaskNames) -> pd.DataFrame:
    """One row per task column: the sidecar ``-tasks.csv`` and the long format's task part."""
    tasks: list[TaskInfo] = names.catalogue.tasks if names.catalogue is not None else []
    if tasks:
        return pd.DataFrame(
            {
                "task": [t.label for t in tasks],
                "kind": [t.kind for t in tasks],
                "task_id": [t.task_id for t in tasks],
                "assay_id": [t.assay_id for t in tasks],
                "threshold": [t.threshold for t in tasks],
                "direction": [t.direction for t in tasks],
                "assay_type": [t.assay_type for t in tasks],
                "is_auxiliary": [t.is_auxiliary for t in tasks],
                "evaluated": [t.aggregation_weight > 0 for t in tasks],
            }
        )
    kinds = ["classification"] * len(names.cls) + ["regression"] * len(names.reg)
    ids = [*range(len(names.cls)), *range(len(names.reg))]
    return pd.DataFrame({"task": [*names.cls, *names.reg], "kind": kinds, "task_id": ids})


def _long(
    head: pd.DataFrame, preds: Predictions, names: TaskNames, ok: np.ndarray, n: int
) -> pd.DataFrame:
    tasks = _task_rows(names)
    keep = [c for c in ("task", "assay_id", "kind", "threshold", "direction") if c in tasks]
    values = [_full(v, ok, n) for _, _, v, _ in _blocks(preds, names)]
    stds = [None if s is None else _full(s, ok, n) for *_, s in _blocks(preds, names)]
    good = head[head["status"] == "ok"]
    rows = good.loc[good.index.repeat(len(tasks))].reset_index(drop=True)
    task_part = pd.concat([tasks[keep]] * len(good), ignore_index=True)
    out = pd.concat([rows, task_part], axis=1)
    pos = good.index.to_numpy()
    out["prediction"] = np.hstack(values)[pos].reshape(-1) if values else []
    if stds and all(s is not None for s in stds):
        out["std"] = np.hstack([s for s in stds if s is not None])[pos].reshape(-1)
    failed = head[head["status"] != "ok"]
    return pd.concat([out, failed], ignore_index=True).sort_values("row", kind="stable")


def _write(
    dest: Path, table: pd.DataFrame, preds: Predictions, names: TaskNames, ok: np.ndarray, n: int
) -> list[Path]:
    files = [dest]
    with atomic_path(dest) as tmp:
        table.to_csv(tmp, index=False)
    stem = dest.with_suffix("") if dest.suffix else dest
    sidecar = Path(f"{stem}-tasks.csv")
    with atomic_path(sidecar) as tmp:
        _task_rows(names).to_csv(tmp, index=False)
    files.append(sidecar)
    for tag, _, values, std in _blocks(preds, names):
        for suffix, mat in ((tag, values), (f"{tag}-std", std)):
            if mat is not None:
                path = Path(f"{stem}-{suffix}.npz")
                atomic_write_bytes(path, _npz_bytes(_csr_rows(mat, ok, n)))
                files.append(path)
    if preds.embeddings is not None:
        path = Path(f"{stem}-hidden.npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, _full(preds.embeddings, ok, n))
        files.append(path)
    return files


def predict_structures(
    partner_dir: str | Path,
    input_path: str | Path,
    out_path: str | Path,
    *,
    model: str | None = None,
    model_dir: str | Path | None = None,
    params: ConsortiumParameters | None = None,
    key: ConsortiumKey | None = None,
    head: str | None = None,
    id_columns: Sequence[str] | None = None,
    smiles_column: str | None = None,
    encoding: str | None = None,
    long: bool = False,
    mc_samples: int = 0,
    embeddings: bool = False,
    workers: int = 1,
    batch_size: int = 4000,
    seed: int = 0,
) -> PredictResult:
    """Predict every private task of the partner's head for the structures in ``input_path``.

    Parameters
    ----------
    partner_dir : path
        Partner folder (consortium parameters and key, ``prepared/task_catalogue.json``,
        ``models/``).
    input_path : path
        CSV/TSV with a SMILES column (and id columns) or an SDF (:mod:`pharmafl.model.inputs`).
    out_path : path
        CSV to write; the sidecar and sparse matrices go beside it (module docstring).
    model : str, optional
        ``local``, ``federated``, ``pooled`` or a saved model folder; default: federated when
        trained, else local (:func:`pharmafl.model.select.resolve_model`).
    model_dir : path, optional
        A saved model folder (same as passing it as ``model``).
    params, key : optional
        Consortium parameters and key (default: read from the partner folder).
    head : str, optional
        The head to predict with (default: the partner's own head of the model).
    id_columns : sequence of str, optional
        Input columns to copy to the output (default: the recognised id columns).
    smiles_column, encoding : str, optional
        The input's structure column and text encoding (see
        :func:`pharmafl.model.inputs.read_structures`).
    long : bool
        One row per compound and task instead of one column per task.
    mc_samples : int
        MC-dropout passes (0 = deterministic).
    embeddings : bool
        Also write trunk embeddings.
    workers : int
        Processes for standardization and descriptors.
    """
    pdir = Path(partner_dir)
    if mc_samples < 0:
        raise ConfigError(f"mc_samples must be >= 0, got {mc_samples}.")
    choice = resolve_model(pdir, str(model_dir) if model_dir is not None else model, head)
    cfile, kfile = resolve_consortium_files(pdir)
    params = params or load_consortium_parameters(cfile)
    key = key or load_consortium_key(kfile)
    net, hp = load_predictor(choice, params, cfile)
    head_cfg = hp.model.heads[choice.head]
    names = task_names(pdir, head_cfg.n_cls_tasks, head_cfg.n_reg_tasks)
    structures = read_structures(
        input_path, id_columns, smiles_column=smiles_column, encoding=encoding
    )
    n = len(structures)
    from pharmafl.chem import describe_structures

    graph = hp.model.trunk.kind == "graph"
    described = describe_structures(
        structures.smiles, params, key, workers=workers, with_graphs=graph, with_folds=False
    )
    preds = predict_described(
        net, hp, described.x, described.graphs, choice.head,
        batch_size=batch_size, mc_samples=mc_samples, seed=seed, embeddings=embeddings,
    )  # fmt: skip
    ok = np.asarray(described.row_ids, dtype=np.int64)
    head_frame = pd.concat(
        [_id_frame(structures), pd.DataFrame({"input_smiles": structures.smiles})], axis=1
    )
    head_frame = pd.concat([head_frame, _status(described, n)], axis=1)
    table = (_long if long else _wide)(head_frame, preds, names, ok, n)
    files = _write(Path(out_path), table, preds, names, ok, n)
    log.info("predicted %d of %d structures with %s", len(ok), n, choice.describe())
    return PredictResult(
        n_input=n,
        n_ok=len(ok),
        n_failed=n - len(ok),
        files=files,
        model=choice,
        named_tasks=names.catalogue is not None,
    )


__all__ = [
    "ID_COLUMNS",
    "SMILES_COLUMNS",
    "STATUS_COLUMNS",
    "PredictResult",
    "TaskNames",
    "load_predictor",
    "predict_described",
    "predict_structures",
    "read_structures",
    "resolve_consortium_files",
    "task_names",
]
