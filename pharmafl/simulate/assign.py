"""Splitting a public dataset among simulated partners.

Long datasets (FS-Mol) are split **by assay**, as real partners own different assays;
compounds follow their assays, so partners overlap on compounds measured in several assays
(~30 % of FS-Mol compounds). Two strategies (a registry, unknown keys list valid ones):

- ``hash``: each assay goes to a partner by a seeded hash of its id (uniform, random);
- ``family``: whole protein families (else targets) go to partners, largest first onto the
  least-loaded partner, so partners differ in target space (heterogeneous partners).

Then each partner keeps whole assays up to ``max_compounds`` distinct compounds, preferring
assays likely to pass MELLODDY's classification quorum (≥ 25 actives and ≥ 25 inactives,
judged from the dataset's own labels) of moderate size, then larger such assays, then any
with ≥ 50 measurements, then the rest; in seeded random order within each tier.

Wide datasets (Tox21, ADME) have few assays measured on nearly every compound, so they are
split **by compound** (every partner runs the same assays on its own compounds, as pharma
companies do for standard ADME/tox panels), with a seeded ``overlap`` fraction of compounds
given to a second partner too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from pharmafl.common.errors import ConfigError
from pharmafl.simulate.datasets import PublicDataset

#: Activities per class needed by MELLODDY's classification training quorum.
QUORUM_PER_CLASS = 25
#: Balanced assays up to this size are picked first: a compound budget then buys more tasks
#: (FS-Mol, 30,000 compounds: ~470 instead of ~375 main classification tasks per partner).
MODERATE_ASSAY_SIZE = 300


def seeded_hash(seed: int, text: str) -> int:
    """A 64-bit deterministic hash of ``text`` under ``seed`` (not a secret; SHA-256)."""
    digest = hashlib.sha256(f"{seed}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _hash_assays(data: PublicDataset, n: int, seed: int) -> dict[str, int]:
    assays = sorted(pd.unique(data.measurements["assay"]))
    return {a: seeded_hash(seed, f"assay:{a}") % n for a in assays}


def _family_assays(data: PublicDataset, n: int, seed: int) -> dict[str, int]:
    if data.assay_groups is None:
        raise ConfigError(
            "the family strategy needs assay metadata with protein families "
            "(fsmol_assay_metadata.csv beside the FS-Mol file).",
            file=data.source,
            fix="use --strategy hash, or put the metadata file beside the measurements.",
        )
    sizes = data.measurements.groupby("assay").size()
    groups = data.assay_groups.reindex(sizes.index).fillna("")
    groups = pd.Series(
        np.where(groups != "", groups, "assay:" + sizes.index.to_series().astype(str)),
        index=sizes.index,
    )
    load = sizes.groupby(groups).sum()
    order = sorted(load.index, key=lambda g: (-int(load[g]), seeded_hash(seed, f"group:{g}")))
    totals = [0] * n
    home: dict[str, int] = {}
    for g in order:
        p = min(range(n), key=lambda i: (totals[i], i))
        home[g] = p
        totals[p] += int(load[g])
    return {a: home[groups[a]] for a in sizes.index}


#: Assay-assignment strategies for long datasets: name → (dataset, partners, seed) → map.
ASSAY_STRATEGIES: dict[str, Callable[[PublicDataset, int, int], dict[str, int]]] = {
    "family": _family_assays,
    "hash": _hash_assays,
}


def _select_assays(
    data: PublicDataset, assays: Sequence[str], max_compounds: int | None, seed: int
) -> list[str]:
    meas = data.measurements
    sub = meas[meas["assay"].isin(assays)]
    stats = pd.DataFrame(
        {
            "n": sub.groupby("assay").size(),
            "actives": (sub["active"] == 1).groupby(sub["assay"]).sum(),
            "inactives": (sub["active"] == 0).groupby(sub["assay"]).sum(),
        }
    )
    balanced = (stats["actives"] >= QUORUM_PER_CLASS) & (stats["inactives"] >= QUORUM_PER_CLASS)
    moderate = stats["n"] <= MODERATE_ASSAY_SIZE
    tier = pd.Series(
        np.select(
            [balanced & moderate, balanced, stats["n"] >= 2 * QUORUM_PER_CLASS], [0, 1, 2], 3
        ),
        index=stats.index,
    )
    ordered = sorted(stats.index, key=lambda a: (int(tier[a]), seeded_hash(seed, f"pick:{a}")))
    if max_compounds is None:
        return sorted(ordered)
    per_assay = sub.groupby("assay")["smiles"].unique()
    chosen: set[str] = set()
    picked: list[str] = []
    for a in ordered:
        new = set(per_assay[a]) - chosen
        if len(chosen) + len(new) <= max_compounds:
            chosen |= new
            picked.append(a)
    return sorted(picked)


def split_by_assay(
    data: PublicDataset,
    n_partners: int,
    *,
    strategy: str,
    max_compounds: int | None,
    seed: int,
) -> list[pd.DataFrame]:
    """Measurements of each partner (assays assigned by ``strategy``, capped)."""
    if strategy not in ASSAY_STRATEGIES:
        raise ConfigError(
            f"unknown strategy {strategy!r}.",
            fix=f"use one of {', '.join(sorted(ASSAY_STRATEGIES))}.",
        )
    owner = ASSAY_STRATEGIES[strategy](data, n_partners, seed)
    meas = data.measurements
    parts = []
    for p in range(n_partners):
        mine = [a for a, o in owner.items() if o == p]
        picked = _select_assays(data, mine, max_compounds, seed)
        parts.append(meas[meas["assay"].isin(picked)].reset_index(drop=True))
    return parts


def auxiliary_part(
    data: PublicDataset, parts: Sequence[pd.DataFrame], max_compounds: int, seed: int
) -> pd.DataFrame:
    """Measurements of an auxiliary public partner: the assays no partner kept, picked as a
    partner's are (up to ``max_compounds`` distinct compounds). Its compounds may overlap the
    partners' (public data does); its assays never do."""
    if data.layout != "long":
        raise ConfigError(
            f"an auxiliary partner needs a dataset split by assay; {data.name} is split by "
            "compound.",
            fix="simulate FS-Mol (or another long file) for an auxiliary partner, or drop it.",
        )
    taken = set().union(*(set(p["assay"]) for p in parts))
    rest = sorted(set(pd.unique(data.measurements["assay"])) - taken)
    picked = _select_assays(data, rest, max_compounds, seed)
    meas = data.measurements
    return meas[meas["assay"].isin(picked)].reset_index(drop=True)


