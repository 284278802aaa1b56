"""Which column is which: SMILES, compound id, assay id, value, unit, qualifier.

Heuristics for ``partner inspect`` on a sample of a table of strings: a column's name
(``Compound ID``, ``IC50 (nM)``, ``Relation``…) and its content (SMILES that RDKit reads,
numbers with or without a leading qualifier, qualifier or unit spellings) decide. Every
guess is written into the drafted config with what it was based on, for the user to check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pharmafl.common.errors import IngestError
from pharmafl.ingest.units import (
    QUALIFIER_SPELLINGS,
    qualified_values,
    resolve_unit,
    split_qualified_values,
)

_NAME = {
    "smiles": re.compile(r"smiles|^structure$|^smi$|mol_?structure", re.I),
    "assay": re.compile(r"assay|target|protocol|experiment|endpoint|^test", re.I),
    "compound": re.compile(
        r"compound|cpd|cmpd|molecule|^mol_?id$|substance|corporate|reg_?no|chembl|^id$|"
        r"_id$|^name$|sample|^_name$",
        re.I,
    ),
    "qualifier": re.compile(r"qualifier|relation|operator|modifier|prefix|sign|censor", re.I),
    "unit": re.compile(r"unit", re.I),
    "value": re.compile(
        r"value|[ia]c50|ec50|xc50|^p?k[idb]\b|activity|result|potency|measure|response|"
        r"inhibition|readout|^p[a-z]+50",
        re.I,
    ),
}
#: Numeric columns that describe compounds rather than measure them in an assay.
_DESCRIPTOR = re.compile(
    r"^(mw|mol_?wt|mol(ecular)?[ _]?weight|formula|c?logp|tpsa|hb[ad]|heavy[ _]?atoms|"
    r"rot_?b|inchi|batch|lot|date|purity|amount|mass|conc(entration)?|row|index|#)$",
    re.I,
)
_TOKEN = re.compile(r"[A-Za-zµμ0-9/]+")


@dataclass
class ColumnRoles:
    """The columns found for each role (None when none was found) and why."""

    smiles: str | None = None
    compound: str | None = None
    assay: str | None = None
    value: str | None = None
    qualifier: str | None = None
    unit: str | None = None
    value_named: bool = False
    numeric: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def _filled(series: pd.Series) -> pd.Series:
    text = series.astype("object").where(series.notna(), "").astype(str).str.strip()
    return text[text != ""]


def numeric_fraction(series: pd.Series, decimal: str = ".") -> float:
    """Share of filled cells that are numbers, with or without a leading qualifier."""
    text = _filled(series)
    if text.empty:
        return 0.0
    _q, number = split_qualified_values(text)
    if decimal != ".":
        number = number.str.replace(decimal, ".", regex=False)
    values = pd.to_numeric(number, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return float(np.isfinite(values).mean())


def numbers(series: pd.Series, decimal: str = ".") -> np.ndarray:
    """The finite numbers of a column (qualifiers split off)."""
    _q, number = split_qualified_values(_filled(series))
    if decimal != ".":
        number = number.str.replace(decimal, ".", regex=False)
    values = pd.to_numeric(number, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values[np.isfinite(values)]


def smiles_fraction(series: pd.Series, n: int = 30) -> float:
    """Share of (up to ``n`` distinct) filled cells RDKit reads as a SMILES."""
    from rdkit import Chem, rdBase

    text = pd.unique(_filled(series))[:n]
    if len(text) == 0:
        return 0.0
    ok = 0
    with rdBase.BlockLogs():
        for t in text:
            if " " in t or not re.search(r"[A-Za-z]", t) or re.fullmatch(r"[A-Za-z]+\d*", t):
                continue
            ok += Chem.MolFromSmiles(t, sanitize=False) is not None
    return ok / len(text)


def _all_in(series: pd.Series, accept: set[str]) -> bool:
    text = pd.unique(_filled(series))
    return len(text) > 0 and all(t in accept for t in text)


def unit_like(series: pd.Series) -> bool:
    """Every filled cell is a unit spelling."""
    for t in pd.unique(_filled(series)):
        try:
            resolve_unit(t)
        except IngestError:
            return False
    return len(_filled(series)) > 0


def unit_from_name(name: str) -> str | None:
    """A unit named in a column header: ``IC50 (nM)`` → nM, ``pIC50 X`` → pIC50."""
    for token in _TOKEN.findall(name):
        try:
            unit = resolve_unit(token)
        except IngestError:
            continue
        if unit.kind in ("concentration", "log"):
            return unit.name
    return None


def _integers(series: pd.Series) -> bool:
    text = _filled(series)
    return len(text) > 0 and bool(text.str.fullmatch(r"\d{1,18}").all())


def _pick(candidates: list[str], used: set[str]) -> str | None:
    left = [c for c in candidates if c not in used]
    return left[0] if left else None


def detect_roles(frame: pd.DataFrame, *, decimal: str = ".") -> ColumnRoles:
    """Assign roles to the columns of a sample table of strings."""
    roles, used = ColumnRoles(), set[str]()
    cols = [str(c) for c in frame.columns]
    by_name = {role: [c for c in cols if pat.search(c)] for role, pat in _NAME.items()}
    fraction = {c: numeric_fraction(frame[c], decimal) for c in cols}
    text_cols = [c for c in cols if fraction[c] < 0.5]
    smiles = [c for c in text_cols if smiles_fraction(frame[c]) >= 0.8]
    roles.smiles = _pick(
        [c for c in by_name["smiles"] if c in smiles] + smiles + by_name["smiles"], used
    )
    used.add(roles.smiles or "")
    qualifiers = set(QUALIFIER_SPELLINGS) - {""}
    qual = [c for c in cols if c not in used and _all_in(frame[c], qualifiers)]
    roles.qualifier = _pick([c for c in qual if c in by_name["qualifier"]] + qual, used)
    used.add(roles.qualifier or "")
    roles.unit = _pick([c for c in cols if c not in used and unit_like(frame[c])], used)
    used.add(roles.unit or "")
    assay = [c for c in by_name["assay"] if c in text_cols or c.lower().endswith("id")]
    roles.assay = _pick(assay, used)
    used.add(roles.assay or "")
    id_like = [c for c in by_name["compound"] if c not in by_name["value"] and c in text_cols]
    id_like += [c for c in by_name["compound"] if c not in id_like and _integers(frame[c])]
    roles.compound = _pick(id_like, used)
    used.add(roles.compound or "")
    roles.text = [c for c in text_cols if c not in used]
    roles.numeric = [
        c for c in cols if c not in used and fraction[c] >= 0.5 and not _DESCRIPTOR.match(c)
    ]
    value_named = [c for c in roles.numeric if c in by_name["value"]]
    roles.value = _pick(value_named + roles.numeric[:1], used)
    roles.value_named = roles.value in value_named
    return roles


_T0_FIELDS = {
    "assay_type": re.compile(r"assay_?type|^type$|category|class", re.I),
    "use_in_regression": re.compile(r"regress", re.I),
    "is_binary": re.compile(r"binary", re.I),
    "direction": re.compile(r"direction", re.I),
    "catalog_assay_id": re.compile(r"catalog", re.I),
}
_BOOLS = {"true", "false", "yes", "no", "y", "n", "t", "f", "1", "0", "1.0", "0.0"}


def t0_columns(frame: pd.DataFrame, assay: str) -> dict[str, str]:
    """T0 fields of an assay table under the partner's own names (by name and content)."""
    from pharmafl.common.params import ASSAY_TYPES

    found: dict[str, str] = {}
    lower = {c: pd.Series(_filled(frame[c]).str.lower().unique()) for c in frame.columns}
    content = {
        "assay_type": lambda c: _all_in(lower[c], {t.lower() for t in ASSAY_TYPES}),
        "use_in_regression": lambda c: _all_in(lower[c], _BOOLS),
        "is_binary": lambda c: _all_in(lower[c], _BOOLS),
        "direction": lambda c: _all_in(lower[c], {"high", "low"}),
        "catalog_assay_id": lambda c: numeric_fraction(frame[c]) == 1.0,
    }
    for target, pattern in _T0_FIELDS.items():
        cols = [c for c in frame.columns if c != assay and c not in found.values()]
        hits = [c for c in cols if (pattern.search(c) or c == target) and content[target](c)]
        if hits:
            found[target] = hits[0]
    thresholds = [c for c in frame.columns if re.search(r"threshold", c, re.I)]
    for i, c in enumerate(thresholds[:5], start=1):
        found[f"expert_threshold_{i}"] = c
    return found


