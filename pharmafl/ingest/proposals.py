"""The partner-config tables ``partner inspect`` proposes for one export file.

A table file with SMILES gives a ``[[structures]]`` source; with measurements, an
``[[activities]]`` source: long (an assay column and a value column, or one value column
for a one-assay file) or wide (several numeric columns, one per assay). An SDF gives a
structure source from its molblocks and a wide activity source from its numeric tags. A
file with assay ids and no compounds gives an ``[[assays]]`` source. Every guess carries a
comment; guesses the user must confirm say ``CHECK``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pharmafl.common.params import ASSAY_TYPES
from pharmafl.ingest.draft import CHECK, Table
from pharmafl.ingest.files import delimiter_name
from pharmafl.ingest.roles import (
    ColumnRoles,
    adme_like,
    detect_roles,
    guess_unit,
    is_binary,
    numbers,
    qualified_count,
    t0_columns,
    unit_from_name,
)
from pharmafl.ingest.sdf import SDF_MOLBLOCK, SDF_TITLE
from pharmafl.ingest.sniff import InspectedFile

_TYPES = ", ".join(ASSAY_TYPES)


@dataclass
class Proposal:
    """The tables proposed for one file and a one-line summary of what it holds."""

    tables: list[Table]
    summary: str


def _source(kind: str, f: InspectedFile, intro: list[str] | None = None) -> Table:
    table = Table(f"[[{kind}]]", intro=intro or [])
    table.add("path", f.config_path)
    default = {"csv": ",", "tsv": "\t"}.get(f.format)
    if f.delimiter is not None and f.delimiter != default:
        table.add("delimiter", f.delimiter, f"detected: {delimiter_name(f.delimiter)}")
    if f.encoding is not None:
        table.add(
            "encoding", f.encoding, f"{CHECK}: detected {f.encoding_note}; accents must read right"
        )
    if f.decimal != ".":
        table.add("decimal", f.decimal, "detected: numbers are written like 12,5")
    return table


def _columns(kind: str, mapping: dict[str, tuple[str, str]]) -> Table:
    table = Table(f"[{kind}.columns]")
    for target, (column, why) in mapping.items():
        table.add(target, column, why)
    return table


def _defaults(kind: str, *, binary: bool, names: list[str]) -> Table:
    table = Table(f"[{kind}.assay_defaults]")
    adme = not binary and adme_like(names)
    why = "the assay names look like ADME endpoints; " if adme else ""
    table.add(
        "assay_type",
        "ADME" if adme else "OTHER",
        f"{CHECK}: {why}one of {_TYPES} (drives thresholds, quorums)",
    )
    if binary:
        table.add("is_binary", True, "values are 0/1 readouts")
    return table


def _rows(f: InspectedFile) -> str:
    return f"{len(f.sample)} row(s)" + ("" if f.complete else " in the part inspected")


def _unused(f: InspectedFile, used: set[str]) -> list[str]:
    return [c for c in f.columns if c not in used and c not in (SDF_TITLE, SDF_MOLBLOCK)]


def _repeats(f: InspectedFile, column: str) -> bool:
    return bool(f.sample[column].duplicated().any())


def _structures(f: InspectedFile, roles: ColumnRoles) -> Table | None:
    if roles.smiles is None:
        return None
    table = _source("structures", f, [f"structures: SMILES in column {roles.smiles!r}"])
    if _repeats(f, roles.compound or roles.smiles):
        table.add("allow_repeated_ids", True, "compounds repeat on several rows")
    return table


def _long_unit(f: InspectedFile, roles: ColumnRoles, table: Table) -> bool:
    """Add the unit line(s); returns whether the values are binary."""
    assert roles.value is not None
    values = numbers(f.sample[roles.value], f.decimal)
    if roles.unit is not None:
        table.add("unit_column", roles.unit, "each row's unit")
        return False
    named = unit_from_name(roles.value)
    if named is not None:
        table.add("unit", named, f"from the header {roles.value!r}")
    elif is_binary(values):
        table.add("unit", "binary", "values are 0/1")
        return True
    else:
        unit, why = guess_unit(values)
        table.add("unit", unit, f"{CHECK}: no unit in the header; {why}")
    return False


def _qualifier(
    f: InspectedFile, roles: ColumnRoles, mapping: dict[str, tuple[str, str]], table: Table
) -> str | None:
    """Map the qualifier column, unless values carry their own; returns a column to ignore."""
    assert roles.value is not None
    inside = qualified_count(f.sample[roles.value], f.decimal)
    if inside:
        table.add("qualifier_in_value", True, f"{inside} value(s) like '>10000' carry a qualifier")
        if roles.qualifier is not None:
            table.intro.append(
                f"{CHECK}: the values carry their qualifiers, so column {roles.qualifier!r} "
                "is not read"
            )
            return roles.qualifier
    elif roles.qualifier is not None:
        mapping["standard_qualifier"] = (roles.qualifier, "qualifier spellings like < = >")
    return None


def _long_activities(f: InspectedFile, roles: ColumnRoles) -> tuple[list[Table], set[str]]:
    assert roles.value is not None
    table = _source("activities", f, ["one measurement per row (long layout)"])
    compound = roles.compound or roles.smiles or ""
    mapping = {"input_compound_id": (compound, "compound ids")}
    if roles.assay is not None:
        n = f.sample[roles.assay].nunique()
        mapping["input_assay_id"] = (roles.assay, f"{n} distinct assay(s) in the sample")
    else:
        stem = f.path.name.split(".")[0]
        table.add("assay_id", stem, f"{CHECK}: no assay column; one assay for the file")
    mapping["standard_value"] = (roles.value, "numbers")
    binary = _long_unit(f, roles, table)
    ignored = _qualifier(f, roles, mapping, table)
    used = {compound, roles.value, roles.assay or "", roles.unit or ""}
    if ignored is None and roles.qualifier is not None:
        used.add(roles.qualifier)
    names = [roles.value, *(f.sample[roles.assay].unique() if roles.assay else [])]
    defaults = _defaults("activities", binary=binary, names=names)
    return [table, _columns("activities", mapping), defaults], used


def _wide_columns(columns: list[str]) -> tuple[str | None, list[str]]:
    """A common prefix (cut after a separator) naming every assay column, or the list."""
    prefix = columns[0] if len(columns) > 1 else ""
    for c in columns[1:]:
        while not c.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(c) for c in " _:-|.") + 1 if prefix else 0
    return (prefix[:cut], columns) if cut > 1 else (None, columns)


def _wide_activities(
    f: InspectedFile, compound: str, assay_cols: list[str]
) -> tuple[list[Table], set[str]]:
    table = _source("activities", f, ["one compound per row, one column per assay (wide)"])
    table.add("layout", "wide")
    prefix, cols = _wide_columns(assay_cols)
    if prefix is not None:
        table.add("assay_column_prefix", prefix, f"{len(cols)} assay columns; ids follow it")
    else:
        table.add("assay_columns", cols, f"{CHECK}: every numeric column is read as an assay")
    values = np.concatenate([numbers(f.sample[c], f.decimal) for c in cols])
    binary = is_binary(values)
    named = unit_from_name(prefix or cols[0])
    if binary:
        table.add("unit", "binary", "values are 0/1")
    elif named is not None:
        table.add("unit", named, f"from the header {prefix or cols[0]!r}")
    else:
        unit, why = guess_unit(values)
        table.add("unit", unit, f"{CHECK}: no unit in the headers; {why}")
    inside = sum(qualified_count(f.sample[c], f.decimal) for c in cols)
    if inside:
        table.add("qualifier_in_value", True, f"{inside} value(s) carry a qualifier")
    mapping = {"input_compound_id": (compound, "compound ids")}
    defaults = _defaults("activities", binary=binary, names=cols)
    return [table, _columns("activities", mapping), defaults], {compound, *cols}


def _finish(tables: list[Table], f: InspectedFile, used: set[str]) -> None:
    unused = _unused(f, used)
    if unused and tables:
        first = tables[0]
        first.add("ignore_columns", unused, "columns of the file that are not used")


def _assays(f: InspectedFile, assay: str) -> Proposal:
    table = _source("assays", f, ["assay descriptions (T0)"])
    mapping = {"input_assay_id": (assay, "assay ids")}
    found = t0_columns(f.sample, assay)
    mapping |= {
        t: (c, f"{CHECK}: guessed from its name and values") for t, c in found.items() if c != t
    }
    mapping |= {t: (c, "T0 column") for t, c in found.items() if c == t}
    tables = [table, _columns("assays", mapping)]
    _finish(tables, f, {c for c, _ in mapping.values()})
    return Proposal(tables, f"assays: {_rows(f)}, assay ids in {assay!r}")


def _first_id_like(f: InspectedFile, roles: ColumnRoles) -> str | None:
    """The first text column left with many distinct values (more than assays)."""
    floor = max(1, len(f.sample) // 20, f.sample[roles.assay].nunique() if roles.assay else 1)
    for column in roles.text:
        if f.sample[column].nunique() > floor:
            return column
    return None


def propose_table_file(f: InspectedFile) -> Proposal:
    """Tables for a CSV/TSV/parquet export."""
    roles = detect_roles(f.sample, decimal=f.decimal)
    if roles.smiles is None and roles.compound is None and roles.assay is not None:
        return _assays(f, roles.assay)
    if roles.compound is None and (roles.smiles or roles.value):
        roles.compound = _first_id_like(f, roles)  # exports lead with the id (Verbindung…)
    tables: list[Table] = []
    used = {roles.smiles or "", roles.compound or ""}
    structures = _structures(f, roles)
    parts = []
    if structures is not None:
        cols = {"input_compound_id": (roles.compound or roles.smiles or "", "compound ids")}
        cols["smiles"] = (roles.smiles or "", "RDKit reads these as SMILES")
        tables += [structures, _columns("structures", cols)]
        parts.append("structures")
    compound = roles.compound or roles.smiles
    acts: list[Table] = []
    if compound is not None and roles.assay is None and len(roles.numeric) >= 2:
        acts, more = _wide_activities(f, compound, roles.numeric)
    elif compound is not None and roles.value is not None and (roles.assay or roles.value_named):
        acts, more = _long_activities(f, roles)
    else:
        more = set()
    if acts:
        tables += acts
        parts.append("wide activities" if "wide" in acts[0].intro[0] else "activities")
    _finish(tables, f, used | more)
    what = " + ".join(parts) or "nothing usable (no SMILES, no measurements)"
    return Proposal(tables, f"{what}: {_rows(f)}")


def propose_sdf(f: InspectedFile) -> Proposal:
    """Tables for an SD file: structures from molblocks, numeric tags as wide activities."""
    titles = f.sample[SDF_TITLE]
    roles = detect_roles(f.sample.drop(columns=[SDF_TITLE, SDF_MOLBLOCK]))
    compound = SDF_TITLE if (titles != "").all() else (roles.compound or SDF_TITLE)
    structures = _source("structures", f, ["structures from the molblocks"])
    if _repeats(f, compound):
        structures.add("allow_repeated_ids", True, "records repeat compound ids")
    tables = [structures]
    if compound != SDF_TITLE:
        tables.append(_columns("structures", {"input_compound_id": (compound, "compound ids")}))
    assay_tags = [c for c in roles.numeric if c != compound]
    used = {compound}
    if assay_tags:
        acts, used = _wide_activities(f, compound, assay_tags)
        tables += acts
    _finish(tables, f, used)
    return Proposal(tables, f"SDF: {len(f.sample)} record(s), {len(assay_tags)} numeric tag(s)")


def propose(f: InspectedFile) -> Proposal:
    """The tables proposed for one inspected file."""
    return propose_sdf(f) if f.format == "sdf" else propose_table_file(f)


__all__ = ["Proposal", "propose", "propose_sdf", "propose_table_file"]
