"""The accounting stage's error (part of the one PharmaFLError tree)."""

from __future__ import annotations

from pharmafl.common.errors import PharmaFLError


class AccountingError(PharmaFLError):
    """A contribution study or consortium summary got inputs it cannot use."""


__all__ = ["AccountingError"]
