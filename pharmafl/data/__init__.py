"""Activities → tasks → SparseChem matrices (MELLODDY-TUNER steps 4–9).

Descriptor vectors (:func:`dedupe_descriptors`), replicate aggregation
(:func:`aggregate_activities`), classification thresholds (:func:`make_classification_tasks`),
quorums and weights (:func:`filter_classification`, :func:`filter_regression`) and the
matrices of ``docs/prepared-format.md`` (:func:`build_matrices`, :func:`write_matrices`);
:func:`activities_to_tasks` runs the whole activity half. Partner side; no torch, no RDKit.
"""

from pydantic import BaseModel

from pharmafl.data.aggregate import AggregationResult, aggregate_activities
from pharmafl.data.catalogue import TaskCatalogue, TaskInfo, catalogue_from_tables
from pharmafl.data.descriptors import dedupe_descriptors
from pharmafl.data.filters import censored_weight, filter_classification, filter_regression
from pharmafl.data.matrices import MATRIX_FILES, PreparedMatrices, build_matrices, write_matrices
from pharmafl.data.tasks import TaskBuildResult, activities_to_tasks
from pharmafl.data.thresholds import ThresholdResult, class_labels, make_classification_tasks

SCHEMA_MODELS: dict[str, type[BaseModel]] = {"task_catalogue": TaskCatalogue}

__all__ = [
    "AggregationResult",
    "MATRIX_FILES",
    "PreparedMatrices",
    "SCHEMA_MODELS",
    "TaskBuildResult",
    "TaskCatalogue",
    "TaskInfo",
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
    "make_classification_tasks",
    "write_matrices",
]
