"""A partner's record of the operator's ledger heads (``PARTNER_DIR/ledger_heads.jsonl``).

Every round spec the operator signs carries its ledger head (``TrainSpec.ledger_head``).
The partner appends it, one :class:`~pharmafl.contract.LedgerHeadRecord` a line, after
checking it against every head it recorded before (:func:`~pharmafl.contract.head_contradiction`):
a spec that shows an entry it saw with another hash, or fewer entries than an earlier spec
of the same run, is refused before the partner does anything else. The file is the
partner's evidence: ``pharmafl ledger verify LEDGER --heads PARTNER_DIR/ledger_heads.jsonl``
fails when the ledger no longer holds every head it recorded.

Partner rounds of several runs may record at once (threads of one worker, or several
workers): each check-and-append holds an exclusive lock on the file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pharmafl.common.errors import FederationError
from pharmafl.common.io import append_line, locked_append
from pharmafl.contract import LedgerHeadRecord, TrainSpec, head_contradiction, parse_ledger_heads
from pharmafl.layout import PartnerLayout

log = logging.getLogger(__name__)

_FIX = (
    "do not take part in this round. Keep ledger_heads.jsonl as evidence, check the "
    "operator's ledger against it (`pharmafl ledger verify LEDGER --roster ROSTER --heads "
    "PARTNER_DIR/ledger_heads.jsonl`) and compare heads with the other partners. Only if the "
    "consortium agreed out of band to start a new ledger, move ledger_heads.jsonl aside."
)


def _read(fd: int, path: Path) -> list[LedgerHeadRecord]:
    """The records of the locked file; an incomplete last line (a crash while appending)
    is cut off first, so the next line starts on a line of its own."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    keep = data.rfind(b"\n") + 1
    if keep != size:
        log.warning("%s: dropped an incomplete last line (%d bytes)", path, size - keep)
        os.ftruncate(fd, keep)
        os.fsync(fd)
    return parse_ledger_heads(data[:keep], path)


def record_ledger_head(partner_dir: str | Path, spec: TrainSpec) -> LedgerHeadRecord:
    """Check the ledger head ``spec`` carries against this partner's records; append it.

    A spec fetched again (same round id, same head) is recorded once. Returns the record.

    Raises
    ------
    FederationError
        The head contradicts a recorded one: the operator rewrote or rolled back its
        ledger. Nothing is written.
    """
    path = PartnerLayout(Path(partner_dir)).ledger_heads
    new = LedgerHeadRecord.of(spec)
    with locked_append(path) as fd:
        recorded = _read(fd, path)
        problem = head_contradiction(recorded, new)
        if problem is not None:
            raise FederationError(problem + "; refusing the round.", file=path, fix=_FIX)
        for old in recorded:
            if old.round_id == new.round_id and old.head == new.head:
                return old
        append_line(fd, new.line())
    log.debug("%s: ledger head %s recorded", spec.round_id, new.head.describe())
    return new


__all__ = ["record_ledger_head"]
