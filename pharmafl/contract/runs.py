"""Run ids and round ids, as both sides spell them.

A training run is scoped by its ``run_id``; every secure-aggregation round id starts with it,
so runs never share a round. The consortium's main run is :data:`MAIN_RUN_ID`.
"""

from __future__ import annotations

import re

from pharmafl.layout import MAIN_RUN_ID

#: Allowed run ids (they start every round id of the run, and name the run's folders): one
#: plain path component, never ``.`` or ``..``.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
#: Allowed round ids of a training run, as :func:`format_round_id` spells them: the run id,
#: the round index, then the attempt or ``final`` (and the final evaluation's attempt). Each
#: is also a valid store round id (:data:`pharmafl.secure.envelope.ROUND_ID_PATTERN`).
ROUND_ID_PATTERN = (
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}-r[0-9]{4,5}(-a[0-9]{1,4}|-final(-a[0-9]{1,4})?)$"
)


def round_prefix(run_id: str, index: int) -> str:
    """The start shared by every round id (attempts, final evaluation) of round ``index``."""
    return f"{run_id}-r{index:04d}"


def format_round_id(run_id: str, index: int, attempt: int, final: bool = False) -> str:
    """Round id of attempt ``attempt`` of round ``index`` (or of the final evaluation)."""
    if final:  # a final evaluation can be retried too (resume after a crash during it)
        return f"{round_prefix(run_id, index)}-final" + (f"-a{attempt}" if attempt else "")
    return f"{round_prefix(run_id, index)}-a{attempt}"


def run_id_of(round_id: str) -> str:
    """The run id a round id (as :func:`format_round_id` spells it) starts with."""
    match = re.match(r"^(.+)-r[0-9]{4,5}-(a[0-9]|final)", round_id)
    return match.group(1) if match else round_id


__all__ = [
    "MAIN_RUN_ID",
    "ROUND_ID_PATTERN",
    "RUN_ID_PATTERN",
    "format_round_id",
    "round_prefix",
    "run_id_of",
]