_ADME = re.compile(
    r"solub|\bsol\b|clint|clearance|\blog ?d|permeab|caco|\bppb\b|microsom|hepatocyte|"
    r"\b[hrm]lm\b|stabilit|efflux|pampa|protein.?bind|half.?life|\bfu\b",
    re.I,
)


def adme_like(names: list[str]) -> bool:
    """Most of these assay or column names look like ADME endpoints (solubility, CLint…)."""
    hits = sum(bool(_ADME.search(str(n).replace("_", " "))) for n in names)
    return hits > 0 and hits >= len(names) / 2


def qualified_count(series: pd.Series, decimal: str = ".") -> int:
    """How many cells carry a qualifier inside the value."""
    return int(qualified_values(_filled(series), decimal=decimal).sum())


def is_binary(values: np.ndarray) -> bool:
    """All values are 0/1 (or −1/+1), and both classes occur."""
    return len(values) > 0 and bool(np.isin(values, (0.0, 1.0, -1.0)).all())


def guess_unit(values: np.ndarray) -> tuple[str, str]:
    """``(unit, why)`` from a column's value range when no header or column names one."""
    if len(values) == 0:
        return "none", "no numbers to judge from"
    lo, hi = float(np.min(values)), float(np.max(values))
    span = f"values from {lo:g} to {hi:g}"
    if lo >= 1.5 and hi <= 13:
        return "pXC50", f"{span} look like -log10 potencies"
    if lo > 0 and hi <= 1e-2:
        return "M", f"{span} look like molar concentrations"
    if lo > 0 and hi > 20:
        return "nM", f"{span} look like nM concentrations"
    return "none", f"{span}: kept as given"


__all__ = [
    "ColumnRoles",
    "adme_like",
    "detect_roles",
    "guess_unit",
    "is_binary",
    "numbers",
    "numeric_fraction",
    "qualified_count",
    "smiles_fraction",
    "t0_columns",
    "unit_from_name",
    "unit_like",
]
