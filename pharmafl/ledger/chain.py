"""The append-only ledger file: one canonical JSON entry per line, hash-chained and signed.

Appending takes an exclusive ``flock`` on the file, reads the last complete entry, writes the
whole new line with one ``write`` on an ``O_APPEND`` descriptor and ``fsync``s it. A failed
write is cut back to the previous size; a crash mid-write can at worst leave an incomplete last
line, which :func:`~pharmafl.ledger.verify_ledger` reports as ``truncated`` and
:meth:`Ledger.append` refuses to build on (see :meth:`Ledger.recover`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from pharmafl.common import crypto
from pharmafl.common.errors import LedgerError, SecureAggregationError
from pharmafl.common.io import append_line, locked_append
from pharmafl.ledger.entry import _UNSIGNED, GENESIS_HASH, LedgerEntry, payload_digest
from pharmafl.ledger.events import LedgerEvent, parse_event, validate_payload
from pharmafl.secure.identity import Identity, Roster

logger = logging.getLogger(__name__)

#: Default file name of a consortium ledger.
LEDGER_FILENAME = "ledger.jsonl"
_TAIL_CHUNK = 64 * 1024


def _parse_line(raw: bytes, path: Path, lineno: int | None) -> LedgerEntry:
    try:
        return LedgerEntry.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "line"
        raise LedgerError(
            f"not a valid ledger entry ({where}: {first['msg']}).",
            file=path,
            row=lineno,
            fix="run `pharmafl ledger verify` to locate the damage.",
        ) from None


def read_entries(path: str | Path) -> list[LedgerEntry]:
    """Parse every entry of a ledger file (no chain or signature checks; see verify_ledger).

    Raises
    ------
    LedgerError
        If the file is missing, a line is not a valid entry, or the last line is incomplete.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise LedgerError("ledger file not found.", file=p) from None
    if data and not data.endswith(b"\n"):
        raise LedgerError(
            "the last line is incomplete (a crash during append?).",
            file=p,
            row=data.count(b"\n") + 1,
            fix="run `pharmafl ledger verify`; Ledger.recover() drops the incomplete line.",
        )
    return [_parse_line(raw, p, i + 1) for i, raw in enumerate(data.splitlines())]


def _public_key_hex(signing_key: Identity | bytes) -> str:
    if isinstance(signing_key, Identity):
        return signing_key.public.public_key
    return crypto.ed25519_public_key(bytes(signing_key)).hex()


def _sign(signing_key: Identity | bytes, message: bytes) -> bytes:
    if isinstance(signing_key, Identity):
        return signing_key.sign(message)
    return crypto.ed25519_sign(bytes(signing_key), message)


