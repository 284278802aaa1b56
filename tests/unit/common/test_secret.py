from __future__ import annotations

import json
import os

import pytest

from pharmafl.common.errors import KeyFileError
from pharmafl.common.secret import (
    KEY_ENV_VAR,
    load_consortium_key,
    write_new_consortium_key,
)


def test_generated_key_is_owner_only_and_loads(tmp_path) -> None:
    path = write_new_consortium_key(tmp_path / "key.json")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    key = load_consortium_key(path)
    assert len(key.reveal()) == 64
    assert key.reveal().decode() not in repr(key)
    assert key.reveal().decode() not in str(key)


def test_world_readable_key_file_is_refused(tmp_path) -> None:
    path = write_new_consortium_key(tmp_path / "key.json")
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_consortium_key(path)


def test_missing_key_file(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="not found"):
        load_consortium_key(tmp_path / "nope.json")


def test_melloddy_key_json_and_env(tmp_path, monkeypatch) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"key": "melloddy-secret"}))
    os.chmod(path, 0o600)
    assert load_consortium_key(path).reveal() == b"melloddy-secret"
    monkeypatch.setenv(KEY_ENV_VAR, "from-the-environment")
    assert load_consortium_key(None).reveal() == b"from-the-environment"
    monkeypatch.delenv(KEY_ENV_VAR)
    with pytest.raises(KeyFileError, match=KEY_ENV_VAR):
        load_consortium_key(None)


def test_malformed_key_json_does_not_echo_content(tmp_path) -> None:
    path = tmp_path / "key.json"
    path.write_text('{"key": "s3cr3t-value",,}')
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError) as info:
        load_consortium_key(path)
    assert "s3cr3t" not in str(info.value)
