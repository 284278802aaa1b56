"""Activities → tasks → SparseChem matrices (MELLODDY-TUNER steps 4–9).

Descriptor vectors (:func:`dedupe_descriptors`), replicate aggregation
(:func:`aggregate_activities`), classification thresholds (:func:`make_classification_tasks`),
quorums and weights (:func:`filter_classification`, :func:`filter_regression`) and the
matrices of ``docs/prepared-format.md`` (:func:`build_matrices`, :func:`write_matrices`);
:func:`activities_to_tasks` runs the whole activity half. Partner side; no torch, no RDKit.
"""

from pydantic import BaseModel

from pharmafl.data.aggregate import AggregationResult, aggregate_activities
from pharmafl.data.catalogue import (
    CATALOGUE_FILE,
    TaskCatalogue,
    TaskInfo,
    TaskKind,
    catalogue_from_tables,
    load_catalogue,
    name_tasks,
    task_label,
)
from pharmafl.data.descriptors import dedupe_descriptors
from pharmafl.data.filters import censored_weight, filter_classification, filter_regression
from pharmafl.data.matrices import MATRIX_FILES, PreparedMatrices, build_matrices, write_matrices
from pharmafl.data.tasklist import TaskList, render_task_list, task_list
from pharmafl.data.tasks import TaskBuildResult, activities_to_tasks
from pharmafl.data.thresholds import (
    ThresholdResult,
    class_labels,
    label_modes,
    make_classification_tasks,
    threshold_labels,
)

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "task_catalogue": TaskCatalogue,
    "task_list": TaskList,
}

__all__ = [
    "AggregationResult",
    "CATALOGUE_FILE",
    "MATRIX_FILES",
    "PreparedMatrices",
    "SCHEMA_MODELS",
    "TaskBuildResult",
    "TaskCatalogue",
    "TaskInfo",
    "TaskKind",
    "TaskList",
    "ThresholdResult",
    "activities_to_tasks",
    "aggregate_activities",
    "build_matrices",
    "catalogue_from_tables",
    "censored_weight",
    "class_labels",
    "dedupe_descriptors",
    "filter_classification",
    "filter_regression",
    "label_modes",
    "load_catalogue",
    "make_classification_tasks",
    "name_tasks",
    "render_task_list",
    "task_label",
    "task_list",
    "threshold_labels",
    "write_matrices",
]
