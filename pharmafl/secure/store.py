"""The exchange store: an fsspec folder through which all protocol envelopes pass.

The store is untrusted: it may read, drop, reorder, replay or inject files. It only ever
holds :class:`~pharmafl.secure.envelope.Envelope` frames (signed; payloads the store must
not read are AEAD-encrypted or masked), and receivers re-check every envelope they take
from it (:class:`~pharmafl.secure.envelope.EnvelopeGuard`).

Layout: ``<root>/<round_id>/<kind>/<recipient>/<sender>.<nonce>.env``. The root is a local
or NFS path (default), ``file://``, ``memory://`` (tests) or any fsspec URL such as
``s3://bucket/prefix`` (install the matching fsspec extra, e.g. ``s3fs``).

Writes are atomic: on a local filesystem the frame is written to a hidden temporary file
beside its destination and renamed into place; on object stores a single PUT is atomic by
itself; the memory filesystem writes in one call. Readers ignore hidden and non-``.env``
names, so a half-written file is never read.
"""

from __future__ import annotations

import builtins
import logging
import re
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pharmafl.common.errors import EnvelopeRejectedError, SecureAggregationError
from pharmafl.common.io import atomic_write_bytes
from pharmafl.secure.envelope import ENVELOPE_KINDS, Envelope

logger = logging.getLogger(__name__)

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_NAME = re.compile(r"^(?P<sender>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.(?P<nonce>[0-9a-f]{32})\.env$")


class ExchangeStore:
    """Put, list and get envelopes under one fsspec root.

    Parameters
    ----------
    url
        Local path, ``file://``, ``memory://`` or another fsspec URL.
    **storage_options
        Passed to fsspec (credentials for object stores come from the environment or here).
    """

    def __init__(self, url: str | Path, **storage_options: Any) -> None:
        self.url = str(url)
        fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ExchangeStore({self.url!r})"

    def _folder(self, round_id: str, kind: str, recipient: str) -> str:
        for part in (round_id, kind, recipient):
            if not _PART.match(part):
                raise SecureAggregationError(f"invalid store path component {part!r}.")
        if kind not in ENVELOPE_KINDS:
            raise SecureAggregationError(
                f"unknown envelope kind {kind!r}; valid kinds: {', '.join(ENVELOPE_KINDS)}."
            )
        return f"{self.root}/{round_id}/{kind}/{recipient}"

    @staticmethod
    def key_of(env: Envelope) -> str:
        """Store key (relative path) of ``env``."""
        return f"{env.round_id}/{env.kind}/{env.recipient}/{env.sender}.{env.nonce}.env"

    def put(self, env: Envelope) -> str:
        """Write ``env`` atomically and return its key.

        Raises
        ------
        SecureAggregationError
            If ``env`` is not an :class:`Envelope` (nothing else may land in the store).
        EnvelopeRejectedError
            If the same envelope (same sender and nonce) is already stored.
        """
        if not isinstance(env, Envelope):
            raise SecureAggregationError(
                f"only Envelope objects can be stored, got {type(env).__name__}.",
                fix="wrap the message with pharmafl.secure.seal(...).",
            )
        key = self.key_of(env)
        path = f"{self._folder(env.round_id, env.kind, env.recipient)}/{key.rsplit('/', 1)[1]}"
        if self.fs.exists(path):
            raise EnvelopeRejectedError(
                f"{env.kind} envelope from {env.sender!r} is already in the store (duplicate).",
                fix="send each message once; a new message needs a new nonce.",
            )
        data = env.to_bytes()
        if self._local:
            atomic_write_bytes(path, data)
        else:
            self.fs.mkdirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(path, data)
        logger.debug("stored %s", key)
        return key

    def keys(self, round_id: str, kind: str, recipient: str) -> builtins.list[str]:
        """Keys of the envelopes for ``recipient`` of one kind in one round, sorted."""
        folder = self._folder(round_id, kind, recipient)
        try:
            names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        out = []
        for full in names:
            name = str(full).rstrip("/").rsplit("/", 1)[-1]
            if _NAME.match(name):  # hidden temporaries and foreign files are skipped
                out.append(f"{round_id}/{kind}/{recipient}/{name}")
        return sorted(out)

    def get(self, key: str) -> Envelope:
        """Read and parse one envelope; its content must match its key.

        Raises
        ------
        EnvelopeRejectedError
            If the file is not an envelope or sits under the wrong round, kind, recipient,
            sender or nonce.
        """
        parts = key.split("/")
        match = _NAME.match(parts[-1]) if len(parts) == 4 else None
        if match is None:
            raise EnvelopeRejectedError(f"not an envelope key: {key!r}.")
        path = f"{self._folder(parts[0], parts[1], parts[2])}/{parts[3]}"
        try:
            with self.fs.open(path, "rb") as fh:
                env = Envelope.read_from(fh)
        except FileNotFoundError:
            raise EnvelopeRejectedError(f"envelope {key!r} is not in the store.") from None
        if self.key_of(env) != key:
            raise EnvelopeRejectedError(
                f"envelope stored under {key!r} does not match its content (moved or injected)."
            )
        return env

    def list(
        self, round_id: str, kind: str, recipient: str, *, sender: str | None = None
    ) -> builtins.list[Envelope]:
        """Every well-formed envelope for ``recipient`` of one kind in one round.

        Malformed or misplaced files are logged and skipped (the store is untrusted).
        """
        out = []
        for key in self.keys(round_id, kind, recipient):
            if sender is not None and not key.rsplit("/", 1)[1].startswith(f"{sender}."):
                continue
            try:
                out.append(self.get(key))
            except EnvelopeRejectedError as exc:
                logger.warning("skipping %s in %s: %s", key, self.url, exc.message)
        return out

    def purge(self, round_id: str) -> None:
        """Delete every envelope of ``round_id`` (after the round's report is kept)."""
        if not _PART.match(round_id):
            raise SecureAggregationError(f"invalid round id {round_id!r}.")
        path = f"{self.root}/{round_id}"
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


__all__ = ["ExchangeStore"]
