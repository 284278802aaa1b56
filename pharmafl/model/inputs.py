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


def _delimiter(path: Path, default: str) -> str:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace") as fh:  # type: ignore[operator]
        header = fh.readline()
    others = [d for d in _DELIMITERS if d != default and d in header]
    return others[0] if default not in header and len(others) == 1 else default


def _table(path: Path, name: str) -> pd.DataFrame:
    sep = _delimiter(path, "\t" if name.endswith((".tsv", ".tab")) else ",")
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise ModelError(
            f"cannot read input CSV ({type(exc).__name__}).",
            file=path,
            fix="give a UTF-8 CSV with a header and a 'smiles' column, or an SDF.",
        ) from None


def read_structures(path: str | Path, id_columns: Sequence[str] | None = None) -> StructureInput:
    """Read input structures: CSV/TSV (a SMILES column and id columns) or SDF.

    Parameters
    ----------
    path : path
        ``.csv``/``.tsv`` (optionally ``.gz``) or ``.sdf``/``.sd``/``.mol``.
    id_columns : sequence of str, optional
        Columns (or SDF tags) to keep as ids; default: every recognised id column.

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
    table = _table(p, name)
    lower = {c.lower(): c for c in table.columns}
    smi_col = next((lower[c] for c in SMILES_COLUMNS if c in lower), None)
    if smi_col is None:
        raise ModelError(
            f"no SMILES column in the input (columns: {list(table.columns)[:10]}).",
            file=p,
            fix=f"name the structure column one of {', '.join(SMILES_COLUMNS)}.",
        )
    cols = _id_columns(list(table.columns), {smi_col}, id_columns, p)
    return StructureInput(ids=table[cols].reset_index(drop=True), smiles=list(table[smi_col]))


__all__ = [
    "ID_COLUMNS",
    "SMILES_COLUMNS",
    "StructureInput",
    "normalise_name",
    "read_structures",
]
