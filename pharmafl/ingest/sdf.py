"""Reading and writing SD files (V2000/V3000 molblocks with ``> <name>`` data items).

SDF records are split and their data items read as text here, so that a record whose
molblock RDKit cannot parse still keeps its record number and id (it becomes a rejection
row, not a silent gap). Molblocks are turned into SMILES with RDKit; standardization
happens later in :mod:`pharmafl.chem`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.common.io import atomic_write_bytes
from pharmafl.ingest.files import read_text

#: Pseudo-column names of an SDF read as a table.
SDF_TITLE = "_Name"
SDF_MOLBLOCK = "_MolBlock"

_DATA_HEADER = re.compile(r"^>.*?<([^>]*)>")


_RECORD_END = re.compile(r"^\$\$\$\$[ \t]*$", re.MULTILINE)
_FIRST_ITEM = re.compile(r"^>", re.MULTILINE)


def _records(text: str) -> Iterator[str]:
    parts = _RECORD_END.split(text.replace("\r\n", "\n"))
    for i, part in enumerate(parts):
        rec = part[1:] if i and part.startswith("\n") else part  # the newline after $$$$
        if i < len(parts) - 1 or rec.strip():
            yield rec


def _parse_record(rec: str) -> dict[str, str]:
    # Only the short data-item tail is split into lines; the molblock is cut out whole.
    end = rec.find("\nM  END")
    if end >= 0:
        eol = rec.find("\n", end + 1)
        cut = len(rec) if eol < 0 else eol + 1
    else:
        # No molblock terminator: keep what precedes the first data item as the "molblock"
        # so the record is reported as unparseable rather than lost.
        m = _FIRST_ITEM.search(rec)
        cut = len(rec) if m is None else m.start()
    molblock = rec[:cut] if rec[:cut].endswith("\n") else rec[:cut] + "\n"
    out = {SDF_TITLE: rec.split("\n", 1)[0].strip(), SDF_MOLBLOCK: molblock}
    lines = rec[cut:].split("\n")
    i = 0
    while i < len(lines):
        m = _DATA_HEADER.match(lines[i])
        i += 1
        if m is None:
            continue
        values: list[str] = []
        while i < len(lines) and lines[i].strip() != "":
            values.append(lines[i])
            i += 1
        out[m.group(1).strip()] = "\n".join(values).strip()
    return out


def read_sdf_table(
    path: str | Path, *, encoding: str | None = None, display: str | None = None
) -> pd.DataFrame:
    """Read an SD file (``.gz`` too) into a table of strings: one row per record.

    Columns are ``_Name`` (the title line), ``_MolBlock`` and one column per data item name
    (None where a record lacks the item). Row ``i`` (0-based) is record ``i + 1``.
    ``encoding`` defaults to UTF-8 (or what a byte-order mark says); errors name
    ``display`` (default: the path).

    Raises
    ------
    IngestError
        If the file is missing, unreadable, truncated, corrupt or not in ``encoding``.
    """
    p = Path(path)
    text = read_text(p, encoding, display=str(p) if display is None else display)
    records = [_parse_record(rec) for rec in _records(text)]
    n = len(records)
    # Column by column (wide SDF exports have hundreds of sparse items).
    columns: dict[str, list[str | None]] = {SDF_TITLE: [None] * n, SDF_MOLBLOCK: [None] * n}
    for i, rec in enumerate(records):
        for name, value in rec.items():
            col = columns.get(name)
            if col is None:
                col = columns[name] = [None] * n
            col[i] = value
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


def _molblocks_to_smiles_chunk(molblocks: Sequence[str]) -> list[str]:
    from rdkit import Chem, rdBase

    out: list[str] = []
    with rdBase.BlockLogs():
        for block in molblocks:
            mol = Chem.MolFromMolBlock(block, sanitize=True)
            if mol is None:
                mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False)
            smiles = ""
            if mol is not None and mol.GetNumAtoms() > 0:
                try:
                    smiles = Chem.MolToSmiles(mol)
                except (RuntimeError, ValueError):
                    smiles = ""
            out.append(smiles)
    return out


def molblocks_to_smiles(
    molblocks: Iterable[str], *, workers: int = 1, min_parallel: int = 2000
) -> list[str]:
    """SMILES for each molblock; ``""`` where RDKit cannot read it at all.

    A molblock that fails sanitization (e.g. a hypervalent atom) is still converted
    without sanitization so that standardization can decide about it with a proper reason.
    Batches of ``min_parallel`` or more are spread over ``workers`` processes (~0.5 ms per
    molecule); the result is the same for any number of workers.
    """
    blocks = list(molblocks)
    if workers <= 1 or len(blocks) < min_parallel:
        return _molblocks_to_smiles_chunk(blocks)
    size = max(100, len(blocks) // (workers * 4))
    chunks = [blocks[i : i + size] for i in range(0, len(blocks), size)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [s for part in pool.map(_molblocks_to_smiles_chunk, chunks) for s in part]


def smiles_to_molblock(smiles: str) -> str:
    """A V2000 molblock for ``smiles`` with 2D coordinates (unsanitized if it must be).

    Raises
    ------
    IngestError
        If RDKit cannot read the SMILES at all.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdDepictor

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        kekulize = True
        if mol is None:
            mol = Chem.MolFromSmiles(smiles, sanitize=False)
            if mol is None:
                raise IngestError("a SMILES cannot be read by RDKit; it has no molblock.")
            mol.UpdatePropertyCache(strict=False)
            kekulize = False
        rdDepictor.Compute2DCoords(mol)
        return str(Chem.MolToMolBlock(mol, kekulize=kekulize))


def smiles_to_molblocks(
    smiles: Sequence[str], *, workers: int = 1, min_parallel: int = 2000
) -> list[str]:
    """:func:`smiles_to_molblock` for many SMILES, in order, over ``workers`` processes.

    Depiction costs ~1 ms per molecule, so large batches (``>= min_parallel``) are spread
    over a process pool; the output is the same as the serial one.
    """
    if workers <= 1 or len(smiles) < min_parallel:
        return [smiles_to_molblock(s) for s in smiles]
    chunk = max(50, len(smiles) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(smiles_to_molblock, smiles, chunksize=chunk))


def format_sdf_record(title: str, molblock: str, properties: Mapping[str, str]) -> str:
    """One SDF record (with its ``$$$$`` terminator) as text."""
    lines = molblock.rstrip("\n").split("\n")
    lines[0] = title
    body = "\n".join(lines) + "\n"
    for name, value in properties.items():
        body += f">  <{name}>\n{value}\n\n"
    return body + "$$$$\n"


def write_sdf(path: str | Path, records: Iterable[str]) -> Path:
    """Write already formatted records (see :func:`format_sdf_record`) atomically."""
    return atomic_write_bytes(path, "".join(records).encode("utf-8"))


__all__ = [
    "SDF_MOLBLOCK",
    "SDF_TITLE",
    "format_sdf_record",
    "molblocks_to_smiles",
    "read_sdf_table",
    "smiles_to_molblock",
    "smiles_to_molblocks",
    "write_sdf",
]
