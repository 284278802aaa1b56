"""An unreachable service is retried within its window and leaves two log lines per outage,
not one per attempt; past the window, one clear error."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from pharmafl.common.errors import ServiceUnavailableError
from pharmafl.common.retry import Outage


def _flaky(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError(111, "Connection refused")
        return "ok"

    return calls, fn


def test_an_outage_is_two_lines_whatever_the_attempts(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage("Prefect API http://127.0.0.1:1/api", fix="start it", window_s=30)
    calls, fn = _flaky(3)
    with caplog.at_level(logging.WARNING, logger="pharmafl.common.retry"):
        assert outage.call(fn, lambda e: isinstance(e, ConnectionError)) == "ok"
        assert outage.call(lambda: "again", lambda e: True) == "again"
    lines = [r.getMessage() for r in caplog.records]
    assert len(calls) == 4 and len(lines) == 2 and outage.outages == 1
    assert lines[0].startswith("Prefect API http://127.0.0.1:1/api unreachable (")
    assert "Connection refused" in lines[0] and "retrying for up to 30 s" in lines[0]
    assert "reachable again after" in lines[1]


def test_past_the_window_one_error_names_the_service_and_the_fix() -> None:
    outage = Outage("exchange store /srv/x", fix="mount it again", window_s=0.2)
    _, fn = _flaky(10_000)
    with pytest.raises(ServiceUnavailableError) as err:
        outage.call(fn, lambda e: isinstance(e, ConnectionError))
    text = str(err.value)
    assert "exchange store /srv/x unreachable for 0 s" in text and "mount it again" in text


def test_a_permanent_error_is_not_retried() -> None:
    outage = Outage("exchange store /srv/x", fix="-", window_s=30)
    calls, fn = _flaky(1)
    with pytest.raises(ConnectionError):
        outage.call(fn, lambda e: False)
    assert len(calls) == 1 and outage.outages == 0
