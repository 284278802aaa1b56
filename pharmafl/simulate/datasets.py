"""Public datasets as one long table of measurements, whatever their file shape.

Three shapes are understood (by their columns, so any file of the same shape works):

- **FS-Mol long** (``assay_chembl_id, smiles, relation, value_nM`` …): ChEMBL potencies in
  nM with ChEMBL relation strings (they refer to ``value_nM``). Kind ``dose_response``.
- **wide binary** (``smiles`` + one 0/1 column per assay, e.g. Tox21/ToxCast). Kind
  ``binary``.
- **wide regression** (a ``SMILES`` column + numeric endpoint columns, e.g. the Biogen ADME
  set; columns named like ids, such as ``Vendor ID``, and text columns are ignored). Kind
  ``adme``: values are kept as given.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from pharmafl.common.errors import ConfigError, DataNotFoundError, IngestError
from pharmafl.common.io import sha256_file
from pharmafl.common.settings import data_dir

logger = logging.getLogger(__name__)

DatasetKind = Literal["dose_response", "binary", "adme"]

#: Built-in dataset names → (folder under the data dir, file name).
BUILTIN_DATASETS: dict[str, tuple[str, str]] = {
    "fsmol": ("fsmol", "fsmol_chembl27_measurements.csv.gz"),
    "tox21": ("tox21", "tox21.csv"),
    "toxcast": ("tox21", "toxcast.csv.gz"),
    "adme": ("adme", "biogen_adme_public_3521.csv"),
}
_FSMOL_METADATA = "fsmol_assay_metadata.csv"
_FSMOL_COLUMNS = ("assay_chembl_id", "smiles", "relation", "value_nM")
_ID_LIKE = re.compile(r"(^|[\s_])id$|^id[\s_]|name$|^collection", re.IGNORECASE)


@dataclass
class PublicDataset:
    """A public dataset as measurements.

    Attributes
    ----------
    name
        Dataset name (``fsmol``, ``tox21``…, or the source file name).
    kind
        ``dose_response`` (values in nM), ``binary`` (0/1) or ``adme`` (as given).
    layout
        ``long`` (split by assays) or ``wide`` (split by compounds).
    measurements
        ``assay`` (str), ``smiles`` (str), ``relation`` (ChEMBL spelling or ""),
        ``value`` (float64, NaN when empty), ``active`` (int8, -1 when unknown),
        ``source_type`` (the source's own assay type, e.g. ChEMBL B/F/A/T, or "").
    assay_groups
        For FS-Mol: ``assay`` → protein family group (for the ``family`` strategy).
    source
        The file read, and its SHA-256.
    """

    name: str
    kind: DatasetKind
    layout: Literal["long", "wide"]
    measurements: pd.DataFrame
    assay_groups: pd.Series | None
    source: Path
    source_sha256: str


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise IngestError(
            f"cannot read the dataset as CSV ({type(exc).__name__}).", file=path
        ) from None


def _family_groups(meta_path: Path) -> pd.Series | None:
    if not meta_path.is_file():
        return None
    meta = pd.read_csv(meta_path, dtype=str, keep_default_na=False)
    if "assay_chembl_id" not in meta:
        return None
    fam = meta.get("protein_family", pd.Series([""] * len(meta), dtype=str))
    tid = meta.get("target_tid", pd.Series([""] * len(meta), dtype=str))
    group = np.where(
        fam.str.strip() != "",
        "family:" + fam.str.strip(),
        np.where(tid.str.strip() != "", "target:" + tid.str.strip(), ""),
    )
    out = pd.Series(group, index=pd.Index(meta["assay_chembl_id"], dtype=str), dtype=str)
    return out[~out.index.duplicated()]


def _long_fsmol(frame: pd.DataFrame, path: Path) -> PublicDataset:
    value = pd.to_numeric(frame["value_nM"], errors="coerce").to_numpy(dtype=np.float64)
    active = (
        pd.to_numeric(frame["active"], errors="coerce").fillna(-1).to_numpy(dtype=np.int8)
        if "active" in frame
        else np.full(len(frame), -1, dtype=np.int8)
    )
    meas = pd.DataFrame(
        {
            "assay": frame["assay_chembl_id"].fillna("").astype(str).str.strip(),
            "smiles": frame["smiles"].fillna("").astype(str).str.strip(),
            "relation": frame["relation"].fillna("").astype(str).str.strip(),
            "value": value,
            "active": active,
            "source_type": frame["assay_type"].fillna("").astype(str)
            if "assay_type" in frame
            else "",
        }
    )
    meas = meas[(meas["assay"] != "") & (meas["smiles"] != "")].reset_index(drop=True)
    return PublicDataset(
        name=path.name,
        kind="dose_response",
        layout="long",
        measurements=meas,
        assay_groups=_family_groups(path.parent / _FSMOL_METADATA),
        source=path,
        source_sha256=sha256_file(path),
    )


def _wide(frame: pd.DataFrame, path: Path, smiles_col: str) -> PublicDataset:
    numeric: dict[str, np.ndarray] = {}
    for col in frame.columns:
        if col == smiles_col or _ID_LIKE.search(str(col).strip()):
            continue
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce")
        if raw.notna().sum() == 0 or values.notna().sum() < raw.notna().sum():
            continue  # empty or text column
        numeric[str(col)] = values.to_numpy(dtype=np.float64)
    if not numeric:
        raise IngestError(
            "the file has a SMILES column but no numeric assay columns.",
            file=path,
            fix="add one numeric column per assay (0/1 for binary, numbers for regression).",
        )
    stacked = np.column_stack(list(numeric.values()))
    present = stacked[~np.isnan(stacked)]
    kind: DatasetKind = "binary" if np.isin(present, (0.0, 1.0)).all() else "adme"
    r, c = np.nonzero(~np.isnan(stacked))
    smiles = frame[smiles_col].fillna("").astype(str).str.strip().to_numpy(dtype=object)
    names = np.asarray(list(numeric), dtype=object)
    meas = pd.DataFrame(
        {
            "assay": pd.Series(names[c], dtype=str),
            "smiles": pd.Series(smiles[r], dtype=str),
            "relation": "",
            "value": stacked[r, c],
            "active": np.where(kind == "binary", stacked[r, c], -1).astype(np.int8),
            "source_type": "",
        }
    )
    meas = meas[meas["smiles"] != ""].reset_index(drop=True)
    return PublicDataset(
        name=path.name,
        kind=kind,
        layout="wide",
        measurements=meas,
        assay_groups=None,
        source=path,
        source_sha256=sha256_file(path),
    )


def read_public_file(path: str | Path) -> PublicDataset:
    """Read any file of one of the three understood shapes (detected by its columns).

    Raises
    ------
    IngestError
        If the file is missing, unreadable, or of no understood shape.
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(
            "dataset file not found.", file=p, fix="pass an existing CSV (or .csv.gz)."
        )
    frame = _read_csv(p)
    lower = {str(c).strip().lower(): c for c in frame.columns}
    if all(c.lower() in lower for c in _FSMOL_COLUMNS):
        frame = frame.rename(columns={lower[c.lower()]: c for c in _FSMOL_COLUMNS})
        if "active" in lower:
            frame = frame.rename(columns={lower["active"]: "active"})
        return _long_fsmol(frame, p)
    if "smiles" in lower:
        return _wide(frame, p, lower["smiles"])
    raise IngestError(
        "unknown dataset shape.",
        file=p,
        fix="give an FS-Mol-like long file (assay_chembl_id, smiles, relation, value_nM), a "
        "wide binary file (smiles + one 0/1 column per assay, like Tox21) or a wide "
        "regression file (SMILES + numeric endpoint columns, like the Biogen ADME set).",
    )


def load_dataset(name: str) -> PublicDataset:
    """Load a built-in public dataset from :func:`pharmafl.common.settings.data_dir`.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the valid ones).
    DataNotFoundError
        If the data folder or file is missing.
    """
    if name not in BUILTIN_DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r}.",
            fix=f"use one of {', '.join(sorted(BUILTIN_DATASETS))}, or --source FILE.",
        )
    folder, file = BUILTIN_DATASETS[name]
    path = data_dir(folder) / file
    data = read_public_file(path)
    data.name = name
    logger.info("read %s: %d measurements", name, len(data.measurements))
    return data


__all__ = [
    "BUILTIN_DATASETS",
    "DatasetKind",
    "PublicDataset",
    "load_dataset",
    "read_public_file",
]
