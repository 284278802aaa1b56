"""Turning pharmafl errors into clean Prefect states and back.

A :class:`~pharmafl.common.errors.PharmaFLError` raised inside a flow would be logged by
Prefect with a full traceback (and, on a shared server, shown to every partner). Flows return
``Failed`` states carrying the error instead; launchers re-raise it so the CLI prints one
clear message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from prefect.states import Failed, State

from pharmafl.common.errors import ConfigError, PharmaFLError


class _Outcome:
    state: State[Any] | None = None


@contextmanager
def clean_failure() -> Iterator[_Outcome]:
    """Inside a flow: ``with clean_failure() as out: ...``; then ``if out.state: return it``."""
    outcome = _Outcome()
    try:
        yield outcome
    except PharmaFLError as exc:
        outcome.state = Failed(message=str(exc), data=exc)


def result_or_raise(run: Callable[..., State[Any]], *args: Any, **kwargs: Any) -> Any:
    """Run a flow with ``return_state=True``; return its result or raise its pharmafl error."""
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


__all__ = ["clean_failure", "operator_environment", "result_or_raise"]
