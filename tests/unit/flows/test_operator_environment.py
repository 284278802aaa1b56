"""The operator's process: no phoning home, and the distributed launcher needs a server."""

from __future__ import annotations

import os

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows._states import operator_environment
from pharmafl.common.errors import ConfigError, ModelError


def test_distributed_without_a_prefect_server_is_a_clear_error() -> None:
    with temporary_settings(updates={PREFECT_API_URL: None}):
        with pytest.raises(ConfigError, match="PREFECT_API_URL"):
            operator_environment("distributed")
        operator_environment("embedded")  # the embedded launcher needs no server
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_distributed_with_a_server_url_passes() -> None:
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        operator_environment("distributed")


def test_a_failed_run_is_never_taken_for_its_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that failed or crashed raises, whatever its state carries: its own exception,
    Prefect's, or a plain value (never returned as if the run had completed)."""
    from prefect.states import Completed, Crashed, Failed

    import flows._states as states

    monkeypatch.setattr(states, "shield_local_api", lambda: None)

    def run(state):  # type: ignore[no-untyped-def]
        return lambda return_state: state

    own = ModelError("a partner's heads did not converge")
    with pytest.raises(ModelError, match="did not converge"):
        states.result_or_raise(run(Failed(message="x", data=own)))
    with pytest.raises(BaseException, match="worker process vanished"):
        states.result_or_raise(run(Crashed(message="worker process vanished")))
    with pytest.raises(RuntimeError, match="half a summary"):
        states.result_or_raise(run(Failed(message="half a summary", data={"rounds": 3})))
    assert states.result_or_raise(run(Completed(data={"rounds": 3}))) == {"rounds": 3}
