"""Foundations shared by partner and aggregator code: errors, atomic I/O, crypto, settings.

Nothing here imports torch or RDKit.
"""

from pharmafl.common.errors import (
    AccountingError,
    ChemistryError,
    ConfigError,
    ConsistencyError,
    DataNotFoundError,
    EnvelopeRejectedError,
    EvaluationError,
    FederationError,
    IngestError,
    KeyFileError,
    LedgerError,
    ModelError,
    PharmaFLError,
    PreparationError,
    SecureAggregationError,
)
from pharmafl.common.io import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    canonical_json,
    sha256_bytes,
    sha256_file,
)
from pharmafl.common.params import (
    SCHEMA_MODELS,
    ConsortiumParameters,
    load_consortium_parameters,
)
from pharmafl.common.secret import (
    KEY_ENV_VAR,
    ConsortiumKey,
    load_consortium_key,
    write_new_consortium_key,
)
from pharmafl.common.settings import RuntimeSettings, data_dir, get_settings

__all__ = [
    "AccountingError",
    "ChemistryError",
    "ConfigError",
    "ConsistencyError",
    "ConsortiumKey",
    "ConsortiumParameters",
    "DataNotFoundError",
    "EnvelopeRejectedError",
    "EvaluationError",
    "FederationError",
    "IngestError",
    "KEY_ENV_VAR",
    "KeyFileError",
    "LedgerError",
    "ModelError",
    "PharmaFLError",
    "PreparationError",
    "RuntimeSettings",
    "SCHEMA_MODELS",
    "SecureAggregationError",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_json",
    "data_dir",
    "get_settings",
    "load_consortium_key",
    "load_consortium_parameters",
    "sha256_bytes",
    "sha256_file",
    "write_new_consortium_key",
]
