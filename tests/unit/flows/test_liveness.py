"""The operator's view of partners and of the Prefect API, without a server: worker liveness
verdicts from heartbeats, an unreachable API ridden out then given up on, dropout causes."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from flows import _prefect_api
from flows._prefect_api import PrefectApi, WorkerLiveness
from flows.launchers import _reason, run_tag
from flows.train import dropped_text
from pharmafl.common.errors import ServiceUnavailableError
from pharmafl.server import RoundResult, cause_of, exception_failure


class _FakeApi:
    """A PrefectApi whose workers are given; ``away`` makes it unreachable."""

    def __init__(self, workers: dict[str, list[Any]]) -> None:
        self.workers = workers
        self.away = False
        self.quiet = 1e9

    def try_call(self, fn: Any) -> Any:
        if self.away:
            self.quiet = 0.0
            return None
        client = SimpleNamespace(read_workers_for_work_pool=lambda pool: self.workers[pool])
        return fn(client)

    def quiet_for(self) -> float:
        return self.quiet


def _worker(age_s: float | None, interval: int = 5) -> Any:
    beat = None if age_s is None else datetime.now(UTC) - timedelta(seconds=age_s)
    return SimpleNamespace(last_heartbeat_time=beat, heartbeat_interval_seconds=interval)


def _liveness(api: _FakeApi) -> WorkerLiveness:
    return WorkerLiveness(api, check_s=0.0)  # type: ignore[arg-type]


def test_a_silent_pool_is_offline_a_beating_one_alive() -> None:
    api = _FakeApi({"pool-a": [_worker(2.0)], "pool-b": [_worker(40.0), _worker(None)]})
    out = _liveness(api).offline({"alpha": "pool-a", "bravo": "pool-b"})
    assert list(out) == ["bravo"]
    assert out["bravo"].startswith("worker offline: no heartbeat from pool pool-b for 40 s")
    assert cause_of(out["bravo"]) == "worker offline"


def test_six_missed_heartbeats_and_at_least_30_s() -> None:
    fresh = [_worker(1.0)]  # another partner's worker: the server records heartbeats
    slow = _FakeApi({"p": [_worker(170.0, interval=30)], "q": fresh})  # plain worker: 30 s
    assert _liveness(slow).offline({"x": "p", "y": "q"}) == {}
    slow.workers["p"] = [_worker(185.0, interval=30)]
    assert list(_liveness(slow).offline({"x": "p", "y": "q"})) == ["x"]
    fast = _FakeApi({"p": [_worker(28.0, interval=1)], "q": fresh})  # 6 s would be too eager
    assert _liveness(fast).offline({"x": "p", "y": "q"}) == {}
    fast.workers["p"] = [_worker(32.0, interval=1)]
    assert list(_liveness(fast).offline({"x": "p", "y": "q"})) == ["x"]


def test_no_verdict_when_no_heartbeat_gets_through() -> None:
    """A loaded server (its SQLite locked) records every worker's heartbeats late."""
    api = _FakeApi({"p": [_worker(40.0)], "q": [_worker(35.0)]})
    assert _liveness(api).offline({"x": "p", "y": "q"}) == {}
    api.workers["q"] = [_worker(1.0)]
    assert list(_liveness(api).offline({"x": "p", "y": "q"})) == ["x"]


def test_a_pool_without_workers_gets_time_to_start_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prefect_api, "MIN_GRACE_S", 0.3)
    api = _FakeApi({"p": [], "q": [_worker(0.1)]})
    live = _liveness(api)
    assert live.offline({"x": "p", "y": "q"}) == {}  # its worker may be starting
    time.sleep(0.35)
    assert live.offline({"x": "p", "y": "q"}) == {"x": "worker offline: no worker polls pool p"}
    api.workers["p"] = [_worker(0.1)]  # it came back
    assert live.offline({"x": "p", "y": "q"}) == {}


def test_no_verdict_while_the_api_itself_was_away() -> None:
    api = _FakeApi({"p": [_worker(40.0)], "q": [_worker(1.0)]})
    live = _liveness(api)
    pools = {"x": "p", "y": "q"}
    api.quiet = 5.0  # back 5 s ago: the worker's heartbeats may not have got through yet
    assert live.offline(pools) == {}
    api.away = True  # away: the last verdict stands, nothing new
    assert live.offline(pools) == {}
    api.away, api.quiet = False, 60.0
    assert list(live.offline(pools)) == ["x"]


