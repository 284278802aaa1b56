"""The operator's process: no phoning home, and the distributed launcher needs a server."""

from __future__ import annotations

import os

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows._states import operator_environment
from pharmafl.common.errors import ConfigError


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
