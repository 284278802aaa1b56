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


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("  \n", "key is empty"),
        ('{"key": ""}', 'no non-empty "key" field'),
        ('{"secret": "long-enough-secret"}', 'no non-empty "key" field'),
        ('{"key": ["long-enough-secret"]}', 'no non-empty "key" field'),
        ("short", "shorter than 8 bytes"),
    ],
    ids=["blank", "empty-field", "no-field", "not-a-string", "short"],
)
def test_a_key_file_without_a_usable_key_is_refused_by_name(tmp_path, text, problem) -> None:
    """An empty or truncated key file must not become a guessable consortium key (the keyed
    fold hash, the bit permutation and the key check all derive from it): it is refused with
    the file's name and what to do."""
    path = tmp_path / "key.json"
    path.write_text(text)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError, match=problem) as info:
        load_consortium_key(path)
    assert info.value.file == str(path) and info.value.fix


def test_check_key_is_derived_once_per_key_and_consortium(monkeypatch) -> None:
    """A partner checks the roster before every round: in one process the scrypt runs once
    per (key, consortium), the memo gives the same bytes, holds no key bytes, and a
    different key or consortium gets its own derivation."""
    import hashlib
    import secrets

    from pharmafl.common import secret

    monkeypatch.setattr(secret, "_CHECK_KEYS", {})
    calls = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(kwargs["salt"])
        return real(*args, **kwargs)

    monkeypatch.setattr(secret.hashlib, "scrypt", counting)
    key = secret.ConsortiumKey(b"k" * 32)
    first = secret.key_check_key(key, "acme")
    assert secret.key_check_key(secret.ConsortiumKey(b"k" * 32), "acme") == first
    assert len(calls) == 1
    other_key = secret.key_check_key(secret.ConsortiumKey(b"j" * 32), "acme")
    other_name = secret.key_check_key(key, "acme2")
    assert len(calls) == 3 and len({first, other_key, other_name}) == 3
    memo = secret._CHECK_KEYS
    assert all(b"k" * 32 not in digest + name.encode() for digest, name in memo)
    for _ in range(secret._CHECK_KEYS_MAX):  # bounded: a long-lived process does not grow
        secret.key_check_key(secret.ConsortiumKey(secrets.token_bytes(32)), "acme")
    assert len(memo) <= secret._CHECK_KEYS_MAX
