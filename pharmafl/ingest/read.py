"""Ingest one partner folder: its own exports, through its config, into T0/T1/T2 tables.

The MELLODDY-TUNER sanity checks (reference §1.3) are applied: unique assay and compound
ids across files, every measurement's compound in a structure file and its assay in T0,
compounds without measurements dropped (and reported, like TUNER's ``T2_not_T1``).
Original (string) ids are mapped to integers deterministically; the mappings are returned
so that outputs can show a partner its own ids.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pharmafl.common.io import atomic_write_text
from pharmafl.common.settings import get_settings
from pharmafl.ingest.activities import read_activities
from pharmafl.ingest.assays import combine_assays, defaults_table, read_assays
from pharmafl.ingest.config import PartnerConfig, find_partner_config
from pharmafl.ingest.models import T0_COLUMNS, T1_COLUMNS, T2_COLUMNS
from pharmafl.ingest.structures import combine_structures, log_structure_problems, read_structures
from pharmafl.ingest.tables import REJECTION_REASONS, RejectionLog, SourceTables

logger = logging.getLogger(__name__)

_INT_ID = re.compile(r"^[0-9]{1,18}$")


@dataclass
class IngestResult:
    """Validated standard tables of one partner, with id maps, rejections and counts.

    Attributes
    ----------
    t0
        Exactly the T0 columns; ``input_assay_id`` int64, booleans, float thresholds,
        ``direction`` ``"high"``/``"low"``/None, ``catalog_assay_id`` float.
    t1
        ``input_compound_id`` int64, ``input_assay_id`` int64, ``standard_qualifier`` in
        ``{"<", "=", ">"}``, ``standard_value`` float64 (pXC50 for concentrations).
    t2
        ``input_compound_id`` int64, ``smiles`` str; compounds with measurements only.
    compound_ids
        ``input_compound_id`` → ``original_id`` (the partner's own id), every structure.
    assay_ids
        ``input_assay_id`` → ``original_id`` (the partner's own id).
    rejections
        ``file, row, input_compound_id, reason, message``: one row per dropped row.
    counts
        Counts per step (rows read, kept, rejected per reason…).
    """

    t0: pd.DataFrame
    t1: pd.DataFrame
    t2: pd.DataFrame
    compound_ids: pd.DataFrame
    assay_ids: pd.DataFrame
    rejections: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def assign_ids(original: Iterable[str]) -> pd.Series:
    """Map original id texts to int64 ids, deterministically.

    If every id is a plain non-negative integer (and they stay distinct), the integer is
    kept, so MELLODDY T0/T1/T2 files keep their ids. Otherwise ids are numbered 0, 1, …
    in sorted (code point) order of the texts.

    Returns
    -------
    pandas.Series
        Index: the original id texts (sorted); values: int64 ids.
    """
    texts = sorted(set(original))
    if texts and all(_INT_ID.match(t) for t in texts):
        ints = np.array([int(t) for t in texts], dtype=np.int64)
        if len(np.unique(ints)) == len(ints):
            return pd.Series(ints, index=pd.Index(texts, dtype=str), dtype=np.int64)
    return pd.Series(
        np.arange(len(texts), dtype=np.int64), index=pd.Index(texts, dtype=str), dtype=np.int64
    )


def _mapping_frame(ids: pd.Series, int_name: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {int_name: ids.to_numpy(dtype=np.int64), "original_id": pd.Series(ids.index, dtype=str)}
    )
    return frame.sort_values(int_name, kind="stable").reset_index(drop=True)


def ingest_partner(
    partner_dir: str | Path,
    config: PartnerConfig | None = None,
    *,
    drop_unmeasured: bool = True,
    workers: int | None = None,
) -> IngestResult:
    """Read a partner's own exports into validated T0/T1/T2 tables.

    Parameters
    ----------
    partner_dir
        The partner folder; source paths in the config are relative to it.
    config
        The partner config; by default ``partner.toml``/``partner.yaml`` in the folder.
    drop_unmeasured
        Drop compounds without any accepted measurement from T2 (reported as
        ``no_activities`` rejections), as MELLODDY-TUNER does.
    workers
        Processes for turning SDF molblocks into SMILES (default: ``PHARMAFL_WORKERS``,
        0 = all cores). Only large SDF files use them; results do not depend on it.

    Raises
    ------
    ConfigError
        If the config is missing or invalid.
    IngestError
        On any shape problem, naming the file, the (1-based data) row and a fix.
    """
    pdir = Path(partner_dir)
    if config is None:
        config = find_partner_config(pdir)
    tables = SourceTables(pdir, config)
    n_workers = get_settings().workers if workers is None else workers
    n_workers = n_workers if n_workers > 0 else (os.cpu_count() or 1)
    log = RejectionLog()

    structures = combine_structures(
        [read_structures(s, tables, workers=n_workers) for s in config.structure_sources()]
    )
    cmap = assign_ids(structures["compound"])
    ids = structures["compound"].map(cmap).to_numpy(dtype=np.int64)
    log_structure_problems(structures, ids, log)
    bad_structure = (structures["problem"] != "").to_numpy()
    rejected = {int(i) for i in ids[bad_structure]}

    listed = combine_assays([read_assays(a, tables) for a in config.assay_sources()])
    known_assays = set(listed["assay"])
    parts: list[pd.DataFrame] = []
    generated: list[pd.DataFrame] = []
    seen = set(known_assays)
    n_cells = 0
    for src in config.activity_sources():
        defaults = src.assay_defaults or config.assay_defaults
        part, n_read = read_activities(
            src, tables, cmap, rejected, log, known_assays=known_assays,
            has_defaults=defaults is not None,
        )  # fmt: skip
        parts.append(part)
        n_cells += n_read
        new = [a for a in pd.unique(part["assay"]) if a not in seen]
        if new:
            assert defaults is not None
            seen.update(new)
            generated.append(defaults_table(new, defaults, origin=f"assay_defaults ({src.path})"))

    assays = pd.concat([listed, *generated], ignore_index=True)
    amap = assign_ids(assays["assay"])
    assays.insert(0, "input_assay_id", assays["assay"].map(amap).to_numpy(dtype=np.int64))
    t0 = assays.sort_values("input_assay_id", kind="stable").reset_index(drop=True)
    t0 = t0.loc[:, list(T0_COLUMNS)].astype(
        {"input_assay_id": np.int64, "assay_type": str, "direction": object}
    )

    acts = pd.concat(parts, ignore_index=True)
    acts["input_assay_id"] = acts["assay"].map(amap).to_numpy(dtype=np.int64)
    binary_assays = t0.loc[t0["is_binary"], "input_assay_id"].to_numpy()
    bad_binary = np.isin(acts["input_assay_id"].to_numpy(), binary_assays) & ~np.isin(
        acts["standard_value"].to_numpy(), (-1.0, 1.0)
    )
    if bad_binary.any():
        for file in pd.unique(acts.loc[bad_binary, "file"]):
            m = bad_binary & (acts["file"] == file).to_numpy()
            log.add(
                str(file),
                acts["row"].to_numpy()[m],
                acts["input_compound_id"].to_numpy()[m],
                "invalid_binary_value",
                "the assay is binary (is_binary) but the value is not -1/+1 (or 0/1 with "
                "unit = binary)",
            )
        acts = acts.loc[~bad_binary].reset_index(drop=True)
    t1 = pd.DataFrame(
        {
            "input_compound_id": acts["input_compound_id"].to_numpy(dtype=np.int64),
            "input_assay_id": acts["input_assay_id"].to_numpy(dtype=np.int64),
            "standard_qualifier": pd.Series(acts["standard_qualifier"].to_numpy(), dtype=str),
            "standard_value": acts["standard_value"].to_numpy(dtype=np.float64),
        }
    )

    keep = ~bad_structure
    measured = np.isin(ids, t1["input_compound_id"].to_numpy())
    if drop_unmeasured:
        unmeasured = keep & ~measured
        for file in pd.unique(structures.loc[unmeasured, "file"]):
            m = unmeasured & (structures["file"] == file).to_numpy()
            log.add(str(file), structures["row"].to_numpy()[m], ids[m], "no_activities")
        keep &= measured
    t2 = (
        pd.DataFrame(
            {
                "input_compound_id": ids[keep],
                "smiles": pd.Series(structures["smiles"].to_numpy()[keep], dtype=str),
            }
        )
        .sort_values("input_compound_id", kind="stable")
        .reset_index(drop=True)
    )
    rejections = log.frame()
    counts = {
        "compound_ids_read": len(structures),
        "compounds": len(t2),
        "measurements_read": int(n_cells),
        "measurements": len(t1),
        "assays": len(t0),
        "assays_from_files": len(listed),
        "assays_from_defaults": int(sum(len(g) for g in generated)),
        "assays_without_measurements": int(
            (~t0["input_assay_id"].isin(t1["input_assay_id"])).sum()
        ),
        "rejections": len(rejections),
    }
    for reason in REJECTION_REASONS:
        counts[f"rejected_{reason}"] = int((rejections["reason"] == reason).sum())
    logger.info(
        "ingested %s: %d compounds, %d measurements, %d assays, %d rejection(s)",
        config.name, counts["compounds"], counts["measurements"], counts["assays"],
        counts["rejections"],
    )  # fmt: skip
    return IngestResult(
        t0=t0,
        t1=t1.loc[:, list(T1_COLUMNS)],
        t2=t2.loc[:, list(T2_COLUMNS)],
        compound_ids=_mapping_frame(cmap, "input_compound_id"),
        assay_ids=_mapping_frame(amap, "input_assay_id"),
        rejections=rejections,
        counts=counts,
    )


def write_standard_tables(result: IngestResult, directory: str | Path) -> list[Path]:
    """Write ``T0.csv``, ``T1.csv``, ``T2.csv`` as MELLODDY-TUNER 3.x reads them.

    T0 gets the (unused) ``parent_assay_id`` column TUNER requires. Files are written
    atomically; returns their paths.
    """
    d = Path(directory)
    t0 = result.t0.copy()
    t0["parent_assay_id"] = np.nan
    out = []
    for name, frame in (("T0.csv", t0), ("T1.csv", result.t1), ("T2.csv", result.t2)):
        out.append(atomic_write_text(d / name, frame.to_csv(index=False)))
    return out


__all__ = ["IngestResult", "assign_ids", "ingest_partner", "write_standard_tables"]
