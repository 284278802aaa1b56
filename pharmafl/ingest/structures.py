"""Structure sources → one row per compound: original id, SMILES, file and row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.ingest.config import StructureSource
from pharmafl.ingest.sdf import SDF_MOLBLOCK, molblocks_to_smiles
from pharmafl.ingest.tables import (
    RejectionLog,
    SourceTables,
    check_columns,
    id_text,
    row_note,
)


def read_structures(
    src: StructureSource, tables: SourceTables, *, workers: int = 1
) -> pd.DataFrame:
    """Read one structure source.

    ``workers`` processes turn SDF molblocks into SMILES (large files only).

    Returns
    -------
    pandas.DataFrame
        Columns ``compound`` (original id text), ``smiles`` (``""`` when the structure is
        empty or unreadable), ``problem`` (a rejection reason or ``""``), ``file``, ``row``;
        one row per distinct compound id of the source.

    Raises
    ------
    IngestError
        On missing/unexpected columns, empty ids, non-text SMILES, or a repeated id (unless
        ``allow_repeated_ids``, and then only with the identical structure).
    """
    frame = tables.frame(src)
    display, fmt = src.path, src.file_format
    id_col, smi_col = src.id_column(), src.smiles_column()
    check_columns(
        frame,
        required=[id_col, smi_col],
        known=tables.known(src, frame),
        extra=src.extra_columns,
        display=display,
        what="structures",
    )
    rows = np.arange(1, len(frame) + 1, dtype=np.int64)
    ids = id_text(frame[id_col], display=display, fmt=fmt, what="compound id", row_of=rows)
    raw = frame[smi_col]
    if pd.api.types.is_numeric_dtype(raw) and raw.notna().any():
        raise IngestError(
            f"column {smi_col!r} holds numbers, expected SMILES text ({row_note(fmt)}).",
            file=display,
            row=int(np.argmax(raw.notna().to_numpy())) + 1,
            fix="map input_compound_id and smiles to the right columns.",
        )
    text = raw.astype("object").where(raw.notna(), "").astype(str)
    if smi_col != SDF_MOLBLOCK:  # a molblock's leading blank title line is significant
        text = text.str.strip()
    out = pd.DataFrame({"compound": ids, "structure": text, "row": rows})
    repeated = out["compound"].duplicated(keep="first").to_numpy()
    if repeated.any():
        first = int(np.argmax(repeated))
        if not src.allow_repeated_ids:
            raise IngestError(
                f"duplicate compound id: {int(repeated.sum())} row(s) repeat an id of an "
                f"earlier row ({row_note(fmt)}).",
                file=display,
                row=int(rows[first]),
                fix="make compound ids unique, or set allow_repeated_ids = true for this "
                "source if it repeats each structure on every measurement row.",
            )
        # Repeats are compared on the structure; a molblock's title line may differ.
        if smi_col == SDF_MOLBLOCK:
            out["key"] = [t.split("\n", 1)[-1] for t in out["structure"].tolist()]
        else:
            out["key"] = out["structure"]
        n_struct = out.groupby("compound", sort=False)["key"].nunique()
        clash = out["compound"].map(n_struct).to_numpy() > 1
        if clash.any():
            first = int(np.argmax(clash & repeated)) if (clash & repeated).any() else 0
            raise IngestError(
                "duplicate compound id with a different structure "
                f"({int(n_struct.gt(1).sum())} id(s); {row_note(fmt)}).",
                file=display,
                row=int(rows[first]),
                fix="give different structures different compound ids.",
            )
        out = out.loc[~repeated].reset_index(drop=True)
    problem = np.full(len(out), "", dtype=object)
    if smi_col == SDF_MOLBLOCK:
        converted = molblocks_to_smiles(out["structure"].tolist(), workers=workers)
        smiles = np.asarray(converted, dtype=object)
        problem[smiles == ""] = "unparseable_structure"
    else:
        smiles = out["structure"].to_numpy(dtype=object)
        problem[smiles == ""] = "empty_smiles"
    return pd.DataFrame(
        {
            "compound": out["compound"].astype(str),
            "smiles": pd.Series(smiles, dtype=str),
            "problem": pd.Series(problem, dtype=str),
            "file": pd.Series([display] * len(out), dtype=str),
            "row": out["row"].to_numpy(dtype=np.int64),
        }
    )


def combine_structures(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate structure sources; a compound id in two sources is an error."""
    allc = pd.concat(parts, ignore_index=True)
    dup = allc["compound"].duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.argmax(dup))
        first = allc.index[(allc["compound"] == allc["compound"].iat[i]).to_numpy()][0]
        raise IngestError(
            "duplicate compound id: this row's id is also in "
            f"{allc['file'].iat[first]} (row {int(allc['row'].iat[first])}).",
            file=str(allc["file"].iat[i]),
            row=int(allc["row"].iat[i]),
            fix="make compound ids unique across structure files.",
        )
    return allc


def log_structure_problems(structures: pd.DataFrame, ids: np.ndarray, log: RejectionLog) -> None:
    """Add a rejection row for each compound whose structure is empty or unreadable."""
    for reason in ("empty_smiles", "unparseable_structure"):
        mask = (structures["problem"] == reason).to_numpy()
        for file in pd.unique(structures.loc[mask, "file"]):
            m = mask & (structures["file"] == file).to_numpy()
            log.add(str(file), structures["row"].to_numpy()[m], ids[m], reason)


__all__ = ["combine_structures", "log_structure_problems", "read_structures"]
