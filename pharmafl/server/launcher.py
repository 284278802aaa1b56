"""How the operator starts partner work: the launcher protocol.

A launcher starts a partner's round (or final evaluation) without waiting for it, says which
started runs already failed (the operator never waits for those), and waits for the rest at
the end of a round. Implementations live with the entry points (``flows/launchers.py``:
partner rounds as Prefect task runs in threads, or on each partner's own work pool); a
launcher holds threads or server connections, so it is a context manager and ``close()``
releases them.

A launcher names why a partner's run is over with one of the :data:`DROPOUT_CAUSES`
(``"worker offline: no heartbeat from pool-alpha for 34 s"``): the cause, before the colon,
is what the ledger, the round records and the report show; the detail stays in the
operator's log (it may name another party's paths).
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from pharmafl.common.errors import PharmaFLError, PolicyViolationError

#: The partner's worker is known to be gone (no heartbeat): not waited for.
WORKER_OFFLINE = "worker offline"
#: The partner's run died without a pharmafl error (killed, out of memory, a bug).
RUN_CRASHED = "run crashed"
#: The partner's run stopped with a pharmafl error (its data, its checks).
RUN_FAILED = "run failed"
#: The partner refused the round: it breaks the consortium's signed security policy.
REFUSED_BY_POLICY = "refused by policy"
#: The partner's run did not finish (or never started) before the stage deadline.
DEADLINE = "deadline"
#: The partner's run was cancelled (by its partner or on the server).
CANCELLED = "run cancelled"
#: The partner has no deployment to start.
NOT_DEPLOYED = "not deployed"
DROPOUT_CAUSES = (
    WORKER_OFFLINE,
    RUN_CRASHED,
    RUN_FAILED,
    REFUSED_BY_POLICY,
    DEADLINE,
    CANCELLED,
    NOT_DEPLOYED,
)


def failure(cause: str, detail: str = "") -> str:
    """A launcher's reason: ``"<cause>: <detail>"`` (at most 300 characters)."""
    return (f"{cause}: {detail}" if detail else cause)[:300]


def cause_of(reason: str) -> str:
    """The cause of a launcher's reason (the text before the first colon)."""
    return reason.split(":", 1)[0].strip()[:100]


def exception_failure(exc: BaseException) -> str:
    """The reason for a partner run that raised ``exc``."""
    kind = type(exc).__name__
    if isinstance(exc, PolicyViolationError):
        cause = f"{REFUSED_BY_POLICY} ({kind})"
    elif isinstance(exc, PharmaFLError):
        cause = f"{RUN_FAILED} ({kind})"
    else:
        cause = f"{RUN_CRASHED} ({kind})"
    return failure(cause, str(exc))


@runtime_checkable
class Launcher(Protocol):
    """Starts partner work and reports which partner runs ended."""

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        """Start ``partner``'s round (or final evaluation) without waiting for it."""

    def failed(self) -> dict[str, str]:
        """Partners whose current run ended with an error → a short reason."""

    def finish(self, timeout_s: float) -> dict[str, str]:
        """Wait for every started run; return the failed ones (partner → reason)."""

    def close(self) -> None:
        """Release what the launcher holds (threads, connections); idempotent."""


class LauncherBase:
    """Context-manager plumbing for launchers: ``with SomeLauncher(...) as launcher:``."""

    def close(self) -> None:
        """Nothing to release by default."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "CANCELLED",
    "DEADLINE",
    "DROPOUT_CAUSES",
    "NOT_DEPLOYED",
    "REFUSED_BY_POLICY",
    "RUN_CRASHED",
    "RUN_FAILED",
    "WORKER_OFFLINE",
    "Launcher",
    "LauncherBase",
    "cause_of",
    "exception_failure",
    "failure",
]
