"""The operator's calls to the consortium's Prefect API, and what they say about partners.

- :class:`PrefectApi`: every call on a fresh client (one TLS context for all of them); a
  call that must succeed (starting a partner's round) rides out an unreachable or restarting
  server for the retry window
  (:class:`pharmafl.common.retry.Outage`: one log line when it goes, one when it is back),
  then fails with a resumable :class:`~pharmafl.common.errors.ServiceUnavailableError`; a
  call that may be skipped (polling states) skips while the server is away.
- :class:`WorkerLiveness`: which partners' workers are alive, from the heartbeats Prefect
  keeps for the workers of each work pool. A partner whose pool has had no heartbeat for
  six heartbeat intervals (at least :data:`MIN_GRACE_S`) is offline; the operator does not
  wait for it. No partner is judged while the API itself was away within that time (its
  workers could not send heartbeats either), nor while no pool at all has a fresh heartbeat
  (the server is not recording them: overloaded, its SQLite database locked).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pharmafl.common.retry import Outage
from pharmafl.server.launcher import WORKER_OFFLINE, failure

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The shortest silence that makes a worker offline (Prefect workers of ``pharmafl partner
#: serve`` send a heartbeat every 5 s; plain ``prefect worker start``, every 30 s). A busy
#: server (SQLite locked by many clients) was seen to record heartbeats 15 s late, and a
#: live worker whose heartbeats met 503s (its client retrying them) to go silent for 20 s
#: while the others' got through (Prefect's client retries a 503 after 2, 4, 8, 16 s: three
#: failed tries of one heartbeat silence it for 14 s plus the requests, four for 30 s): a
#: false "offline" drops a live partner from its round, which costs more than noticing a
#: dead one 10 s later.
MIN_GRACE_S = 30.0
#: Heartbeat intervals a worker may miss before it counts as offline.
MISSED_HEARTBEATS = 6
#: What to do when the Prefect API stays away.
API_FIX = (
    "bring the Prefect server back (or correct PREFECT_API_URL and its credentials), then "
    "run `pharmafl train --resume` (a contribution study: run it again)."
)


#: A call slower than this means the API was (nearly) away: no liveness verdict for a while.
SLOW_CALL_S = 5.0
#: Settings that make ``get_client`` build a client of its own (and bound each request).
_OWN_CLIENT: dict[str, Any] = {"timeout": 15.0}


def api_transient(exc: BaseException) -> bool:
    """Whether a failed API call is worth retrying: the server is unreachable, restarting
    or overloaded (not: the object does not exist, the request is invalid)."""
    import httpx
    from prefect.exceptions import PrefectHTTPStatusError

    if isinstance(exc, PrefectHTTPStatusError):
        code = exc.response.status_code
        return code >= 500 or code in (408, 429)
    return isinstance(exc, httpx.TransportError | OSError)


def tls_context() -> ssl.SSLContext:
    """The TLS context Prefect's client builds for itself from its settings (verification
    off with ``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``; else the CA file
    ``PREFECT_API_SSL_CERT_FILE``, certifi's bundle by default), built once for a
    :class:`PrefectApi`: each build loads the CA bundle (tens of ms of CPU), and the operator
    polls its partners' runs and pools every few seconds on fresh clients."""
    import certifi
    from prefect.settings import PREFECT_API_SSL_CERT_FILE, PREFECT_API_TLS_INSECURE_SKIP_VERIFY

    if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where())


class PrefectApi:
    """Calls to the Prefect API of ``PREFECT_API_URL``, each on its own short-lived client."""

    def __init__(self) -> None:
        from prefect.settings import PREFECT_API_URL

        self.outage = Outage(f"Prefect API {PREFECT_API_URL.value()}", fix=API_FIX)
        self.back_at = -float("inf")  # monotonic time the API last came back
        self._httpx = {**_OWN_CLIENT, "verify": tls_context()}

    def _once(self, fn: Callable[[SyncPrefectClient], T]) -> T:
        """``fn`` on a client of its own. Not the flow run's shared client, which retries a
        refused connection for a minute, silently: an outage must be seen (logged, and no
        worker judged by the heartbeats it held up). A call that still took long (the
        client's own retries of other errors) counts as the API having been away."""
        from prefect.client.orchestration import get_client

        t0 = time.monotonic()
        with get_client(sync_client=True, httpx_settings=dict(self._httpx)) as client:
            out = fn(client)
        if time.monotonic() - t0 > SLOW_CALL_S:
            self.back_at = time.monotonic()
        return out

    def call(self, fn: Callable[[SyncPrefectClient], T]) -> T:
        """``fn(client)``, retried while the API is unreachable (up to the retry window)."""
        was_down = self.outage.down_since is not None
        out = self.outage.call(lambda: self._once(fn), api_transient)
        if was_down:
            self.back_at = time.monotonic()
        return out

    def try_call(self, fn: Callable[[SyncPrefectClient], T]) -> T | None:
        """``fn(client)`` once; None (the outage noted) when the API is unreachable."""
        try:
            out = self._once(fn)
        except Exception as exc:
            if not api_transient(exc):
                raise
            self.outage.failed(exc)
            return None
        if self.outage.down_since is not None:
            self.outage.succeeded()
            self.back_at = time.monotonic()
        return out

    def quiet_for(self) -> float:
        """Seconds the API has been reachable without a break (0 while it is away)."""
        if self.outage.down_since is not None:
            return 0.0
        return time.monotonic() - self.back_at


