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

Reads are bounded: a file's size is checked before it is opened (small kinds at most
:data:`~pharmafl.secure.envelope.MAX_MESSAGE_PAYLOAD`, masked updates and trunks at most
what their reader expects, everything at most the store's ``max_envelope_bytes``), and the
read itself stops past that limit. Only regular files are read, and in a local store only
files whose real path is inside the store (no link leads out).

A store that is briefly unreachable (an unmounted share, a permission or network fault: any
``OSError`` but a missing envelope, or one file that cannot be opened in a folder that can be
listed: that file was planted so, and is skipped like any bad envelope) is retried with
backoff for ``PHARMAFL_RETRY_WINDOW_S`` (:class:`~pharmafl.common.retry.Outage`: one log line
when it goes, one when it is back); past that window an operation fails with
:class:`~pharmafl.common.errors.ServiceUnavailableError`.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import functools
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pharmafl.common.errors import EnvelopeRejectedError, SecureAggregationError
from pharmafl.common.io import atomic_write_bytes
from pharmafl.common.retry import Outage
from pharmafl.secure.envelope import (
    ENVELOPE_KINDS,
    FRAME_OVERHEAD,
    MAX_MESSAGE_PAYLOAD,
    VECTOR_KINDS,
    Envelope,
)

logger = logging.getLogger(__name__)

_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_NAME = re.compile(r"^(?P<sender>[A-Za-z0-9][A-Za-z0-9_.-]{0,63})\.(?P<nonce>[0-9a-f]{32})\.env$")
#: Default limit on one envelope's payload (2 GiB: a 64-bit masked update of 268 M
#: parameters; the 64 M-parameter trunk of docs/security.md takes 256 MB in a 32-bit ring).
MAX_ENVELOPE_BYTES = 1 << 31
#: How long one envelope may refuse to open (permission denied) in a readable folder before
#: it is taken for a planted file and skipped (retried with backoff meanwhile).
PLANTED_GRACE_S = 10.0