#: What a measurement says (shuffled together by :func:`shuffle_labels`).
_RESULT_COLUMNS = ("relation", "value", "active")


def shuffle_labels(part: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A free rider's measurements: within each assay, the results (relation, value, active)
    permuted among its compounds. The chemistry is real and each assay keeps its size and
    its mix of actives and values; what links a structure to its activity is gone."""
    rng = np.random.default_rng([seed, 0xF5EE])
    cols = [c for c in _RESULT_COLUMNS if c in part.columns]
    source = {c: part[c].to_numpy() for c in cols}
    shuffled = {c: v.copy() for c, v in source.items()}
    for _, rows in sorted(part.groupby("assay").indices.items()):
        order = rng.permutation(rows)  # positions within this assay, permuted
        for c in cols:
            shuffled[c][rows] = source[c][order]
    return part.assign(**shuffled)


def split_by_compound(
    data: PublicDataset,
    n_partners: int,
    *,
    strategy: str,
    max_compounds: int | None,
    seed: int,
    overlap: float,
) -> list[pd.DataFrame]:
    """Measurements of each partner when compounds (not assays) are split."""
    if strategy != "hash":
        raise ConfigError(
            f"strategy {strategy!r} splits assays; {data.name} is a wide dataset whose "
            "compounds are split.",
            fix="use --strategy hash for wide (Tox21/ADME-shaped) datasets.",
        )
    meas = data.measurements
    smiles = sorted(pd.unique(meas["smiles"]))
    h = np.array([seeded_hash(seed, f"compound:{s}") for s in smiles], dtype=np.uint64)
    home = (h % np.uint64(n_partners)).astype(np.int64)
    h2 = np.array([seeded_hash(seed, f"second:{s}") for s in smiles], dtype=np.uint64)
    shared = (h2 % np.uint64(1_000_000)).astype(np.float64) / 1e6 < overlap
    other = (home + 1 + (h2 >> np.uint64(20)) % np.uint64(max(n_partners - 1, 1))).astype(
        np.int64
    ) % n_partners
    order = np.argsort(h, kind="stable")
    parts = []
    for p in range(n_partners):
        member = (home == p) | (shared & (other == p))
        idx = order[member[order]]
        if max_compounds is not None:
            idx = idx[:max_compounds]
        keep = {smiles[i] for i in idx}
        parts.append(meas[meas["smiles"].isin(keep)].reset_index(drop=True))
    return parts


__all__ = [
    "ASSAY_STRATEGIES",
    "MODERATE_ASSAY_SIZE",
    "QUORUM_PER_CLASS",
    "seeded_hash",
    "shuffle_labels",
    "split_by_assay",
    "split_by_compound",
]
