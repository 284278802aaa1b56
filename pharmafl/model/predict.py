"""Predicting new structures with a partner's model (``pharmafl predict``).

New structures go through exactly the preparation's standardization and descriptors with the
consortium parameters and key (:func:`pharmafl.chem.describe_structures`), so the scrambled
fingerprint columns match the model's. A structure that fails is reported in its row
(``status = error``, ``message``) and never stops the run. Outputs:

- ``OUT`` (CSV): ``row, id, input_smiles, canonical_smiles, status, message`` and one column
  per private task: ``cls_<task>`` (probability of active) and ``reg_<task>`` (value in the
  task's units), plus ``…_std`` columns with MC-dropout;
- ``<OUT stem>-class.npz`` / ``-regr.npz`` (+ ``-class-std.npz`` / ``-regr-std.npz``):
  SparseChem-style ``scipy.sparse`` CSR matrices, input rows × tasks, failed rows empty;
- ``<OUT stem>-hidden.npy`` with ``embeddings``: trunk outputs (NaN rows for failures), as
  SparseChem's ``--trunk_embeddings``.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pharmafl.common.errors import ConfigError, DataNotFoundError, ModelError
from pharmafl.common.io import atomic_path, atomic_write_bytes
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
from pharmafl.common.secret import ConsortiumKey, load_consortium_key
from pharmafl.layout import PartnerLayout
from pharmafl.model.baseline import LOCAL_MODEL_DIR
from pharmafl.model.batching import GraphInputBatcher, SparseInputBatcher
from pharmafl.model.config import SparseTrunkConfig
from pharmafl.model.persist import load_model_dir
from pharmafl.model.scoring import predict_rows

log = logging.getLogger(__name__)

SMILES_COLUMNS = ("smiles", "canonical_smiles", "input_smiles", "structure")
ID_COLUMNS = ("id", "input_compound_id", "compound_id", "name", "_name")


@dataclass
class PredictResult:
    """What :func:`predict_structures` wrote."""

    n_input: int
    n_ok: int
    n_failed: int
    files: list[Path] = field(default_factory=list)


def read_structures(path: str | Path) -> pd.DataFrame:
    """Read input structures: CSV/TSV (a SMILES column, optional id) or SDF.

    Returns
    -------
    DataFrame
        Columns ``id`` and ``input_smiles`` (``""`` where an SDF record could not be read).
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError("input structure file not found.", file=p)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith((".sdf", ".sd", ".mol")):
        from pharmafl.ingest.sdf import SDF_MOLBLOCK, SDF_TITLE, molblocks_to_smiles, read_sdf_table

        table = read_sdf_table(p)
        smiles = molblocks_to_smiles(table[SDF_MOLBLOCK]) if len(table) else []
        ids = table["id"] if "id" in table.columns else table[SDF_TITLE]
        return pd.DataFrame({"id": list(ids), "input_smiles": list(smiles)})
    sep = "\t" if name.endswith((".tsv", ".tab")) else ","
    try:
        table = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ModelError(
            f"cannot read input CSV ({type(exc).__name__}).",
            file=p,
            fix="give a UTF-8 CSV with a header and a 'smiles' column, or an SDF.",
        ) from None
    lower = {c.lower(): c for c in table.columns}
    smi_col = next((lower[c] for c in SMILES_COLUMNS if c in lower), None)
    if smi_col is None:
        raise ModelError(
            f"no SMILES column in the input (columns: {list(table.columns)[:10]}).",
            file=p,
            fix=f"name the structure column one of {', '.join(SMILES_COLUMNS)}.",
        )
    id_col = next((lower[c] for c in ID_COLUMNS if c in lower and lower[c] != smi_col), None)
    ids = table[id_col] if id_col else pd.Series([str(i) for i in range(len(table))])
    return pd.DataFrame({"id": list(ids), "input_smiles": list(table[smi_col])})


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


