"""How the operator starts partner work: the launcher protocol.

A launcher starts a partner's round (or final evaluation) without waiting for it, says which
started runs already failed (the operator never waits for those), and waits for the rest at
the end of a round. Implementations live with the entry points (``flows/launchers.py``:
partner rounds as Prefect flow runs in threads, or on each partner's own work pool); a
launcher holds threads or server connections, so it is a context manager and ``close()``
releases them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self, runtime_checkable


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


__all__ = ["Launcher", "LauncherBase"]
