"""``pharmafl partner inspect``: draft a commented partner config from export files.

Each file is sniffed (:mod:`pharmafl.ingest.sniff`: encoding, delimiter, decimal mark, a
sample of rows), its columns given roles (:mod:`pharmafl.ingest.roles`) and turned into
config tables (:mod:`pharmafl.ingest.proposals`); MELLODDY-TUNER T0/T1/T2 files become the
``[melloddy]`` preset. The draft is checked to be a valid config, written atomically (never
over an existing config unless forced) and, by default, tried with the real ingest so that
the user sees the counts, or the first problem, at once.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pharmafl import __version__
from pharmafl.common.errors import ConfigError, IngestError, PharmaFLError
from pharmafl.common.io import atomic_write_text
from pharmafl.ingest.config import CONFIG_FILE_NAMES, PartnerConfig, parse_partner_config
from pharmafl.ingest.draft import Table, checks, render
from pharmafl.ingest.models import T1_COLUMNS, T2_COLUMNS
from pharmafl.ingest.proposals import propose
from pharmafl.ingest.read import ingest_partner
from pharmafl.ingest.sniff import InspectedFile, inspect_file

logger = logging.getLogger(__name__)

MelloddyRole = Literal["t0", "t1", "t2"]
_T0_SIGNATURE = {"input_assay_id", "assay_type", "use_in_regression", "is_binary"}
_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Inspection:
    """What ``partner inspect`` found and wrote.

    Attributes
    ----------
    config_path
        The config written (None before writing).
    files
        One line per inspected file: its path and what it holds.
    checks
        Every guess marked ``CHECK`` in the config.
    ingest
        The ingest check's counts, or its error message; None when not run.
    ingest_ok
        Whether the ingest check passed.
    """

    text: str
    config: PartnerConfig
    files: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    config_path: Path | None = None
    ingest: str | None = None
    ingest_ok: bool = False


def melloddy_role(f: InspectedFile) -> MelloddyRole | None:
    """Which MELLODDY-TUNER input file this is, by its columns, if any."""
    cols = set(f.columns)
    if set(T1_COLUMNS) <= cols:
        return "t1"
    if cols >= _T0_SIGNATURE:
        return "t0"
    if set(T2_COLUMNS) <= cols and "input_assay_id" not in cols:
        return "t2"
    return None


def _melloddy_preset(files: list[InspectedFile]) -> tuple[Table | None, list[InspectedFile]]:
    """The ``[melloddy]`` table when T0, T1 and T2 files are all there, plain CSV."""
    roles: dict[MelloddyRole, list[InspectedFile]] = {"t0": [], "t1": [], "t2": []}
    for f in files:
        found = melloddy_role(f)
        if found is not None and f.format == "csv" and f.delimiter == "," and f.decimal == ".":
            roles[found].append(f)
    encodings = {f.encoding for group in roles.values() for f in group}
    if not all(roles.values()) or len(roles["t2"]) > 1 or len(encodings) > 1:
        return None, files
    table = Table(
        "[melloddy]",
        intro=[
            "MELLODDY-TUNER year-3 input files, taken as they are: T1 values as given (pXC50,",
            "qualifiers already mirrored; ±1 for binary assays), ids kept, parent_assay_id",
            "ignored. T_cat (the consortium's catalogue) is not needed here.",
        ],
    )
    for key in ("t0", "t1"):
        paths = [f.config_path for f in roles["t0" if key == "t0" else "t1"]]
        table.add(key, paths[0] if len(paths) == 1 else paths, f"{key.upper()} detected")
    table.add("t2", roles["t2"][0].config_path, "T2 detected")
    (encoding,) = encodings
    if encoding is not None:
        table.add("encoding", encoding, "detected")
    used = {id(f) for group in roles.values() for f in group}
    return table, [f for f in files if id(f) not in used]


def _root(name: str) -> Table:
    table = Table("")
    table.add("name", name, "partner name: letters, digits, _ . - (no spaces)")
    table.add(
        "consortium_file", "consortium.json", "default: from joining the consortium", off=True
    )
    table.add("key_file", "key.json", "default: the consortium key (owner-only)", off=True)
    return table


def _preamble(n_files: int, out: Path) -> str:
    return (
        f"{out.name}: drafted by `pharmafl partner inspect` (pharmafl {__version__}) from "
        f"{n_files} file(s).\n"
        "Read every line marked CHECK, fix what is wrong, then run "
        f"`pharmafl prepare {out.parent}`.\n"
        "Paths are relative to this folder. Every setting: docs/partner-guide.md; schema: "
        "schemas/partner_config.schema.json."
    )


def config_path_of(path: Path, partner_dir: Path) -> str:
    """``path`` as the config names it: relative to the partner folder when inside it."""
    p, d = path.resolve(), partner_dir.resolve()
    return p.relative_to(d).as_posix() if p.is_relative_to(d) else str(p)


def partner_name(partner_dir: Path) -> str:
    """A valid partner name from the folder's name (``partner`` if nothing is left)."""
    name = _NAME_OK.sub("-", partner_dir.resolve().name).strip("-._")[:64]
    return name or "partner"