def predict_structures(
    partner_dir: str | Path,
    input_path: str | Path,
    out_path: str | Path,
    *,
    model_dir: str | Path | None = None,
    params: ConsortiumParameters | None = None,
    key: ConsortiumKey | None = None,
    head: str = "local",
    mc_samples: int = 0,
    embeddings: bool = False,
    workers: int = 1,
    batch_size: int = 4000,
    seed: int = 0,
) -> PredictResult:
    """Predict every private task of ``head`` for the structures in ``input_path``.

    Parameters
    ----------
    partner_dir : path
        Partner folder (consortium parameters and key; default model ``models/local``).
    input_path : path
        CSV/TSV with a SMILES column (and optionally an id column) or an SDF.
    out_path : path
        CSV to write; the sparse matrices go beside it (module docstring).
    model_dir : path, optional
        A saved model folder (default ``PARTNER_DIR/models/local``).
    params, key : optional
        Consortium parameters and key (default: read from the partner folder).
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
    mdir = Path(model_dir) if model_dir is not None else pdir / LOCAL_MODEL_DIR
    model, hp = load_model_dir(mdir)
    cfile, kfile = resolve_consortium_files(pdir)
    params = params or load_consortium_parameters(cfile)
    key = key or load_consortium_key(kfile)
    trunk_cfg = hp.model.trunk
    graph = trunk_cfg.kind == "graph"
    if isinstance(trunk_cfg, SparseTrunkConfig) and (
        trunk_cfg.input_size != params.fingerprint.fold_size
    ):
        raise ModelError(
            f"the model expects {trunk_cfg.input_size} features but the consortium "
            f"fingerprint has fold_size {params.fingerprint.fold_size}.",
            file=cfile,
            fix="use the consortium parameters the model was trained with.",
        )
    structures = read_structures(input_path)
    n = len(structures)
    from pharmafl.chem import describe_structures

    described = describe_structures(
        list(structures["input_smiles"]),
        params,
        key,
        workers=workers,
        with_graphs=graph,
        with_folds=False,
    )
    ok_rows = np.asarray(described.row_ids, dtype=np.int64)
    batcher = (
        GraphInputBatcher(described.graphs)
        if graph
        else SparseInputBatcher(
            described.x,
            trunk_cfg.input_transform if isinstance(trunk_cfg, SparseTrunkConfig) else "none",
        )
    )
    preds = predict_rows(
        model,
        batcher,
        np.arange(len(ok_rows)),
        head=head,
        batch_size=batch_size,
        mc_samples=mc_samples,
        seed=seed,
        embeddings=embeddings,
    )
    out = structures.copy()
    out.insert(0, "row", np.arange(n))
    canon = np.full(n, "", dtype=object)
    canon[ok_rows] = described.canonical_smiles
    status = np.full(n, "error", dtype=object)
    status[ok_rows] = "ok"
    message = np.full(n, "", dtype=object)
    for r in described.rejections.itertuples(index=False):
        message[int(r.row)] = f"{r.reason}: {r.message}"
    out["canonical_smiles"] = canon
    out["status"] = status
    out["message"] = message
    columns: dict[str, np.ndarray] = {}
    mats: dict[str, np.ndarray] = {}
    for tag, values, std in (
        ("cls", preds.cls_prob, preds.cls_std),
        ("reg", preds.reg_value, preds.reg_std),
    ):
        if values is None:
            continue
        full = np.full((n, values.shape[1]), np.nan, dtype=np.float32)
        full[ok_rows] = values
        columns |= {f"{tag}_{j}": full[:, j] for j in range(values.shape[1])}
        mats["class" if tag == "cls" else "regr"] = values
        if std is not None:
            sfull = np.full((n, std.shape[1]), np.nan, dtype=np.float32)
            sfull[ok_rows] = std
            columns |= {f"{tag}_{j}_std": sfull[:, j] for j in range(std.shape[1])}
            mats[("class" if tag == "cls" else "regr") + "-std"] = std
    out = pd.concat([out, pd.DataFrame(columns)], axis=1)
    dest = Path(out_path)
    files = [dest]
    with atomic_path(dest) as tmp:
        out.to_csv(tmp, index=False)
    stem = dest.with_suffix("") if dest.suffix else dest
    for suffix, values in mats.items():
        path = Path(f"{stem}-{suffix}.npz")
        atomic_write_bytes(path, _npz_bytes(_csr_rows(values, ok_rows, n)))
        files.append(path)
    if embeddings and preds.embeddings is not None:
        emb = np.full((n, preds.embeddings.shape[1]), np.nan, dtype=np.float32)
        emb[ok_rows] = preds.embeddings
        path = Path(f"{stem}-hidden.npy")
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, emb)
        files.append(path)
    n_ok = len(ok_rows)
    log.info("predicted %d of %d structures (%d failed) → %s", n_ok, n, n - n_ok, dest)
    return PredictResult(n_input=n, n_ok=n_ok, n_failed=n - n_ok, files=files)


__all__ = [
    "ID_COLUMNS",
    "SMILES_COLUMNS",
    "PredictResult",
    "predict_structures",
    "read_structures",
]
