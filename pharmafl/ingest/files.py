"""Opening export files: compression, text encoding and delimiter, with clear errors.

Exports come from Excel, ELNs and database dumps: ``;``-separated, Windows-1252, gzipped,
sometimes cut short by an interrupted copy. Everything here is what is *safe* to decide
without the user: a byte-order mark settles the encoding; a header line that holds no
default delimiter but exactly one other candidate settles the delimiter (a one-column table
is never a valid source). Anything else is left to the partner config (``delimiter``,
``encoding``, ``decimal``) and an error that names the setting to use.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import io
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pharmafl.common.errors import IngestError

logger = logging.getLogger(__name__)

#: Delimiters tried when sniffing a header, in order of preference.
CANDIDATE_DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_GZIP_MAGIC = b"\x1f\x8b"
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_HEAD_BYTES = 1 << 16
_AGAIN = "copy or export the file again (and check it is complete)."


def delimiter_name(sep: str) -> str:
    """``';'`` → ``"';' (semicolon)"``, for messages."""
    names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
    shown = "\\t" if sep == "\t" else sep
    return f"'{shown}' ({names[sep]})" if sep in names else repr(sep)


def is_compressed(path: Path) -> bool:
    """True for gzip-compressed names (``*.gz``)."""
    return path.name.lower().endswith(".gz")


def read_error(exc: BaseException, *, display: str) -> IngestError:
    """The :class:`IngestError` for an exception raised while reading a file's bytes."""
    if isinstance(exc, EOFError):
        return IngestError(
            "file is truncated: its compressed data end before the end-of-stream marker "
            "(an interrupted copy or download?).",
            file=display,
            fix=_AGAIN,
        )
    if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        return IngestError(
            f"file is corrupt: its gzip data cannot be decompressed ({exc}).",
            file=display,
            fix=_AGAIN,
        )
    if isinstance(exc, PermissionError):
        return IngestError(
            "cannot read the file: permission denied.",
            file=display,
            fix="give the user running pharmafl read access to it.",
        )
    if isinstance(exc, IsADirectoryError):
        return IngestError(
            "is a folder, not a file.", file=display, fix="point the config at the file."
        )
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return IngestError(f"cannot read the file ({reason}).", file=display, fix=_AGAIN)


def check_readable(path: Path, *, display: str) -> None:
    """Raise if ``path`` is missing, empty, or named ``.gz`` without being gzip."""
    if not path.exists():
        raise IngestError(
            "file not found.",
            file=display,
            fix="check the path in the partner config (relative to the partner folder).",
        )
    if path.is_dir():
        raise read_error(IsADirectoryError(), display=display)
    if path.stat().st_size == 0:
        raise IngestError("file is empty.", file=display, fix="export the data again.")
    if is_compressed(path):
        try:
            with open(path, "rb") as fh:
                magic = fh.read(2)
        except OSError as exc:
            raise read_error(exc, display=display) from None
        if magic != _GZIP_MAGIC:
            raise IngestError(
                "the file name ends in .gz but the file is not gzip-compressed.",
                file=display,
                fix="rename it without .gz, or compress it again with gzip.",
            )


@contextlib.contextmanager
def open_bytes(path: Path, *, display: str) -> Iterator[BinaryIO]:
    """Open ``path`` for reading bytes, decompressing ``*.gz`` on the fly.

    Read errors raised inside the block (truncated or corrupt gzip, permissions) become
    :class:`IngestError` naming ``display``.
    """
    check_readable(path, display=display)
    try:
        with gzip.open(path, "rb") if is_compressed(path) else open(path, "rb") as fh:
            yield fh  # type: ignore[misc]
    except (OSError, EOFError, zlib.error) as exc:
        raise read_error(exc, display=display) from None


