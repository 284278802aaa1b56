"""Assay and compound splits: deterministic for a seed, caps respected, strategies checked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pharmafl.common.errors import ConfigError
from pharmafl.simulate import read_public_file, split_by_assay, split_by_compound
from pharmafl.simulate.assign import auxiliary_part, shuffle_labels


def _assays(parts: list[pd.DataFrame]) -> list[set[str]]:
    return [set(p["assay"]) for p in parts]


def test_hash_split_gives_every_assay_to_exactly_one_partner(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    parts = split_by_assay(data, 3, strategy="hash", max_compounds=None, seed=5)
    sets = _assays(parts)
    assert set().union(*sets) == set(data.measurements["assay"])
    assert sum(len(s) for s in sets) == 8
    assert sum(len(p) for p in parts) == len(data.measurements)


def test_split_is_deterministic_and_depends_on_the_seed(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    runs = {
        seed: _assays(split_by_assay(data, 3, strategy="hash", max_compounds=None, seed=seed))
        for seed in range(6)
    }
    again = _assays(split_by_assay(data, 3, strategy="hash", max_compounds=None, seed=0))
    assert again == runs[0]
    assert len({tuple(map(frozenset, r)) for r in runs.values()}) > 1


def test_compound_cap_takes_whole_assays(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    parts = split_by_assay(data, 2, strategy="hash", max_compounds=40, seed=1)
    full = data.measurements
    for p in parts:
        assert p["smiles"].nunique() <= 40
        for assay, group in p.groupby("assay"):
            assert len(group) == (full["assay"] == assay).sum()  # never a partial assay


def test_family_strategy_keeps_groups_together(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    assays = sorted(set(data.measurements["assay"]))
    data.assay_groups = pd.Series(
        ["family:kinase"] * 4 + ["family:protease"] * 2 + ["", ""], index=assays, dtype=str
    )
    parts = split_by_assay(data, 3, strategy="family", max_compounds=None, seed=0)
    owner = {a: i for i, s in enumerate(_assays(parts)) for a in s}
    assert len({owner[a] for a in assays[:4]}) == 1
    assert len({owner[a] for a in assays[4:6]}) == 1
    assert owner[assays[0]] != owner[assays[4]]  # the two big groups land apart


def test_family_strategy_needs_metadata_and_unknown_strategies_are_listed(
    fsmol_sample: Path,
) -> None:
    data = read_public_file(fsmol_sample)
    with pytest.raises(ConfigError, match="needs assay metadata"):
        split_by_assay(data, 2, strategy="family", max_compounds=None, seed=0)
    with pytest.raises(ConfigError) as err:
        split_by_assay(data, 2, strategy="random", max_compounds=None, seed=0)
    assert "family, hash" in (err.value.fix or "")


def test_compound_split_with_overlap_and_cap(tox_like: Path) -> None:
    data = read_public_file(tox_like)
    parts = split_by_compound(data, 2, strategy="hash", max_compounds=None, seed=3, overlap=1.0)
    # overlap 1.0: every compound is at both partners (2 partners), with all its assays
    assert all(p["smiles"].nunique() == 16 for p in parts)
    parts = split_by_compound(data, 3, strategy="hash", max_compounds=4, seed=3, overlap=0.0)
    smiles = [set(p["smiles"]) for p in parts]
    assert all(len(s) <= 4 for s in smiles)
    assert not (smiles[0] & smiles[1]) and not (smiles[1] & smiles[2])
    with pytest.raises(ConfigError, match="strategy hash"):
        split_by_compound(data, 2, strategy="family", max_compounds=None, seed=0, overlap=0.1)


def test_auxiliary_partner_gets_only_assays_no_partner_kept(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    parts = split_by_assay(data, 2, strategy="hash", max_compounds=40, seed=1)
    aux = auxiliary_part(data, parts, max_compounds=1000, seed=1)
    kept = set().union(*_assays(parts))
    assert set(aux["assay"]) == set(data.measurements["assay"]) - kept  # all the rest, whole
    assert len(aux) == (~data.measurements["assay"].isin(kept)).sum()
    capped = auxiliary_part(data, parts, max_compounds=30, seed=1)
    assert 0 < capped["smiles"].nunique() <= 30 and not (set(capped["assay"]) & kept)


def test_auxiliary_partner_needs_a_dataset_split_by_assay(tox_like: Path) -> None:
    data = read_public_file(tox_like)
    parts = split_by_compound(data, 2, strategy="hash", max_compounds=4, seed=3, overlap=0.0)
    with pytest.raises(ConfigError, match="split by compound"):
        auxiliary_part(data, parts, max_compounds=100, seed=3)


def test_a_free_riders_results_are_shuffled_within_each_assay(fsmol_sample: Path) -> None:
    data = read_public_file(fsmol_sample)
    part = split_by_assay(data, 2, strategy="hash", max_compounds=None, seed=1)[0]
    rider = shuffle_labels(part, seed=4)
    pd.testing.assert_frame_equal(rider[["assay", "smiles"]], part[["assay", "smiles"]])
    assert rider.dtypes.equals(part.dtypes)
    key = ["assay", "relation", "value", "active"]
    # each assay keeps its results (its size, actives and values), on other compounds
    assert sorted(map(tuple, rider[key].astype(str).to_numpy())) == sorted(
        map(tuple, part[key].astype(str).to_numpy())
    )
    moved = (rider["value"].to_numpy() != part["value"].to_numpy()).mean()
    assert moved > 0.5, moved
    pd.testing.assert_frame_equal(rider, shuffle_labels(part, seed=4))  # seeded
    assert not rider.equals(shuffle_labels(part, seed=5))
