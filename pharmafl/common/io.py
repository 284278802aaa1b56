"""Atomic file and directory writes: nothing is ever half-written.

Every output goes to a temporary path beside its destination and is renamed into place
(``os.replace`` is atomic on POSIX within one filesystem). Append-only files (the ledger, a
partner's ledger heads) are appended to under an exclusive lock, one whole line per
``write``, fsynced, and cut back if the write fails (:func:`locked_append`,
:func:`append_line`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pharmafl.common.errors import PharmaFLError, validation_summary

_M = TypeVar("_M", bound=BaseModel)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` as canonical JSON (sorted keys, no whitespace) for hashing/signing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@contextlib.contextmanager
def atomic_path(dest: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary file path; on success rename it onto ``dest``, else delete it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(dest: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``dest`` atomically; ``mode`` sets permissions before the rename."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
        if mode is not None:
            os.chmod(tmp, mode)
    return Path(dest)


def atomic_write_text(dest: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically."""
    return atomic_write_bytes(dest, text.encode("utf-8"), mode=mode)


def atomic_write_json(dest: str | Path, obj: Any, *, mode: int | None = None) -> Path:
    """Write ``obj`` as indented JSON to ``dest`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n"
    return atomic_write_text(dest, text, mode=mode)


@contextlib.contextmanager
def atomic_directory(dest: str | Path) -> Iterator[Path]:
    """Build a directory in a temporary sibling and swap it into place on success.

    If ``dest`` exists it is replaced only after the new one is complete; on failure the
    temporary directory is removed and ``dest`` is left exactly as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Path | None = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        if old is not None:
            os.replace(old, dest)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def locked_append(path: str | Path) -> Iterator[int]:
    """Yield an ``O_APPEND`` descriptor of ``path`` (created if missing, with its folder)
    under an exclusive ``flock``: readers and appenders in other threads or processes that
    lock it too wait until the block ends."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    created = not p.exists()
    fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if created:
            # Make the new directory entry durable too.
            dfd = os.open(p.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def append_line(fd: int, line: bytes) -> None:
    """Append ``line`` (with its newline) to a descriptor from :func:`locked_append` in one
    ``write`` and ``fsync`` it; on any failure cut the file back to its previous size, so
    it never ends with half a line."""
    size = os.fstat(fd).st_size
    try:
        written = os.write(fd, line)
        if written != len(line):
            raise OSError(f"short write ({written} of {len(line)} bytes)")
        os.fsync(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
            os.fsync(fd)
        raise


def read_model(
    path: str | Path, model: type[_M], *, what: str, error: type[PharmaFLError], fix: str
) -> _M:
    """Read a JSON document as ``model``; a missing or invalid file raises ``error`` naming
    the file, the first invalid field and ``fix``."""
    p = Path(path)
    try:
        return model.model_validate_json(p.read_bytes())
    except FileNotFoundError:
        raise error(f"{what} not found.", file=p) from None
    except ValidationError as exc:
        raise error(f"{what} is invalid at {validation_summary(exc)}.", file=p, fix=fix) from None


__all__ = [
    "append_line",
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_json",
    "locked_append",
    "read_model",
    "sha256_bytes",
    "sha256_file",
]
