"""Loading the consortium secret key (descriptor scrambling and fold hashing).

The key comes from a file with owner-only permissions (MELLODDY ``key.json``:
``{"key": "..."}``) or from the ``PHARMAFL_CONSORTIUM_KEY`` environment variable. It is never
logged, never part of a repr, and never written into outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

from pharmafl.common.crypto import hmac_sha256
from pharmafl.common.errors import KeyFileError
from pharmafl.common.io import atomic_write_text

KEY_ENV_VAR = "PHARMAFL_CONSORTIUM_KEY"


class ConsortiumKey:
    """An opaque holder of the consortium secret; its repr and str never show the value."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes, source: str | None = None) -> None:
        if len(value) < 8:
            raise KeyFileError(
                "the consortium key is shorter than 8 bytes.",
                file=source,
                fix="use the key file distributed by the consortium (pharmafl consortium "
                "simulate writes one with 32 random bytes).",
            )
        self._value = value

    def reveal(self) -> bytes:
        """Return the raw key bytes (for the keyed hash functions only)."""
        return self._value

    def __repr__(self) -> str:
        return "ConsortiumKey(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:  # never pickled into Prefect results
        raise TypeError("ConsortiumKey cannot be pickled")


def _parse_key_text(text: str, source: str) -> bytes:
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise KeyFileError(
                f"key is not valid JSON (line {exc.lineno}).",
                file=source,
                fix='write it as {"key": "<secret>"} (MELLODDY key.json format).',
            ) from None
        value = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise KeyFileError(
                'key JSON has no non-empty "key" field.',
                file=source,
                fix='write it as {"key": "<secret>"}.',
            )
        return value.encode("utf-8")
    if not text:
        raise KeyFileError("key is empty.", file=source, fix="use the consortium key file.")
    return text.encode("utf-8")


def load_consortium_key(path: str | Path | None = None) -> ConsortiumKey:
    """Load the consortium key from ``path`` or, if ``path`` is None, from the environment.

    Raises
    ------
    KeyFileError
        If the file is missing, readable by group/others, or malformed, or if neither a
        path nor ``PHARMAFL_CONSORTIUM_KEY`` is given.
    """
    if path is None:
        env = os.environ.get(KEY_ENV_VAR)
        if not env:
            raise KeyFileError(
                "no consortium key given.",
                fix=f"pass the key file path or set {KEY_ENV_VAR}.",
            )
        return ConsortiumKey(_parse_key_text(env, KEY_ENV_VAR), KEY_ENV_VAR)
    p = Path(path)
    if not p.is_file():
        raise KeyFileError(
            "consortium key file not found.",
            file=p,
            fix=f"copy the consortium key file there (owner-only: chmod 600) or set {KEY_ENV_VAR}.",
        )
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"consortium key file is accessible by group or others (mode {mode:o}).",
            file=p,
            fix=f"restrict it to its owner: chmod 600 {p}",
        )
    return ConsortiumKey(_parse_key_text(p.read_text(encoding="utf-8"), str(p)), str(p))


#: Shortest key (in characters of its value) a partner may join a consortium with: key checks
#: are derived from the key, so a key that can be guessed could be found from them (a
#: generated key has 64 hex characters, 256 bits).
MIN_SHARED_KEY_CHARS = 32
_KEY_CHECK_DOMAIN = b"pharmafl/consortium-key-check/v2\x00"


#: Check keys derived in this process, by (SHA-256 of the key, consortium name): a partner
#: checks the roster before every round, and where rounds share a process (embedded partners,
#: a contribution study's coalitions) the scrypt would otherwise run each time. Holds no key
#: bytes; never written anywhere.
_CHECK_KEYS: dict[tuple[bytes, str], bytes] = {}
_CHECK_KEYS_MAX = 16


def key_check_key(key: ConsortiumKey, consortium: str) -> bytes:
    """The key that key checks are computed with: scrypt of the consortium key (salted
    with the consortium name; 16 MiB, so that guessing a key from a published check costs
    a memory-hard derivation per guess). Derived once per process and key."""
    memo = (hashlib.sha256(_KEY_CHECK_DOMAIN + key.reveal()).digest(), consortium)
    derived = _CHECK_KEYS.get(memo)
    if derived is None:
        derived = hashlib.scrypt(
            key.reveal(),
            salt=_KEY_CHECK_DOMAIN + consortium.encode("utf-8"),
            n=2**14,
            r=8,
            p=1,
            dklen=32,
        )
        if len(_CHECK_KEYS) >= _CHECK_KEYS_MAX:
            _CHECK_KEYS.clear()
        _CHECK_KEYS[memo] = derived
    return derived


def consortium_key_check(
    check_key: bytes, party_id: str, public_key: str, encryption_key: str | None
) -> str:
    """One partner's key check (hex): HMAC-SHA256, under :func:`key_check_key`, of the
    partner's id and public keys. Only a holder of the consortium key can compute it, and it
    is bound to that identity: copied into another identity's public file it is wrong. Every
    partner recomputes every partner's check in the roster with its own key before it pins
    (so all hold one key) and before every round (docs/operator-guide.md, the key ceremony)."""
    message = "\x00".join((party_id, public_key, encryption_key or "")).encode("utf-8")
    return hmac_sha256(check_key, _KEY_CHECK_DOMAIN + message).hex()


def check_shareable_key(key: ConsortiumKey, source: str | Path) -> None:
    """Refuse a key too short to publish a check value of.

    Raises
    ------
    KeyFileError
        Naming the key file and how to make a strong key.
    """
    if len(key.reveal()) < MIN_SHARED_KEY_CHARS:
        raise KeyFileError(
            f"the consortium key is shorter than {MIN_SHARED_KEY_CHARS} characters: its check "
            "value (published to the operator) would let anyone guess it.",
            file=source,
            fix="let one partner create the key with `pharmafl consortium join ... --new-key` "
            "(64 random hex characters) and share that file.",
        )


def write_new_consortium_key(path: str | Path) -> Path:
    """Create a fresh random consortium key file (32 random bytes, hex) with mode 600."""
    value = secrets.token_hex(32)
    return atomic_write_text(path, json.dumps({"key": value}) + "\n", mode=0o600)


__all__ = [
    "KEY_ENV_VAR",
    "MIN_SHARED_KEY_CHARS",
    "ConsortiumKey",
    "check_shareable_key",
    "consortium_key_check",
    "key_check_key",
    "load_consortium_key",
    "write_new_consortium_key",
]
