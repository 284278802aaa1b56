"""Reading and writing SD files (V2000/V3000 molblocks with ``> <name>`` data items).

SDF records are split and their data items read as text here, so that a record whose
molblock RDKit cannot parse still keeps its record number and id (it becomes a rejection
row, not a silent gap). Molblocks are turned into SMILES with RDKit; standardization
happens later in :mod:`pharmafl.chem`.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.common.io import atomic_write_bytes

#: Pseudo-column names of an SDF read as a table.
SDF_TITLE = "_Name"
SDF_MOLBLOCK = "_MolBlock"

_DATA_HEADER = re.compile(r"^>.*?<([^>]*)>")


def _open_text(path: Path) -> str:
    raw = path.read_bytes()
    if path.name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raise IngestError("file is not valid gzip.", file=path) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise IngestError(
            f"file is not UTF-8 text (first bad byte on line {line}).",
            file=path,
            fix="export the file as UTF-8.",
        ) from None


def _records(text: str) -> Iterator[list[str]]:
    lines: list[str] = []
    for line in text.splitlines():
        if line.strip() == "$$$$":
            yield lines
            lines = []
        else:
            lines.append(line)
    if any(x.strip() for x in lines):
        yield lines


def _parse_record(lines: list[str]) -> dict[str, str]:
    end = next((i for i, x in enumerate(lines) if x.startswith("M  END")), None)
    if end is None:
        # No molblock terminator: keep what precedes the first data item as the "molblock"
        # so the record is reported as unparseable rather than lost.
        end = next((i for i, x in enumerate(lines) if _DATA_HEADER.match(x)), len(lines)) - 1
    molblock = "\n".join(lines[: end + 1]) + "\n"
    rec = {SDF_TITLE: lines[0].strip() if lines else "", SDF_MOLBLOCK: molblock}
    i = end + 1
    while i < len(lines):
        m = _DATA_HEADER.match(lines[i])
        i += 1
        if m is None:
            continue
        values: list[str] = []
        while i < len(lines) and lines[i].strip() != "":
            values.append(lines[i])
            i += 1
        rec[m.group(1).strip()] = "\n".join(values).strip()
    return rec


def read_sdf_table(path: str | Path) -> pd.DataFrame:
    """Read an SD file into a table of strings: one row per record.

    Columns are ``_Name`` (the title line), ``_MolBlock`` and one column per data item name
    (empty string where a record lacks the item). Row ``i`` (0-based) is record ``i + 1``.
    """
    p = Path(path)
    records = [_parse_record(lines) for lines in _records(_open_text(p))]
    if not records:
        return pd.DataFrame({SDF_TITLE: pd.Series([], dtype=str)})
    frame = pd.DataFrame.from_records(records)
    return frame.fillna("").astype(str)


def molblocks_to_smiles(molblocks: Iterable[str]) -> list[str]:
    """SMILES for each molblock; ``""`` where RDKit cannot read it at all.

    A molblock that fails sanitization (e.g. a hypervalent atom) is still converted
    without sanitization so that standardization can decide about it with a proper reason.
    """
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
    "write_sdf",
]
