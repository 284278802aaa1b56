"""Turning pharmafl errors into clean Prefect states and back.

A :class:`~pharmafl.common.errors.PharmaFLError` raised inside a flow would be logged by
Prefect with a full traceback (and, on a shared server, shown to every partner). Flows
(:func:`fails_cleanly`) return ``Failed`` states carrying the error instead; launchers
re-raise it so the CLI prints one clear message.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import get_run_logger
from prefect.states import Failed, State

from flows._api import shield_local_api
from pharmafl.common.errors import ConfigError, PharmaFLError

P = ParamSpec("P")
R = TypeVar("R")


def fails_cleanly(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Put under ``@flow``: a :class:`PharmaFLError` raised by the flow's body becomes a
    ``Failed`` state carrying the error (logged once as ``"<what> failed: <message>"``), so
    Prefect shows no traceback and :func:`result_or_raise` re-raises the error itself."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def body(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except PharmaFLError as exc:
                get_run_logger().error("%s failed: %s", what, exc)
                # The error's kind leads the message: a launcher that reads the state from
                # the server names the cause of a dropout from it (refused by policy…).
                message = f"{type(exc).__name__}: {exc}"
                return Failed(message=message, data=exc)  # type: ignore[return-value]

        return body

    return decorate


def result_or_raise(run: Callable[..., State[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run a flow with ``return_state=True``; return its result or raise its pharmafl error.

    A Ctrl-C propagates as :class:`KeyboardInterrupt` once Prefect has recorded the crashed
    run (:func:`~flows._api.shield_local_api` keeps its local API alive for that)."""
    shield_local_api()
    state = run(*args, return_state=True, **kwargs)
    if state.is_failed() or state.is_crashed():
        err = state.result(raise_on_failure=False)
        if isinstance(err, BaseException):
            raise err
        raise RuntimeError(state.message or "flow run failed")
    return state.result()


def operator_environment(launcher: str) -> None:
    """Keep the operator's process from phoning home, and check that the distributed launcher
    has the consortium's Prefect server to talk to."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if launcher != "distributed":
        return
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ConfigError(
            "the distributed launcher needs the consortium's Prefect server, and no "
            "Prefect API is configured.",
            fix="set PREFECT_API_URL=http://HOST:4200/api (and PREFECT_API_AUTH_STRING if "
            "the server asks for it), or use --launcher embedded.",
        )


__all__ = ["fails_cleanly", "operator_environment", "result_or_raise"]
