"""The evaluation stage's error class.

Lives here until the lead moves it into :mod:`pharmafl.common.errors` beside the other
stage errors; it already derives from :class:`~pharmafl.common.errors.PharmaFLError`.
"""

from __future__ import annotations

from pharmafl.common.errors import PharmaFLError


class EvaluationError(PharmaFLError):
    """Labels, predictions or per-task tables handed to an evaluation function do not fit."""


__all__ = ["EvaluationError"]