class Ledger:
    """An append-only, hash-chained, signed event log in one JSONL file.

    Parameters
    ----------
    path
        The ledger file (created on the first append), conventionally ``ledger.jsonl``.
    roster
        Optional verified roster. When given, :meth:`append` refuses actors that are not in
        it and signing keys that do not match the actor's roster key.

    Examples
    --------
    >>> ledger = Ledger(consortium_dir / "ledger.jsonl", roster=roster)  # doctest: +SKIP
    >>> ledger.append("operator", operator_identity, "round_started",
    ...               {"round": 0, "global_trunk_hash": h, "participants": ["a", "b"]})
    """

    def __init__(self, path: str | Path, *, roster: Roster | None = None) -> None:
        self.path = Path(path)
        self.roster = roster

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def _tail(self, fd: int) -> tuple[int, str]:
        """(next index, hash of the last entry) of the locked file."""
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, GENESIS_HASH
        if os.pread(fd, 1, size - 1) != b"\n":
            raise LedgerError(
                "the ledger ends with an incomplete line (a crash during append?); refusing to "
                "append after it.",
                file=self.path,
                fix="check it with `pharmafl ledger verify`, then call Ledger.recover() to drop "
                "the incomplete line.",
            )
        end = size - 1  # the final newline
        start = end
        while start > 0:
            step = min(_TAIL_CHUNK, start)
            block = os.pread(fd, step, start - step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                start = start - step + newline + 1
                break
            start -= step
        last_raw = os.pread(fd, end - start, start)
        last = _parse_line(last_raw, self.path, None)
        return last.index + 1, last.entry_hash()

    def head(self) -> tuple[int, str]:
        """Return ``(number of entries, hash of the last entry)`` (genesis hash when empty)."""
        if not self.path.exists():
            return 0, GENESIS_HASH
        with locked_append(self.path) as fd:
            return self._tail(fd)

    def append(
        self,
        actor_id: str,
        signing_key: Identity | bytes,
        event: LedgerEvent | str,
        payload: BaseModel | Mapping[str, Any] | None = None,
        *,
        timestamp: datetime | None = None,
    ) -> LedgerEntry:
        """Sign and append one entry; return it once it is durably on disk.

        Parameters
        ----------
        actor_id
            Roster id of the party recording the event.
        signing_key
            The actor's :class:`~pharmafl.secure.identity.Identity` (preferred) or raw 32-byte
            Ed25519 private key.
        event
            A :class:`LedgerEvent` or its value, e.g. ``"aggregate_applied"``.
        payload
            The event's payload model (see :data:`~pharmafl.ledger.events.PAYLOAD_MODELS`) or
            an equivalent mapping; validated before anything is written.
        timestamp
            Defaults to now (UTC).

        Raises
        ------
        LedgerError
            Unknown event, invalid payload, an actor that does not match its key or the
            roster, or a ledger whose last line is incomplete.
        """
        ev = parse_event(event)
        doc = validate_payload(ev, dict(payload) if isinstance(payload, Mapping) else payload)
        public_hex = _public_key_hex(signing_key)
        if isinstance(signing_key, Identity) and signing_key.id != actor_id:
            raise LedgerError(
                f"actor {actor_id!r} does not match the signing identity {signing_key.id!r}.",
                fix="sign with the actor's own identity.",
            )
        if self.roster is not None:
            try:
                member = self.roster.member(actor_id)
            except SecureAggregationError:
                raise LedgerError(
                    f"actor {actor_id!r} is not in the roster of {self.roster.consortium!r}.",
                    file=self.path,
                    fix="add the party to the roster (pharmafl keys roster) first.",
                ) from None
            if member.public_key != public_hex:
                raise LedgerError(
                    f"the signing key is not the roster key of {actor_id!r}.",
                    file=self.path,
                    fix="load the actor's key file (pharmafl keys generate wrote it).",
                )
        ts = datetime.now(UTC) if timestamp is None else timestamp
        with locked_append(self.path) as fd:
            index, prev = self._tail(fd)
            unsigned = LedgerEntry(
                index=index,
                prev_hash=prev,
                timestamp=ts,
                actor=actor_id,
                event=ev,
                payload=doc,
                payload_digest=payload_digest(doc),
                signature=_UNSIGNED,
            )
            signature = _sign(signing_key, unsigned.signed_bytes()).hex()
            entry = unsigned.model_copy(update={"signature": signature})
            append_line(fd, entry.line() + b"\n")  # never half a line: cut back on failure
        logger.debug("ledger %s: appended #%d %s by %s", self.path, index, ev.value, actor_id)
        return entry

    def entries(self) -> list[LedgerEntry]:
        """All entries (parsed, not verified); see :func:`read_entries`."""
        return read_entries(self.path)

    def recover(self) -> int:
        """Drop an incomplete last line left by a crash during append; return bytes dropped.

        Only bytes after the last newline are removed: they never formed a complete entry,
        so no recorded event is lost. Run :func:`~pharmafl.ledger.verify_ledger` afterwards.
        """
        if not self.path.exists():
            return 0
        with locked_append(self.path) as fd:
            size = os.fstat(fd).st_size
            data = os.pread(fd, size, 0)
            keep = data.rfind(b"\n") + 1
            if keep == size:
                return 0
            os.ftruncate(fd, keep)
            os.fsync(fd)
        logger.warning(
            "ledger %s: dropped an incomplete last line (%d bytes)", self.path, size - keep
        )
        return size - keep


__all__ = ["LEDGER_FILENAME", "Ledger", "read_entries"]