def test_an_unreachable_api_is_retried_then_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("PHARMAFL_RETRY_WINDOW_S", "1.5")
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
        api = PrefectApi()
        assert api.try_call(lambda c: c.hello()) is None  # polling: skipped, not raised
        assert api.quiet_for() == 0.0
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailableError) as err:
            api.call(lambda c: c.hello())
    assert 1.0 <= time.monotonic() - t0 < 5.0
    text = str(err.value)
    assert text.startswith(f"Prefect API http://127.0.0.1:{port}/api unreachable for 2 s")
    assert "pharmafl train --resume" in text
    warned = [r.getMessage() for r in caplog.records if "Prefect API" in r.getMessage()]
    assert len(warned) == 1 and "retrying for up to 2 s" in warned[0], warned


def test_a_polls_own_error_is_raised_not_taken_for_an_outage() -> None:
    """``try_call`` skips a poll only when the API is unreachable; any other error (a bug, a
    refused request) is raised, and no outage is noted."""
    api = PrefectApi()

    def broken(client: Any) -> None:
        raise ValueError("not an outage")

    with pytest.raises(ValueError, match="not an outage"):
        api.try_call(broken)
    assert api.outage.down_since is None


def test_dropout_causes_are_named() -> None:
    from prefect.states import Cancelled, Crashed, Failed, Running

    from pharmafl.common.errors import FederationError, PolicyViolationError

    assert cause_of(_reason(Crashed(message="killed"))) == "run crashed"
    refused = Failed(message="PolicyViolationError: the round breaks the policy")
    assert cause_of(_reason(refused)) == "refused by policy"
    assert cause_of(_reason(Failed(message="ModelError: bad matrix"))) == "run failed"
    assert cause_of(_reason(Cancelled())) == "run cancelled"
    assert cause_of(_reason(Running(), deadline=True)) == "deadline"
    assert cause_of(_reason(None)) == "run crashed"
    assert cause_of(exception_failure(PolicyViolationError("no"))) == (
        "refused by policy (PolicyViolationError)"
    )
    assert cause_of(exception_failure(FederationError("x"))) == "run failed (FederationError)"
    assert cause_of(exception_failure(MemoryError())) == "run crashed (MemoryError)"
    rec = RoundResult(
        round=0,
        round_id="train-r0000-a0",
        contributors=["alpha", "bravo"],
        dropped=["charlie", "delta"],
        dropout_causes={"charlie": "worker offline"},
        trunk_sha256="0" * 64,
        mean_validation_auc_pr=None,
        validation={},
    )
    assert dropped_text(rec) == "charlie (worker offline), delta"
    assert run_tag("abc", "train") == "pharmafl-run:abc:train"


def test_every_call_uses_the_one_tls_context_prefects_settings_give(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Each call has a fresh client (no silent shared-client retries), but not a fresh TLS
    context: building one loads the CA bundle, and the operator polls every few seconds.
    The context is the one Prefect's client would build from its settings."""
    import ssl

    import certifi
    from prefect.settings import (
        PREFECT_API_SSL_CERT_FILE,
        PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
        PREFECT_API_URL,
        temporary_settings,
    )

    built: list[str | None] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    seen: list[Any] = []
    with temporary_settings(updates={PREFECT_API_URL: "https://127.0.0.1:9/api"}):
        api = PrefectApi()
        for _ in range(3):
            api._once(lambda c: seen.append(c._client._transport._pool._ssl_context))
        expected = PREFECT_API_SSL_CERT_FILE.value() or certifi.where()  # Prefect's rule
        assert built == [expected]  # once, not once a call
        assert len({id(ctx) for ctx in seen}) == 1
        assert seen[0].verify_mode is ssl.CERT_REQUIRED and seen[0].check_hostname
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(certifi.where()).read_bytes())
    with temporary_settings(updates={PREFECT_API_SSL_CERT_FILE: str(ca)}):
        built.clear()
        PrefectApi()
        assert built == [str(ca)]  # the operator's own CA file, as Prefect would use it
    with temporary_settings(updates={PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True}):
        ctx = _prefect_api.tls_context()
        assert ctx.verify_mode is ssl.CERT_NONE and not ctx.check_hostname