def read_head(path: Path, *, display: str, size: int = _HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the (decompressed) file."""
    with open_bytes(path, display=display) as fh:
        return fh.read(size)


def sniff_encoding(head: bytes) -> str | None:
    """The encoding a byte-order mark announces, or None without one."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return None


_WORKBOOKS = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # xlsx (zip), xls (OLE)


def text_encoding(path: Path, encoding: str | None, *, display: str) -> str:
    """The encoding to read with: the configured one, else a BOM's, else UTF-8.

    Raises
    ------
    IngestError
        If the file is an Excel workbook (or another zip/OLE file), not text.
    """
    head = read_head(path, display=display, size=8)
    if head.startswith(_WORKBOOKS):
        raise IngestError(
            "the file is an Excel workbook (or another zip/OLE file), not text.",
            file=display,
            fix="save the sheet as CSV (File > Save As > CSV UTF-8) and point the partner "
            "config at that file.",
        )
    if encoding is not None:
        return encoding
    return sniff_encoding(head) or "utf-8-sig"


def guess_legacy_encoding(data: bytes) -> str:
    """``cp1252`` when bytes 0x80–0x9F occur (Windows/Excel text), else ``latin-1``."""
    return "cp1252" if any(0x80 <= b <= 0x9F for b in data) else "latin-1"


def _first_bad_line(path: Path, encoding: str, *, display: str) -> tuple[int, bytes]:
    decoder = codecs.getincrementaldecoder(encoding)()
    with open_bytes(path, display=display) as fh:
        for number, line in enumerate(fh, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError:
                return number, line
    return 0, b""


def decode_error(path: Path, encoding: str, *, display: str) -> IngestError:
    """The :class:`IngestError` for a file that does not decode as ``encoding``."""
    line, data = _first_bad_line(path, encoding, display=display)
    where = f" (first bad byte on line {line})" if line else ""
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        return IngestError(
            f"file is not {encoding} text{where}.",
            file=display,
            fix="set encoding to the file's real encoding for this source in the partner "
            "config, or export the file as UTF-8.",
        )
    legacy = guess_legacy_encoding(data)
    return IngestError(
        f"file is not UTF-8 text{where}; it looks like {legacy} (e.g. an Excel export).",
        file=display,
        fix=f'set encoding = "{legacy}" for this source in the partner config, or export '
        "the file as UTF-8.",
    )


def read_text(path: Path, encoding: str | None, *, display: str) -> str:
    """The whole (decompressed, decoded) text of ``path``."""
    enc = text_encoding(path, encoding, display=display)
    with open_bytes(path, display=display) as fh:
        raw = fh.read()
    try:
        return raw.decode(enc)
    except UnicodeDecodeError:
        raise decode_error(path, enc, display=display) from None


def header_line(path: Path, encoding: str, *, display: str) -> str:
    """The file's first line, decoded (undecodable bytes replaced)."""
    head = read_head(path, display=display)
    text = head.decode(encoding, errors="replace")
    return text.splitlines()[0] if text else ""


def choose_delimiter(header: str, default: str, configured: str | None) -> str:
    """The delimiter to read with: the configured one, else the format's default, else the
    one other candidate the header holds when it holds no default delimiter."""
    if configured is not None:
        return configured
    if default in header:
        return default
    found = [d for d in CANDIDATE_DELIMITERS if d != default and d in header]
    return found[0] if len(found) == 1 else default


def delimiter_hint(header: str, used: str, missing: list[str]) -> str | None:
    """Another delimiter under which the header has the ``missing`` columns, if any."""
    for cand in CANDIDATE_DELIMITERS:
        if cand == used or cand not in header:
            continue
        fields = {f.strip().strip('"') for f in header.split(cand)}
        if all(m in fields for m in missing):
            return cand
    return None


@contextlib.contextmanager
def open_text(path: Path, encoding: str, *, display: str) -> Iterator[io.TextIOWrapper]:
    """Open ``path`` as text; a decoding error inside the block names the first bad line."""
    try:
        with (
            open_bytes(path, display=display) as raw,
            io.TextIOWrapper(raw, encoding=encoding, newline="") as text,
        ):
            yield text
    except UnicodeDecodeError:
        raise decode_error(path, encoding, display=display) from None


__all__ = [
    "CANDIDATE_DELIMITERS",
    "check_readable",
    "choose_delimiter",
    "decode_error",
    "delimiter_hint",
    "delimiter_name",
    "guess_legacy_encoding",
    "header_line",
    "is_compressed",
    "open_bytes",
    "open_text",
    "read_error",
    "read_head",
    "read_text",
    "sniff_encoding",
    "text_encoding",
]
