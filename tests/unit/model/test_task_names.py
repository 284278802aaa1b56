"""Per-task metrics (metrics.json) name each task by the partner's assay id and threshold."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from pharmafl.data import CATALOGUE_FILE, TaskCatalogue, TaskInfo
from pharmafl.model import Predictions, evaluate_predictions, load_prepared


def _task(kind: str, j: int) -> TaskInfo:
    cls = kind == "classification"
    return TaskInfo(
        kind=kind,  # type: ignore[arg-type]
        task_id=j,
        input_assay_id=100 + j,
        assay_id=f"ASSAY-{j:02d}",
        label=f"ASSAY-{j:02d} >=6 (cls)" if cls else f"ASSAY-{j:02d} (reg)",
        assay_type="OTHER",
        threshold=6.0 if cls else None,
        is_auxiliary=False,
        training_weight=1.0,
        aggregation_weight=1.0,
        evaluation_quorum_ok=True,
        num_total=10,
        num_fold_min=1,
    )


def write_catalogue(prepared: Path, n_cls: int, n_reg: int) -> TaskCatalogue:
    """A catalogue for a synthetic prepared folder (the synthetic writer has none)."""
    tasks = [_task("classification", j) for j in range(n_cls)]
    tasks += [_task("regression", j) for j in range(n_reg)]
    cat = TaskCatalogue(n_classification_tasks=n_cls, n_regression_tasks=n_reg, tasks=tasks)
    (prepared / CATALOGUE_FILE).write_text(cat.model_dump_json())
    return cat


def _preds(data) -> Predictions:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    return Predictions(
        cls_prob=rng.random((data.n_rows, data.n_cls_tasks)).astype(np.float32),
        reg_value=rng.normal(6, 1, (data.n_rows, data.n_reg_tasks)).astype(np.float32),
    )


def test_per_task_rows_lead_with_the_partners_names(small_prepared: Path, tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    shutil.copytree(small_prepared / "prepared", prepared)
    write_catalogue(prepared, 8, 3)
    data = load_prepared(prepared)
    split = evaluate_predictions(data, np.arange(data.n_rows), _preds(data))
    assert split.classification is not None and split.regression is not None
    first = split.classification.per_task[0]
    assert list(first)[:4] == ["task_id", "task", "assay_id", "threshold"]
    assert first["task"] == "ASSAY-00 >=6 (cls)" and first["assay_id"] == "ASSAY-00"
    assert [r["task"] for r in split.regression.per_task] == [
        f"ASSAY-{j:02d} (reg)" for j in range(3)
    ]
    assert "threshold" not in split.regression.per_task[0]
    assert split.model_dump_json()  # still a valid document


def test_without_a_matching_catalogue_rows_keep_task_ids_only(
    small_prepared: Path, tmp_path: Path
) -> None:
    data = load_prepared(small_prepared / "prepared")
    split = evaluate_predictions(data, np.arange(data.n_rows), _preds(data))
    assert split.classification is not None
    assert "task" not in split.classification.per_task[0]
    prepared = tmp_path / "prepared"
    shutil.copytree(small_prepared / "prepared", prepared)
    write_catalogue(prepared, 5, 3)  # another preparation's catalogue: not used
    other = load_prepared(prepared)
    split = evaluate_predictions(other, np.arange(other.n_rows), _preds(other))
    assert split.classification is not None
    assert "task" not in split.classification.per_task[0]
