"""One ledger entry: a signed, hash-chained record of one event.

The entry's *header* is every field except the signature and the payload; the payload is
bound to it through ``payload_digest``. The actor signs ``DOMAIN || canonical_json(header)``
with its Ed25519 key, and the entry hash (which the next entry stores as ``prev_hash``) is the
SHA-256 of those same bytes. Because the chain hash leaves the signature out, a changed entry
and a replaced signature are told apart: the first breaks the chain, the second only the
signature (the hash-chained audit log of Schneier & Kelsey, "Secure audit logs to support
computer forensics", ACM TISSEC 2(2), 1999, with public-key signatures per entry).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from pharmafl.common.io import canonical_json, sha256_bytes
from pharmafl.ledger.events import DEFAULT_RUN_ID, HEX64, LedgerEvent
from pharmafl.secure.identity import PARTY_ID_PATTERN

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64
#: Domain separation for ledger signatures and hashes (never valid as another document).
LEDGER_DOMAIN = b"pharmafl/ledger/v1\n"
#: Signature placeholder while an entry is being built.
_UNSIGNED = "0" * 128


def payload_digest(payload: dict[str, JsonValue]) -> str:
    """SHA-256 (hex) of the canonical JSON of a payload."""
    return sha256_bytes(canonical_json(payload))


class LedgerEntry(BaseModel):
    """One line of ``ledger.jsonl``.

    Written by :meth:`pharmafl.ledger.Ledger.append`; checked by
    :func:`pharmafl.ledger.verify_ledger`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = Field(1, description="Entry format version.")
    index: int = Field(ge=0, description="Position in the ledger, 0-based, no gaps.")
    prev_hash: str = Field(
        pattern=HEX64, description="entry_hash of the previous entry; 64 zeros for the first."
    )
    timestamp: AwareDatetime = Field(description="When the actor appended it (UTC).")
    actor: str = Field(pattern=PARTY_ID_PATTERN, description="Roster id of the signer.")
    event: LedgerEvent = Field(description="Event type.")
    payload: dict[str, JsonValue] = Field(description="Non-private facts (see ledger.events).")
    payload_digest: str = Field(pattern=HEX64, description="SHA-256 of canonical JSON payload.")
    signature: str = Field(
        pattern=r"^[0-9a-f]{128}$",
        description="Actor's Ed25519 signature of the header (all fields but signature, payload).",
    )

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def header(self) -> dict[str, JsonValue]:
        """The signed fields as JSON (everything but ``signature`` and ``payload``)."""
        doc: dict[str, JsonValue] = self.model_dump(mode="json", exclude={"signature", "payload"})
        return doc

    def signed_bytes(self) -> bytes:
        """The exact bytes the actor signs."""
        return LEDGER_DOMAIN + canonical_json(self.header())

    def entry_hash(self) -> str:
        """SHA-256 (hex) of :meth:`signed_bytes`: what the next entry stores as ``prev_hash``."""
        return sha256_bytes(self.signed_bytes())

    def line(self) -> bytes:
        """The canonical JSON line (without newline) as stored in the file."""
        return canonical_json(self.model_dump(mode="json"))


def run_entries(entries: Sequence[LedgerEntry], run_id: str) -> Iterator[LedgerEntry]:
    """The entries of one training run, in ledger order (an entry without a run id belongs
    to the main run)."""
    return (e for e in entries if e.payload.get("run_id", DEFAULT_RUN_ID) == run_id)


__all__ = ["GENESIS_HASH", "LEDGER_DOMAIN", "LedgerEntry", "payload_digest", "run_entries"]
