"""Task names: the partner's own assay ids and task labels in T8c/T8r and the catalogue."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pharmafl.common.errors import DataNotFoundError, PreparationError
from pharmafl.data import (
    CATALOGUE_FILE,
    TaskCatalogue,
    catalogue_from_tables,
    label_modes,
    load_catalogue,
    name_tasks,
    task_label,
    threshold_labels,
)


def _t8c() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cont_classification_task_id": pd.array([0, 1, pd.NA, 2], dtype="Int64"),
            "input_assay_id": [3, 3, 3, 7],
            "assay_type": ["OTHER"] * 4,
            "is_auxiliary": [False, False, True, False],
            "is_binary": [False, False, False, True],
            "threshold": [6.0, 6.5, 7.0, 0.0],
            "threshold_method": ["expert", "expert", "aux_high", "expert"],
            "direction": ["high", "high", "high", "low"],
            "evaluation_quorum_OK": [True] * 4,
            "aggregation_weight": [1.0, 1.0, 0.0, 1.0],
            "weight": [0.5, 0.5, np.nan, 1.0],
            "num_total_actives": [30] * 4,
            "num_total_inactives": [30] * 4,
            "num_fold_min_actives": [5] * 4,
            "num_fold_min_inactives": [5] * 4,
        }
    )


def _t8r() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cont_regression_task_id": pd.array([0], dtype="Int64"),
            "input_assay_id": [3],
            "assay_type": ["OTHER"],
            "is_auxiliary": [False],
            "direction": ["low"],
            "evaluation_quorum_OK": [True],
            "aggregation_weight": [1.0],
            "weight": [1.0],
            "censored_weight": [1.0],
            "num_total": [60],
            "num_uncensored_total": [40],
            "num_fold_min": [12],
        }
    )


def test_labels_say_assay_side_threshold_and_kind() -> None:
    assert task_label("CHEMBL123", "classification", 6.5, "high") == "CHEMBL123 >=6.5 (cls)"
    assert task_label("ADME-7", "classification", 2.0, "low") == "ADME-7 <=2 (cls)"
    assert task_label("CHEMBL123", "regression") == "CHEMBL123 (reg)"
    assert task_label("TOX, 21", "classification", 0.0, binary=True) == "TOX, 21 (cls)"


def test_name_tasks_adds_the_partners_ids_and_keeps_tuners_columns() -> None:
    ids = {3: "CHEMBL3", 7: "HTS-007"}
    t8c, t8r = name_tasks(_t8c(), _t8r(), ids)
    assert list(t8c.columns[: len(_t8c().columns)]) == list(_t8c().columns)
    assert t8c["input_assay_id"].tolist() == [3, 3, 3, 7]  # MELLODDY's integers stay
    assert t8c["assay_id"].tolist() == ["CHEMBL3"] * 3 + ["HTS-007"]
    assert set(t8c["task_kind"]) == {"classification"} and t8r["task_kind"].tolist() == [
        "regression"
    ]
    assert t8c["task"].tolist() == [
        "CHEMBL3 >=6 (cls)",
        "CHEMBL3 >=6.5 (cls)",
        "CHEMBL3 >=7 (cls)",  # an untrained candidate is named too
        "HTS-007 (cls)",
    ]
    assert t8r["task"].tolist() == ["CHEMBL3 (reg)"]


def test_repeated_labels_get_a_suffix() -> None:
    t8c = _t8c().assign(threshold=[6.0, 6.0000001, 7.0, 0.0])  # same text at 6 digits
    named, _ = name_tasks(t8c, _t8r(), {3: "A", 7: "B"})
    assert named["task"].tolist()[:2] == ["A >=6 (cls)", "A >=6 (cls) #1"]
    assert named["task"].is_unique


def test_the_catalogue_carries_names_and_round_trips(tmp_path) -> None:
    t8c, t8r = name_tasks(_t8c(), _t8r(), {3: "CHEMBL3", 7: "HTS-007"})
    cat = catalogue_from_tables(t8c, t8r)
    assert cat.labels("classification") == [
        "CHEMBL3 >=6 (cls)",
        "CHEMBL3 >=6.5 (cls)",
        "HTS-007 (cls)",
    ]
    assert cat.labels("regression") == ["CHEMBL3 (reg)"]
    assert cat.partner_ids
    binary = cat.of_kind("classification")[2]
    assert binary.is_binary and binary.assay_id == "HTS-007" and binary.input_assay_id == 7
    (tmp_path / CATALOGUE_FILE).write_text(cat.model_dump_json())
    assert load_catalogue(tmp_path) == cat


def test_a_catalogue_with_gaps_in_task_ids_or_twice_a_label_does_not_load() -> None:
    """Task ids are column numbers of Y: a gap or a swap would score a task under another
    task's name; labels name the partner's tasks in every output."""
    from pydantic import ValidationError

    doc = json.loads(catalogue_from_tables(_t8c(), _t8r()).model_dump_json())
    cls = [t for t in doc["tasks"] if t["kind"] == "classification"]
    cls[0]["task_id"], cls[1]["task_id"] = cls[1]["task_id"], cls[0]["task_id"]
    with pytest.raises(ValidationError, match="classification task ids must be 0…2 in order"):
        TaskCatalogue.model_validate(doc)
    doc = json.loads(catalogue_from_tables(_t8c(), _t8r()).model_dump_json())
    doc["tasks"][1]["label"] = doc["tasks"][0]["label"]
    with pytest.raises(ValidationError, match="task labels must be unique"):
        TaskCatalogue.model_validate(doc)


def test_an_older_catalogue_without_names_still_reads() -> None:
    doc = json.loads(catalogue_from_tables(_t8c(), _t8r()).model_dump_json())
    for task in doc["tasks"]:
        del task["assay_id"], task["label"]
    del doc["partner_ids"]
    cat = TaskCatalogue.model_validate(doc)
    assert cat.tasks[0].assay_id == "3" and cat.tasks[0].label == "3 >=6 (cls)"
    assert not cat.partner_ids  # commands that match by assay id ask to prepare again


def test_load_catalogue_says_what_to_do(tmp_path) -> None:
    with pytest.raises(DataNotFoundError, match="pharmafl prepare"):
        load_catalogue(tmp_path)
    (tmp_path / CATALOGUE_FILE).write_text('{"n_classification_tasks": 1}')
    with pytest.raises(PreparationError, match="invalid task catalogue"):
        load_catalogue(tmp_path)


def test_threshold_labels_follow_each_mode() -> None:
    modes = label_modes(
        np.array([False, False, True, False]),
        np.array([False, False, False, True]),
        np.array(["high", "low", "high", "low"], dtype=object),
    )
    labels = threshold_labels(
        np.array([7.0, 7.0, -1.0, -3.0]),
        np.array(["=", "=", "=", "="], dtype=object),
        np.array([6.0, 6.0, 0.0, -2.5]),
        modes,
    )
    # high: 7 ≥ 6 active; low: 7 > 6 inactive; binary: the sign; AUX_HTS low: v ≤ t active.
    assert labels.tolist() == [1.0, -1.0, -1.0, 1.0]
    censored = threshold_labels(
        np.array([5.0]), np.array([">"], dtype=object), np.array([6.0]), modes[:1]
    )
    assert np.isnan(censored).all()  # '> 5' cannot be placed against 6: ambiguous
