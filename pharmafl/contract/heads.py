"""The operator's ledger head, as every signed round spec commits to it.

The operator signs every ledger entry itself, so the hash chain alone cannot show entries
cut from its end, nor a chain the operator rebuilt without some entries and signed again.
Only someone who kept an earlier head can. So every round spec the operator signs carries
its ledger's current head (:class:`LedgerHead`: the number of entries and the hash of the
last one); each partner records it (``PARTNER_DIR/ledger_heads.jsonl``, one
:class:`LedgerHeadRecord` a line), refuses a spec whose head contradicts one it recorded
(:func:`head_contradiction`) and can check the ledger against its records at any time
(``pharmafl ledger verify LEDGER --heads ...``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from pharmafl.common.errors import LedgerError, validation_summary
from pharmafl.contract.runs import RUN_ID_PATTERN

if TYPE_CHECKING:
    from pharmafl.contract.spec import TrainSpec

_HEX64 = r"^[0-9a-f]{64}$"
#: The head hash of an empty ledger (``pharmafl.ledger.GENESIS_HASH``).
EMPTY_LEDGER_HASH = "0" * 64


class LedgerHead(BaseModel):
    """Where the operator's ledger stood when the operator signed a round spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entries: int = Field(ge=0, description="Number of entries; the head is entry entries - 1.")
    head_hash: str = Field(
        pattern=_HEX64,
        description="entry_hash of entry entries - 1 (64 zeros for an empty ledger).",
    )

    @model_validator(mode="after")
    def _empty_iff_genesis(self) -> LedgerHead:
        if (self.entries == 0) != (self.head_hash == EMPTY_LEDGER_HASH):
            raise ValueError("an empty ledger's head hash is 64 zeros, and only its")
        return self

    def describe(self) -> str:
        """E.g. ``entry 11 (hash 3f2a9c0d1e4b…)``."""
        if self.entries == 0:
            return "an empty ledger"
        return f"entry {self.entries - 1} (hash {self.head_hash[:12]}…)"


class LedgerHeadRecord(BaseModel):
    """One line of a partner's ``ledger_heads.jsonl``: the head one signed spec showed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str = Field(pattern=RUN_ID_PATTERN, description="Run of the spec.")
    round_id: str = Field(min_length=1, max_length=200, description="Round id of the spec.")
    round_index: int = Field(ge=0, description="Round of the spec.")
    attempt: int = Field(ge=0, description="Attempt of the spec's round.")
    final: bool = Field(description="Whether the spec is the run's final evaluation.")
    head: LedgerHead = Field(description="The operator's ledger head the spec carried.")
    recorded_at: AwareDatetime = Field(description="When the partner recorded it (UTC).")

    @classmethod
    def of(cls, spec: TrainSpec, recorded_at: datetime | None = None) -> LedgerHeadRecord:
        """The record of ``spec``'s ledger head (recorded now unless ``recorded_at``)."""
        return cls(
            run_id=spec.run_id,
            round_id=spec.round_id,
            round_index=spec.round_index,
            attempt=spec.attempt,
            final=spec.final,
            head=spec.ledger_head,
            recorded_at=recorded_at or datetime.now(UTC),
        )

    @property
    def order(self) -> tuple[int, bool, int]:
        """Publication order within its run: the operator publishes a run's rounds, their
        attempts and then the final evaluation one after another, recording each."""
        return self.round_index, self.final, self.attempt

    def line(self) -> bytes:
        """The JSON line (with newline) as the partner appends it."""
        return self.model_dump_json().encode() + b"\n"


def head_contradiction(recorded: Iterable[LedgerHeadRecord], new: LedgerHeadRecord) -> str | None:
    """Why ``new`` cannot come from the same append-only ledger as ``recorded``, or None.

    Two heads contradict when they name the same entry with different hashes (the ledger
    was rewritten), or when a spec of one run published later (a later round, attempt, or
    the final evaluation) shows no more entries than an earlier spec of that run (the ledger
    was rolled back, or the operator keeps showing an old head to delete what follows it).
    Specs of different runs are not compared by size: a contribution study trains coalitions
    in parallel, and a partner may fetch their specs in any order; nor is a run's earlier
    spec that a partner fetches late.
    """
    for old in recorded:
        if old.head.entries == new.head.entries and old.head.head_hash != new.head.head_hash:
            return (
                f"the spec of round {new.round_id} shows the operator's ledger at "
                f"{new.head.describe()}, but the spec of round {old.round_id} showed "
                f"{old.head.describe()}: the operator rewrote its ledger"
            )
        # Between two specs of a run the operator always appends entries (round_started,
        # then the round's outcome), so a later spec shows strictly more; only repeated final
        # evaluations (a crash during the final phase) may show the same head.
        later = new.order > old.order
        both_final = new.final and old.final
        rolled_back = old.run_id == new.run_id and (
            (later and not both_final and new.head.entries <= old.head.entries)
            or (new.order >= old.order and new.head.entries < old.head.entries)
        )
        if rolled_back:
            return (
                f"the spec of round {new.round_id} shows a ledger of {new.head.entries} "
                f"entries, no more than the {old.head.entries} the earlier spec of round "
                f"{old.round_id} showed: the operator rolled its ledger back"
            )
    return None


def parse_ledger_heads(data: bytes, path: str | Path) -> list[LedgerHeadRecord]:
    """The records in the bytes of a ``ledger_heads.jsonl``; an incomplete last line (a
    crash while appending it) never became a record and is skipped.

    Raises
    ------
    LedgerError
        A complete line is not a head record (naming the file and line).
    """
    lines = data.split(b"\n")[:-1]  # the part after the last newline is incomplete
    out = []
    for row, raw in enumerate(lines, start=1):
        try:
            out.append(LedgerHeadRecord.model_validate_json(raw))
        except ValidationError as exc:
            raise LedgerError(
                f"not a ledger head record ({validation_summary(exc)}).",
                file=path,
                row=row,
                fix="pass the partner's own ledger_heads.jsonl, as its partner rounds wrote it.",
            ) from None
    return out


def read_ledger_heads(path: str | Path) -> list[LedgerHeadRecord]:
    """Read a partner's ``ledger_heads.jsonl`` (see :func:`parse_ledger_heads`).

    Raises
    ------
    LedgerError
        The file is missing, or a line is not a head record.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise LedgerError(
            "ledger heads file not found.",
            file=path,
            fix="pass PARTNER_DIR/ledger_heads.jsonl (written by the partner's rounds).",
        ) from None
    return parse_ledger_heads(data, path)


__all__ = [
    "EMPTY_LEDGER_HASH",
    "LedgerHead",
    "LedgerHeadRecord",
    "head_contradiction",
    "parse_ledger_heads",
    "read_ledger_heads",
]