class ExchangeStore:
    """Put, list and get envelopes under one fsspec root.

    Parameters
    ----------
    url
        Local path, ``file://``, ``memory://`` or another fsspec URL.
    max_envelope_bytes
        Largest payload any envelope read from this store may have; a bigger file is
        skipped unread (see :meth:`payload_limit` for the per-kind limits).
    **storage_options
        Passed to fsspec (credentials for object stores come from the environment or here).
    """

    def __init__(
        self,
        url: str | Path,
        *,
        max_envelope_bytes: int = MAX_ENVELOPE_BYTES,
        **storage_options: Any,
    ) -> None:
        if max_envelope_bytes < 1:
            raise SecureAggregationError(
                f"max_envelope_bytes must be positive, got {max_envelope_bytes}."
            )
        self.url = str(url)
        fs, root = fsspec.core.url_to_fs(self.url, **storage_options)
        self.fs = fs
        self.root = root.rstrip("/") or "/"
        self.max_envelope_bytes = max_envelope_bytes
        self._local = isinstance(fs, LocalFileSystem)
        self._denied: dict[str, float] = {}  # path -> when it was first refused to us
        self._denied_lock = threading.Lock()
        self.outage = Outage(
            f"exchange store {self.url}",
            fix="make the store reachable, readable and writable again (its mount, "
            "permissions or credentials); a stopped training continues with `pharmafl train "
            "--resume`.",
        )

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
        data = env.to_bytes()
        self.outage.call(lambda: self._put(env, path, data), _transient_write)
        logger.debug("stored %s", key)
        return key

    def _put(self, env: Envelope, path: str, data: bytes) -> None:
        if self.fs.exists(path):
            raise EnvelopeRejectedError(
                f"{env.kind} envelope from {env.sender!r} is already in the store (duplicate).",
                fix="send each message once; a new message needs a new nonce.",
            )
        if self._local:
            atomic_write_bytes(path, data)
        else:
            self.fs.mkdirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(path, data)

    def keys(self, round_id: str, kind: str, recipient: str) -> builtins.list[str]:
        """Keys of the envelopes for ``recipient`` of one kind in one round, sorted."""
        folder = self._folder(round_id, kind, recipient)
        names = self.outage.call(lambda: self._ls(folder), _transient_read)
        out = []
        for full in names:
            name = str(full).rstrip("/").rsplit("/", 1)[-1]
            if _NAME.match(name):  # hidden temporaries and foreign files are skipped
                out.append(f"{round_id}/{kind}/{recipient}/{name}")
        return sorted(out)

    def _ls(self, folder: str) -> builtins.list[str]:
        try:
            return builtins.list(self.fs.ls(folder, detail=False))
        except FileNotFoundError:
            return []

    def payload_limit(self, kind: str, max_payload: int | None = None) -> int:
        """Largest payload this store reads for an envelope of ``kind``: ``max_payload``
        when the reader knows it (a masked update's exact size), else
        :data:`~pharmafl.secure.envelope.MAX_MESSAGE_PAYLOAD` for the small kinds; never
        more than ``max_envelope_bytes``."""
        if max_payload is None:
            max_payload = self.max_envelope_bytes if kind in VECTOR_KINDS else MAX_MESSAGE_PAYLOAD
        return max(0, min(max_payload, self.max_envelope_bytes))

    def _readable_size(self, path: str, key: str, limit: int) -> int:
        """The size of the regular file at ``path``, checked before anything is read."""
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            raise EnvelopeRejectedError(f"envelope {key!r} is not in the store.") from None
        if info.get("type") != "file":
            raise EnvelopeRejectedError(f"{key!r} is not a regular file; skipped unread.")
        size = int(info.get("size") or 0)
        if size > limit + FRAME_OVERHEAD:
            raise EnvelopeRejectedError(
                f"{key!r} is {size} bytes, over the limit of {limit} payload bytes for its "
                "kind; skipped unread."
            )
        return size

    @contextlib.contextmanager
    def _open_local(self, path: str, key: str, limit: int) -> Iterator[tuple[BinaryIO, int]]:
        """Open a local envelope without following a final link and without blocking on a
        pipe, then check the *open* file: regular, inside the store, within ``limit``."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise EnvelopeRejectedError(f"envelope {key!r} is not in the store.") from None
        except PermissionError:
            self._refuse_if_only_this_file(path, key)
            raise  # the store itself is at fault (its folder cannot be read): retried
        except OSError as exc:
            if exc.errno not in _NOT_A_FILE:
                raise  # the store itself is at fault (I/O): retried
            what = (
                "a link (links, e.g. to a file outside the store, are never followed)"
                if exc.errno == errno.ELOOP
                else "not a regular file"
            )
            raise EnvelopeRejectedError(f"{key!r} is {what}; skipped unread.") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise EnvelopeRejectedError(f"{key!r} is not a regular file; skipped unread.")
            if not self._inside(os.readlink(f"/proc/self/fd/{fd}")):
                raise EnvelopeRejectedError(
                    f"{key!r} links to a file outside the store; skipped unread."
                )
            if st.st_size > limit + FRAME_OVERHEAD:
                raise EnvelopeRejectedError(
                    f"{key!r} is {st.st_size} bytes, over the limit of {limit} payload bytes "
                    "for its kind; skipped unread."
                )
            yield fh, st.st_size

    def _refuse_if_only_this_file(self, path: str, key: str) -> None:
        """A file that stays unopenable while its folder can be listed was planted so (by
        whoever else writes to the store): after :data:`PLANTED_GRACE_S` of retries it is
        skipped like any bad envelope. Retrying it for the whole retry window would let one
        such file stall every reader and then fail the run; skipping it at once would drop
        a genuine envelope on a brief permission fault (an expiring NFS ticket, a chmod
        sweeping the tree, an object store serving its listing from a cache). Returns (and
        the caller re-raises, to retry) while in grace, or when the folder is unreadable
        too: then the store itself is at fault."""
        folder = path.rsplit("/", 1)[0]
        try:
            self.fs.ls(folder, detail=False)
        except OSError:
            return
        now = time.monotonic()
        with self._denied_lock:
            first = self._denied.setdefault(path, now)
        if now - first < min(PLANTED_GRACE_S, self.outage.window_s / 2):
            return
        raise EnvelopeRejectedError(
            f"{key!r} cannot be read (permission denied for {now - first:.0f} s) although "
            "its folder can; skipped unread."
        )

    def get(self, key: str, *, max_payload: int | None = None) -> Envelope:
        """Read and parse one envelope; its content must match its key.

        ``max_payload`` is the largest payload the caller expects (default: the kind's, see
        :meth:`payload_limit`); a bigger file is refused before it is read.

        Raises
        ------
        EnvelopeRejectedError
            If the file is not an envelope, is too big, is not a regular file (or links out
            of a local store), or sits under the wrong round, kind, recipient, sender or
            nonce.
        """
        parts = key.split("/")
        match = _NAME.match(parts[-1]) if len(parts) == 4 else None
        if match is None:
            raise EnvelopeRejectedError(f"not an envelope key: {key!r}.")
        path = f"{self._folder(parts[0], parts[1], parts[2])}/{parts[3]}"
        limit = self.payload_limit(parts[1], max_payload)
        return self.outage.call(lambda: self._get(key, path, limit), _transient_read)

    def _get(self, key: str, path: str, limit: int) -> Envelope:
        if self._local:  # checked on the open descriptor: no swap between check and read
            with self._open_local(path, key, limit) as (fh, size):
                env = Envelope.read_from(fh, max_payload=min(limit, size))
        else:
            size = self._readable_size(path, key, limit)
            try:
                with self.fs.open(path, "rb") as fh:
                    env = Envelope.read_from(fh, max_payload=min(limit, size))
            except FileNotFoundError:
                raise EnvelopeRejectedError(f"envelope {key!r} is not in the store.") from None
            except PermissionError:
                self._refuse_if_only_this_file(path, key)
                raise
        if self.key_of(env) != key:
            raise EnvelopeRejectedError(
                f"envelope stored under {key!r} does not match its content (moved or injected)."
            )
        return env

    def list(
        self,
        round_id: str,
        kind: str,
        recipient: str,
        *,
        sender: str | None = None,
        max_payload: int | None = None,
    ) -> builtins.list[Envelope]:
        """Every well-formed envelope for ``recipient`` of one kind in one round.

        Malformed, oversize (see :meth:`get`) or misplaced files are logged and skipped (the
        store is untrusted).
        """
        out = []
        for key in self.keys(round_id, kind, recipient):
            if sender is not None and not key.rsplit("/", 1)[1].startswith(f"{sender}."):
                continue
            try:
                out.append(self.get(key, max_payload=max_payload))
            except EnvelopeRejectedError as exc:
                logger.warning("skipping %s in %s: %s", key, self.url, exc.message)
        return out

    def purge(self, round_id: str, kinds: Iterable[str] | None = None) -> None:
        """Delete every envelope of ``round_id`` (after the round's report is kept), or only
        those of ``kinds`` (e.g. the bulky :data:`VECTOR_KINDS` of a checkpointed round)."""
        if not _PART.match(round_id):
            raise SecureAggregationError(f"invalid round id {round_id!r}.")
        if kinds is None:
            paths = [f"{self.root}/{round_id}"]
        else:
            unknown = set(kinds) - set(ENVELOPE_KINDS)
            if unknown:
                raise SecureAggregationError(f"unknown envelope kinds {sorted(unknown)}.")
            paths = [f"{self.root}/{round_id}/{kind}" for kind in sorted(kinds)]
        for path in paths:
            self.outage.call(functools.partial(self._rm, path), _transient_read)

    def _inside(self, real: str) -> bool:
        """Whether the resolved local path ``real`` lies in the store (links resolved)."""
        root = os.path.realpath(self.root)
        return os.path.commonpath((real, root)) == root

    def _rm(self, path: str) -> None:
        if self._local:  # a link planted on the way (a round folder) must not lead out
            real = os.path.realpath(path)
            if not self._inside(real) or real == os.path.realpath(self.root):
                logger.warning("not deleting %s: it leads out of the store (%s)", path, real)
                return
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


#: Errors of opening an envelope that say the file is not one (a link, a pipe, a folder):
#: skipped, never retried.
_NOT_A_FILE = frozenset({errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK})


def _transient_read(exc: BaseException) -> bool:
    """A read that failed because the store is unreachable (a missing file is an answer)."""
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)


def _transient_write(exc: BaseException) -> bool:
    """A write that failed because the store is unreachable (its folders vanished too)."""
    return isinstance(exc, OSError)


__all__ = ["MAX_ENVELOPE_BYTES", "ExchangeStore"]