def _require(tables: list[Table], files: Sequence[Path]) -> None:
    headers = {t.header for t in tables}
    shown = ", ".join(str(f) for f in files[:5])
    for kind, what in (
        ("structures", "structures (SMILES or SDF)"),
        ("activities", "measurements"),
    ):
        if f"[[{kind}]]" not in headers and "[melloddy]" not in headers:
            raise IngestError(
                f"found no {what} in {shown}.",
                fix=f"pass the file(s) with the {what} too; inspect recognises SMILES, "
                "compound id, assay id, value, unit and qualifier columns by name and content "
                "(docs/partner-guide.md shows configs to write by hand).",
            )


def draft_partner_config(
    paths: Sequence[Path], out: Path, *, name: str | None = None
) -> Inspection:
    """Inspect ``paths`` and draft the commented config that ``out`` will hold.

    Raises
    ------
    IngestError
        If a file cannot be read, or no file holds structures or measurements.
    """
    partner_dir = out.parent
    files = [inspect_file(Path(p), config_path_of(Path(p), partner_dir)) for p in paths]
    preset, rest = _melloddy_preset(files)
    tables = [_root(name or partner_name(partner_dir))]
    summaries = []
    if preset is not None:
        tables.append(preset)
        summaries.append("MELLODDY-TUNER T0/T1/T2 files: the [melloddy] preset")
    for f in rest:
        if "catalog_task_id" in f.columns:
            summaries.append(f"{f.config_path}: MELLODDY T_cat, not needed (not read)")
            continue
        proposal = propose(f)
        tables += proposal.tables
        summaries.append(f"{f.config_path}: {proposal.summary}")
    _require(tables, list(paths))
    text = render(tables, preamble=_preamble(len(files), out))
    config = parse_partner_config(tomllib.loads(text), source=out)
    return Inspection(text, config, summaries, checks(tables))


def check_output(out: Path, *, force: bool = False) -> None:
    """Raise unless a drafted config may be written to ``out``.

    Raises
    ------
    ConfigError
        If ``out`` exists (without ``force``), is not a ``.toml`` file, or another config
        file sits in the same folder (prepare would find two).
    """
    if out.suffix != ".toml":
        raise ConfigError("inspect writes TOML.", file=out, fix="name the output partner.toml.")
    if out.exists() and not force:
        raise ConfigError(
            "a partner config already exists here.",
            file=out,
            fix="pass --force to overwrite it, or --out another file to compare.",
        )
    others = [n for n in CONFIG_FILE_NAMES if n != out.name and (out.parent / n).exists()]
    if others and out.name in CONFIG_FILE_NAMES:
        raise ConfigError(
            f"the folder already holds {', '.join(others)}; prepare would find two configs.",
            file=out,
            fix=f"remove {others[0]}, or write the draft under another name with --out.",
        )


def write_partner_config(text: str, out: Path, *, force: bool = False) -> Path:
    """Write a drafted config atomically (temporary file, then rename), after
    :func:`check_output`."""
    check_output(out, force=force)
    return atomic_write_text(out, text)


def check_ingest(inspection: Inspection, partner_dir: Path) -> None:
    """Run the real ingest with the drafted config; record its counts or first error."""
    try:
        result = ingest_partner(partner_dir, inspection.config, workers=1)
    except PharmaFLError as exc:
        inspection.ingest, inspection.ingest_ok = str(exc), False
        return
    c = result.counts
    inspection.ingest = (
        f"{c['compounds']} compounds, {c['measurements']} measurements, {c['assays']} "
        f"assays, {c['rejections']} rejected row(s)"
    )
    inspection.ingest_ok = True


def inspect_exports(
    paths: Sequence[Path],
    out: Path,
    *,
    name: str | None = None,
    force: bool = False,
    check: bool = True,
) -> Inspection:
    """Draft a partner config from ``paths``, write it to ``out``, and try it.

    Raises
    ------
    ConfigError
        If ``out`` may not be written (see :func:`write_partner_config`).
    IngestError
        If a file cannot be read or nothing usable is found.
    """
    check_output(out, force=force)  # before any work
    inspection = draft_partner_config(paths, out, name=name)
    inspection.config_path = write_partner_config(inspection.text, out, force=force)
    if check:
        check_ingest(inspection, out.parent)
    return inspection


__all__ = [
    "Inspection",
    "check_ingest",
    "check_output",
    "config_path_of",
    "draft_partner_config",
    "inspect_exports",
    "melloddy_role",
    "partner_name",
    "write_partner_config",
]