class WorkerLiveness:
    """Which partners' work pools have a live worker (Prefect's worker heartbeats).

    Parameters
    ----------
    api
        The operator's :class:`PrefectApi`.
    check_s
        How often the pools are read again (one API call per pool).
    """

    def __init__(self, api: PrefectApi, check_s: float = 2.0) -> None:
        self.api = api
        self.check_s = check_s
        self._checked_at = -float("inf")
        self._offline: dict[str, str] = {}  # pool -> reason
        self._empty_since: dict[str, float] = {}  # pool -> when first seen without a worker

    def offline(self, pools: dict[str, str]) -> dict[str, str]:
        """Partner → reason, for the partners (→ their pool) whose worker is offline."""
        if time.monotonic() - self._checked_at >= self.check_s:
            self._check(set(pools.values()))
        return {p: self._offline[pool] for p, pool in pools.items() if pool in self._offline}

    def _check(self, pools: set[str]) -> None:
        self._checked_at = time.monotonic()
        found = self.api.try_call(lambda c: {p: c.read_workers_for_work_pool(p) for p in pools})
        if found is None:
            return  # the API is away: the last verdicts stand
        if not _any_fresh(found):  # no heartbeat gets through: the server is at fault
            return
        offline = {}
        for pool, workers in found.items():
            reason = self._verdict(pool, workers)
            if reason is not None:
                offline[pool] = reason
        for pool in set(offline) - set(self._offline):
            log.warning("partner pool %s: %s", pool, offline[pool])
        for pool in set(self._offline) & pools - set(offline):
            log.info("partner pool %s: a worker is back online", pool)
        self._offline = offline

    def _verdict(self, pool: str, workers: list[Any]) -> str | None:
        """Why no worker of ``pool`` is alive; None when one is, or it is too early to say
        (a pool seen without any worker for less than :data:`MIN_GRACE_S`: its worker may
        be starting)."""
        beats = [w for w in workers if w.last_heartbeat_time is not None]
        if not beats:
            first = self._empty_since.setdefault(pool, time.monotonic())
            if time.monotonic() - first < MIN_GRACE_S:
                return None
            return failure(WORKER_OFFLINE, f"no worker polls pool {pool}")
        self._empty_since.pop(pool, None)
        now = datetime.now(UTC)
        age, grace = min((_age(w, now), _grace(w)) for w in beats)
        if age <= grace or self.api.quiet_for() < grace:  # alive, or its beats were blocked
            return None
        return failure(WORKER_OFFLINE, f"no heartbeat from pool {pool} for {age:.0f} s")


def _any_fresh(found: dict[str, list[Any]]) -> bool:
    """Whether any worker of these pools has a fresh heartbeat: when none has, the server
    is not recording heartbeats (overloaded, its database locked), which says nothing about
    any one partner."""
    now = datetime.now(UTC)
    beats = [w for workers in found.values() for w in workers if w.last_heartbeat_time]
    return any(_age(w, now) <= _grace(w) for w in beats)


def _age(worker: Any, now: datetime) -> float:
    return float((now - worker.last_heartbeat_time).total_seconds())


def _grace(worker: Any) -> float:
    """How long ``worker`` may stay silent: six of its heartbeat intervals, at least
    :data:`MIN_GRACE_S` (a loaded server records heartbeats late)."""
    interval = float(worker.heartbeat_interval_seconds or 30)
    return max(MIN_GRACE_S, MISSED_HEARTBEATS * interval)


__all__ = ["API_FIX", "MIN_GRACE_S", "PrefectApi", "WorkerLiveness", "api_transient", "tls_context"]
