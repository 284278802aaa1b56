"""The one exception tree of pharmafl.

Every error a user can cause derives from :class:`PharmaFLError`. Messages say what was
received, what was expected and how to fix it; they never contain secrets, keys or raw
partner values (STYLE.md §15).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class PharmaFLError(Exception):
    """Base class of every error pharmafl raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.row = row
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}"
            if self.row is not None:
                where += f", row {self.row}"
            where += ": "
        text = f"{where}{self.message}"
        if self.fix:
            text += f" Fix: {self.fix}"
        return text


class ConfigError(PharmaFLError):
    """A configuration file or setting is missing or invalid."""


class KeyFileError(ConfigError):
    """A secret key is missing, malformed or stored with unsafe permissions."""


class DataNotFoundError(PharmaFLError):
    """Public data or a partner's prepared outputs are not where they were expected."""


class IngestError(PharmaFLError):
    """A partner export (T0/T1/T2 or its own shape) failed validation."""


class AccountingError(PharmaFLError):
    """A contribution study or consortium summary got inputs it cannot use."""


class ChemistryError(PharmaFLError):
    """A single molecule could not be standardized or described."""


class PreparationError(PharmaFLError):
    """The preparation pipeline could not complete (tasks, folds, matrices)."""


class ConsistencyError(PreparationError):
    """The consortium consistency hash does not match the published value."""


class EvaluationError(PharmaFLError):
    """Labels, predictions or per-task tables handed to an evaluation function do not fit."""


class ModelError(PharmaFLError):
    """Model construction, training, checkpoint or prediction failed."""


class SecureAggregationError(PharmaFLError):
    """The secure-aggregation protocol failed or aborted."""


class PolicyViolationError(SecureAggregationError):
    """A round breaks the consortium's signed security policy; a partner refuses it."""


class EnvelopeRejectedError(SecureAggregationError):
    """A message envelope was rejected (signature, round, sender, replay, duplicate)."""


class AggregateCheckError(SecureAggregationError):
    """The decoded aggregate breaks the protocol's bounds: some partner sent values outside
    them. The aggregate is not applied, and the round is not retried."""


class FederationError(PharmaFLError):
    """A federated training round could not be orchestrated."""


class LedgerError(PharmaFLError):
    """The ledger is malformed or fails verification."""


class ServiceUnavailableError(PharmaFLError):
    """A service a run depends on (the exchange store, the Prefect API) stayed unreachable
    past its retry window (``PHARMAFL_RETRY_WINDOW_S``); a resumable run can be resumed."""


def validation_summary(exc: ValidationError) -> str:
    """``"<field path>: <message>"`` of a pydantic error's first problem (the path is empty
    for the whole document)."""
    first = exc.errors()[0]
    return f"{'.'.join(map(str, first['loc']))}: {first['msg']}"


__all__ = [
    "AccountingError",
    "AggregateCheckError",
    "ChemistryError",
    "ConfigError",
    "ConsistencyError",
    "DataNotFoundError",
    "EnvelopeRejectedError",
    "EvaluationError",
    "FederationError",
    "IngestError",
    "KeyFileError",
    "LedgerError",
    "ModelError",
    "PharmaFLError",
    "PolicyViolationError",
    "PreparationError",
    "SecureAggregationError",
    "ServiceUnavailableError",
    "validation_summary",
]
