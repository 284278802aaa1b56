"""New structures to predict: a SMILES column, and the id columns a partner joins back on.

A CSV/TSV (``,``, ``;``, tab or ``|``: a header without the file type's delimiter but with
exactly one other candidate settles it) or an SDF. The structure comes from a column named
like :data:`SMILES_COLUMNS` (or an SDF's molblocks). The id columns are the ones given with
``--id-column``, else every column (or SDF tag) whose name, ignoring case, spaces and
punctuation, is one of :data:`ID_COLUMNS` — ``Sample ID``, ``compound_id``, ``ID``, ``Name``,
``Compound``… — else an SDF's title line. They are copied to the output unchanged, under
their own names.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pharmafl.common.errors import ConfigError, DataNotFoundError, ModelError

SMILES_COLUMNS = ("smiles", "canonical_smiles", "input_smiles", "structure")
#: Recognised id column names, normalised (lower case, letters and digits only).
ID_COLUMNS = (
    "id",
    "compoundid",
    "inputcompoundid",
    "sampleid",
    "name",
    "compound",
    "compoundname",
    "moleculeid",
    "moleculename",
    "molid",
    "molname",
    "molregno",
    "chemblid",
    "moleculechemblid",
    "corpid",
    "corporateid",
    "registryid",
    "regno",
    "batchid",
    "substanceid",
    "structureid",
    "cpdid",
    "cmpdid",
)
_DELIMITERS = (",", ";", "\t", "|")


def normalise_name(name: str) -> str:
    """``"Sample ID"`` → ``"sampleid"``: how column names are matched."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


@dataclass
class StructureInput:
    """Structures read for prediction.

    Attributes
    ----------
    ids : DataFrame
        The id columns, under their own names, one row per input row (may have no column).
    smiles : list of str
        One SMILES per input row (``""`` where an SDF record could not be read).
    """

    ids: pd.DataFrame
    smiles: list[str]

    def __len__(self) -> int:
        return len(self.smiles)


def _id_columns(
    columns: Sequence[str], exclude: set[str], wanted: Sequence[str] | None, path: Path
) -> list[str]:
    if wanted:
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise ConfigError(
                f"id column(s) {missing} not in the input (columns: {list(columns)[:12]}).",
                file=path,
                fix="pass --id-column with a column name as the file spells it.",
            )
        return list(wanted)
    known = set(ID_COLUMNS)
    return [c for c in columns if c not in exclude and normalise_name(c) in known]


def _sdf(path: Path, id_columns: Sequence[str] | None) -> StructureInput:
    from pharmafl.ingest.sdf import SDF_MOLBLOCK, SDF_TITLE, molblocks_to_smiles, read_sdf_table

    table = read_sdf_table(path)
    smiles = list(molblocks_to_smiles(table[SDF_MOLBLOCK])) if len(table) else []
    tags = [c for c in table.columns if c not in (SDF_MOLBLOCK, SDF_TITLE)]
    cols = _id_columns([*tags, SDF_TITLE], {SDF_MOLBLOCK, SDF_TITLE}, id_columns, path)
    if not cols and SDF_TITLE in table.columns:
        cols = [SDF_TITLE]
    return StructureInput(ids=table[cols].astype(str).reset_index(drop=True), smiles=smiles)


def _delimiter(path: Path, default: str, encoding: str) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding=encoding, errors="replace") as fh:  # type: ignore[operator]
        header = fh.readline()
    others = [d for d in _DELIMITERS if d != default and d in header]
    return others[0] if default not in header and len(others) == 1 else default


def _table(path: Path, name: str, encoding: str | None) -> pd.DataFrame:
    enc = encoding or "utf-8-sig"
    sep = _delimiter(path, "\t" if name.endswith((".tsv", ".tab")) else ",", enc)
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding=enc)
    except UnicodeDecodeError:
        raise ModelError(
            f"the input is not {enc} text.",
            file=path,
            fix="pass --encoding with the file's encoding (e.g. latin-1 or cp1252 for an "
            "Excel export).",
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, LookupError) as exc:
        raise ModelError(
            f"cannot read input CSV ({type(exc).__name__}: {exc}).",
            file=path,
            fix="give a CSV with a header and a SMILES column (--smiles-column), or an SDF.",
        ) from None


def _smiles_column(table: pd.DataFrame, wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in table.columns:
            raise ConfigError(
                f"SMILES column {wanted!r} not in the input (columns: {list(table.columns)[:12]}).",
                file=path,
                fix="pass --smiles-column with the column name as the file spells it.",
            )
        return wanted
    lower = {c.lower(): c for c in table.columns}
    found = next((lower[c] for c in SMILES_COLUMNS if c in lower), None)
    if found is None:
        raise ModelError(
            f"no SMILES column in the input (columns: {list(table.columns)[:10]}).",
            file=path,
            fix=f"pass --smiles-column, or name the structure column one of "
            f"{', '.join(SMILES_COLUMNS)}.",
        )
    return found


def read_structures(
    path: str | Path,
    id_columns: Sequence[str] | None = None,
    *,
    smiles_column: str | None = None,
    encoding: str | None = None,
) -> StructureInput:
    """Read input structures: CSV/TSV (a SMILES column and id columns) or SDF.

    Parameters
    ----------
    path : path
        ``.csv``/``.tsv`` (optionally ``.gz``) or ``.sdf``/``.sd``/``.mol``.
    id_columns : sequence of str, optional
        Columns (or SDF tags) to keep as ids; default: every recognised id column.
    smiles_column : str, optional
        The structure column (default: one named like :data:`SMILES_COLUMNS`).
    encoding : str, optional
        The text encoding (default: UTF-8, with or without a byte-order mark).

    Raises
    ------
    DataNotFoundError
        The file does not exist.
    ModelError
        Unreadable, or no SMILES column.
    ConfigError
        An ``id_columns`` entry is not a column of the file.
    """
    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError("input structure file not found.", file=p)
    name = p.name.lower().removesuffix(".gz")
    if name.endswith((".sdf", ".sd", ".mol")):
        return _sdf(p, id_columns)
    table = _table(p, name, encoding)
    smi_col = _smiles_column(table, smiles_column, p)
    cols = _id_columns(list(table.columns), {smi_col}, id_columns, p)
    return StructureInput(ids=table[cols].reset_index(drop=True), smiles=list(table[smi_col]))


__all__ = [
    "ID_COLUMNS",
    "SMILES_COLUMNS",
    "StructureInput",
    "normalise_name",
    "read_structures",
]
