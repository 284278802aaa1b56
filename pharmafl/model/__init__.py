"""The multi-task model: shared trunk (``trunk.``) + private heads (``heads.``), training,
evaluation and prediction (SparseChem, Arany et al., arXiv:2203.04676; reference §2).

- :class:`SparseInputTrunk` (sparse fingerprints) and :class:`GraphTrunk` (torch-geometric),
  :class:`TaskHead` (classification + censored regression), :class:`MultiTaskModel`, rebuilt
  from :class:`ModelConfig`.
- :class:`LocalTrainer` / :func:`train_local`: local training on one partner's
  :class:`PreparedData`; :func:`export_trunk` / :func:`import_trunk` move the trunk by name
  (the federation layer's interface).
- :func:`run_baseline` (``models/local/``), :func:`run_pooled` (simulation upper bound),
  :func:`predict_structures` (new compounds through the same standardization and key).
"""

from pydantic import BaseModel

from pharmafl.evaluation.documents import (
    EpochRecord,
    MetricsReport,
    PooledReport,
    SplitMetrics,
    TaskTypeMetrics,
)
from pharmafl.model.baseline import (
    CHECKPOINT_FILE,
    LOCAL_MODEL_DIR,
    final_report,
    fit_trunk_to_data,
    run_baseline,
)
from pharmafl.model.batching import (
    GraphInputBatcher,
    LabelBatch,
    LabelBatcher,
    SparseBatch,
    SparseInputBatcher,
    gather_csr_rows,
)
from pharmafl.model.config import (
    GraphTrunkConfig,
    HeadConfig,
    ModelConfig,
    SparseTrunkConfig,
    TrainConfig,
    TrunkConfig,
)
from pharmafl.model.data import PREPARED_FILES, PreparedData, load_prepared, load_sparsechem
from pharmafl.model.heads import HeadOutput, TaskHead, censored_mse_loss, classification_loss
from pharmafl.model.hyperparameters import ModelHyperparameters
from pharmafl.model.multitask import (
    HEADS_PREFIX,
    TRUNK_PREFIX,
    MultiTaskModel,
    build_model,
    export_trunk,
    import_trunk,
    initial_trunk,
    local_model_config,
    trunk_state_names,
)
from pharmafl.model.optim import (
    RowSparseAdam,
    RowSparseAdamW,
    RowSparseSGD,
    build_optimizer,
    learning_rate,
    set_learning_rate,
)
from pharmafl.model.persist import (
    HYPERPARAMETERS_FILE,
    METRICS_FILE,
    MODEL_FILE,
    load_hyperparameters,
    load_model_dir,
    save_model_dir,
)
from pharmafl.model.pooled import (
    POOLED_MODEL_DIR,
    PooledResult,
    find_partner_dirs,
    head_name,
    run_pooled,
    train_pooled,
)
from pharmafl.model.predict import PredictResult, predict_structures, read_structures
from pharmafl.model.scoring import Predictions, evaluate_predictions, predict_rows
from pharmafl.model.sparse_linear import SparseLinear
from pharmafl.model.synthetic import synthetic_x, write_synthetic_prepared
from pharmafl.model.training import (
    LocalTrainer,
    TrainResult,
    input_batcher,
    load_checkpoint,
    regression_stats,
    train_local,
)
from pharmafl.model.trunks import TRUNKS, GraphTrunk, SparseInputTrunk, build_trunk

#: Shared documents of this stage (schema file stem → model).
SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "model_config": ModelConfig,
    "model_hyperparameters": ModelHyperparameters,
    "model_metrics": MetricsReport,
    "pooled_metrics": PooledReport,
    "train_config": TrainConfig,
}

__all__ = [
    "CHECKPOINT_FILE",
    "EpochRecord",
    "GraphInputBatcher",
    "GraphTrunk",
    "GraphTrunkConfig",
    "HEADS_PREFIX",
    "HYPERPARAMETERS_FILE",
    "HeadConfig",
    "HeadOutput",
    "LOCAL_MODEL_DIR",
    "LabelBatch",
    "LabelBatcher",
    "LocalTrainer",
    "METRICS_FILE",
    "MODEL_FILE",
    "MetricsReport",
    "ModelConfig",
    "ModelHyperparameters",
    "MultiTaskModel",
    "POOLED_MODEL_DIR",
    "PREPARED_FILES",
    "PooledReport",
    "PooledResult",
    "PredictResult",
    "Predictions",
    "PreparedData",
    "RowSparseAdam",
    "RowSparseAdamW",
    "RowSparseSGD",
    "SCHEMA_MODELS",
    "SparseBatch",
    "SparseInputBatcher",
    "SparseInputTrunk",
    "SparseLinear",
    "SparseTrunkConfig",
    "SplitMetrics",
    "TRUNKS",
    "TRUNK_PREFIX",
    "TaskHead",
    "TaskTypeMetrics",
    "TrainConfig",
    "TrainResult",
    "TrunkConfig",
    "build_model",
    "build_optimizer",
    "build_trunk",
    "censored_mse_loss",
    "classification_loss",
    "evaluate_predictions",
    "export_trunk",
    "final_report",
    "find_partner_dirs",
    "fit_trunk_to_data",
    "gather_csr_rows",
    "head_name",
    "import_trunk",
    "initial_trunk",
    "input_batcher",
    "learning_rate",
    "load_checkpoint",
    "load_hyperparameters",
    "load_model_dir",
    "load_prepared",
    "load_sparsechem",
    "local_model_config",
    "predict_rows",
    "predict_structures",
    "read_structures",
    "regression_stats",
    "run_baseline",
    "run_pooled",
    "save_model_dir",
    "set_learning_rate",
    "synthetic_x",
    "train_local",
    "train_pooled",
    "trunk_state_names",
    "write_synthetic_prepared",
]
