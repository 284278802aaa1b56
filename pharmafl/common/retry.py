"""Riding out a service that is briefly unreachable: the exchange store, the Prefect API.

A call that fails with a *transient* error is retried with backoff (0.5 s, 1 s, then every
:data:`MAX_BACKOFF_S`, so a service that comes back is noticed within seconds) for up to the
retry window (``PHARMAFL_RETRY_WINDOW_S``, 120 s by default). An
outage leaves two log lines, not one per attempt: a warning when it starts and a line when
the service is back. Past the window the call fails with one
:class:`~pharmafl.common.errors.ServiceUnavailableError` naming the service and the fix.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pharmafl.common.errors import ServiceUnavailableError
from pharmafl.common.settings import get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The longest wait between two attempts.
MAX_BACKOFF_S = 2.0


class Outage:
    """The state of one service: up, or down since when (shared by its callers' threads).

    Parameters
    ----------
    what
        The service as a message names it, e.g. ``"exchange store /srv/exchange"``.
    fix
        What to do when it stays down (ends the error message).
    window_s
        How long to retry; default ``PHARMAFL_RETRY_WINDOW_S``.
    """

    def __init__(self, what: str, fix: str, window_s: float | None = None) -> None:
        self.what = what
        self.fix = fix
        self.window_s = get_settings().retry_window_s if window_s is None else window_s
        self.down_since: float | None = None
        self.outages = 0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; return for how long the service has been down."""
        now = time.monotonic()
        with self._lock:
            if self.down_since is None:
                self.down_since = now
                self.outages += 1
                log.warning(
                    "%s unreachable (%s); retrying for up to %.0f s",
                    self.what,
                    _describe(exc),
                    self.window_s,
                )
            return now - self.down_since

    def succeeded(self) -> None:
        """Record a successful call (logs the end of an outage)."""
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is not None:
                log.warning(
                    "%s reachable again after %.1f s", self.what, time.monotonic() - self.down_since
                )
                self.down_since = None

    def give_up(self, exc: BaseException) -> ServiceUnavailableError:
        """The error that ends the run after the window."""
        return ServiceUnavailableError(
            f"{self.what} unreachable for {self.window_s:.0f} s ({_describe(exc)}).",
            fix=self.fix,
        )

    def call(self, fn: Callable[[], T], transient: Callable[[BaseException], bool]) -> T:
        """``fn()``, retried while it raises an error ``transient`` accepts."""
        delay = 0.5
        while True:
            try:
                out = fn()
            except Exception as exc:
                if not transient(exc):
                    raise
                down_for = self.failed(exc)
                if down_for >= self.window_s:
                    raise self.give_up(exc) from None
                time.sleep(min(delay, max(0.05, self.window_s - down_for)))
                delay = min(delay * 2, MAX_BACKOFF_S)
            else:
                self.succeeded()
                return out


def _describe(exc: BaseException) -> str:
    """An error's kind and errno name, never its text (which may hold credentials or paths
    of another party's machine)."""
    errno_name = getattr(exc, "strerror", None)
    return f"{type(exc).__name__}: {errno_name}" if errno_name else type(exc).__name__


__all__ = ["MAX_BACKOFF_S", "Outage"]
