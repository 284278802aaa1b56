"""Model evaluation and benefit statistics: per-task metrics, deltas, paired tests.

Pure functions on NumPy / SciPy / scikit-learn / pandas; nothing here imports torch or RDKit,
so the aggregator side and the accounting can use it (STYLE.md §2).

- :func:`classification_task_metrics`, :func:`regression_task_metrics`: one task
  (SparseChem's metric set, ``../shared/reference/melloddy-stack.md`` §2.5).
- :func:`evaluate_tasks`: every task of a sparse label matrix, aggregated over tasks with
  ``aggregation_weight > 0`` → :class:`EvaluationResult`.
- :func:`delta_metrics`, :func:`ecdf_difference`, :func:`significant_improvement_share`,
  :func:`benefit_summary`: what model b (federated) gained over a (local-only), MELLODDY's
  benefit accounting (§3.5).
- :func:`score_new_data`: a partner's models on newly measured compounds, by its own task
  names, with bootstrap intervals over tasks and over compounds (:func:`compound_bootstrap`).
"""

from pydantic import BaseModel

from pharmafl.common.errors import EvaluationError
from pharmafl.evaluation.benefit import (
    BOOTSTRAP_RESAMPLES,
    DEFAULT_BENEFIT_METRICS,
    PERFECT_VALUE,
    BenefitSummary,
    MetricBenefit,
    SignificanceSummary,
    benefit_summary,
    bootstrap_mean_ci,
    delta_metrics,
    ecdf,
    ecdf_difference,
    improve_to_perfect,
    relative_improve,
)
from pharmafl.evaluation.bootstrap import (
    COMPOUND_RESAMPLES,
    CompoundBootstrapResult,
    compound_bootstrap,
    fast_task_metric,
)
from pharmafl.evaluation.documents import (
    EpochRecord,
    MetricsReport,
    PooledReport,
    SplitMetrics,
    TaskTypeMetrics,
    paired_task_deltas,
    paired_task_gains,
)
from pharmafl.evaluation.metrics import (
    CLASSIFICATION_COUNTS,
    CLASSIFICATION_METRICS,
    REGRESSION_COUNTS,
    REGRESSION_METRICS,
    calibrated_precision,
    censored_squared_error,
    classification_task_metrics,
    expected_calibration_error,
    regression_task_metrics,
)
from pharmafl.evaluation.newdata import (
    AggregateScores,
    CompoundInterval,
    LabelQuorum,
    ModelComparison,
    ModelPredictions,
    ModelScores,
    NewDataScores,
    NewLabels,
    TaskRef,
    TaskScores,
    score_new_data,
)
from pharmafl.evaluation.significance import (
    SignificanceResult,
    benjamini_yekutieli,
    delong_paired_test,
    significant_improvement_share,
)
from pharmafl.evaluation.tasks import (
    EvaluationResult,
    TaskType,
    aggregate_task_metrics,
    count_names,
    evaluate_tasks,
    metric_names,
)

#: Shared documents of this stage (schema file stem → model).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {"benefit_summary": BenefitSummary}

__all__ = [
    "AggregateScores",
    "BOOTSTRAP_RESAMPLES",
    "BenefitSummary",
    "CLASSIFICATION_COUNTS",
    "CLASSIFICATION_METRICS",
    "COMPOUND_RESAMPLES",
    "CompoundBootstrapResult",
    "CompoundInterval",
    "DEFAULT_BENEFIT_METRICS",
    "EpochRecord",
    "EvaluationError",
    "EvaluationResult",
    "LabelQuorum",
    "MetricBenefit",
    "MetricsReport",
    "ModelComparison",
    "ModelPredictions",
    "ModelScores",
    "NewDataScores",
    "NewLabels",
    "PERFECT_VALUE",
    "PooledReport",
    "REGRESSION_COUNTS",
    "REGRESSION_METRICS",
    "SCHEMA_MODELS",
    "SignificanceResult",
    "SignificanceSummary",
    "SplitMetrics",
    "TaskRef",
    "TaskScores",
    "TaskType",
    "TaskTypeMetrics",
    "aggregate_task_metrics",
    "benefit_summary",
    "benjamini_yekutieli",
    "bootstrap_mean_ci",
    "calibrated_precision",
    "censored_squared_error",
    "classification_task_metrics",
    "compound_bootstrap",
    "count_names",
    "delong_paired_test",
    "delta_metrics",
    "ecdf",
    "ecdf_difference",
    "evaluate_tasks",
    "expected_calibration_error",
    "fast_task_metric",
    "improve_to_perfect",
    "metric_names",
    "paired_task_deltas",
    "paired_task_gains",
    "regression_task_metrics",
    "relative_improve",
    "score_new_data",
    "significant_improvement_share",
]
