"""One aggregate per local state: what a partner records before it reveals its shares.

A partner's round update depends only on the state it trains from (its committed head, the
global trunk and the seed), not on the round number or attempt. After it revealed its
shares in a round, the operator may hold an aggregate with that update; if the partner ever
trained from the same committed state again (a retried attempt, a round number skipped so
that nothing is committed, two attempts run at once, the same round id in another store) and
revealed again, two aggregates of nearly the same partners would difference into one
partner's update. So each committed state of a run is revealed from at most once:

- :meth:`RevealRecord.exclusive` holds the run for one round at a time;
- :meth:`RevealRecord.refuse` checks, once the state is loaded and before the masked update
  leaves, that the state (the hash of the committed head the trainer loaded) was never
  revealed from;
- :meth:`RevealRecord.claim` (right before revealing, under an exclusive lock) checks again
  and durably records it (written and fsynced before the shares leave).

Honest operators never need a second aggregate: they keep the one they decoded
(:func:`pharmafl.server.runs.save_aggregate`).

Across runs, :class:`StartRecord` keeps, for every global trunk a partner revealed an update
from, the contributors of that aggregate. Two runs from the same trunk (a contribution
study's coalitions S and S ∖ {i}, or a run where the operator let partner i "drop out")
would otherwise give two sums that differ by i's update, computed from the same inputs. A
partner reveals from a trunk again only for the same contributors, or, where the signed
policy declares valuation groups, when both contributor sets are whole groups (the
contribution study: any difference is then a sum over whole groups).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

from pharmafl.common.errors import FederationError
from pharmafl.common.io import sha256_bytes
from pharmafl.contract import TrainSpec
from pharmafl.secure import SecurityPolicy

REVEALED_FILE = "revealed.json"
#: The key of a fresh head (no committed state): what round 0 trains from.
FRESH_STATE = "fresh"


def state_key(committed: bytes) -> str:
    """The key of a committed state: the SHA-256 of the bytes the trainer loaded."""
    return sha256_bytes(committed)


class RevealRecord:
    """``<run dir>/revealed.json``: state key (the hash of the committed head a round's
    update was trained from, :data:`FRESH_STATE` for none) → the round id whose shares were
    revealed from it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / REVEALED_FILE
        self.lock = run_dir / "revealed.lock"  # not hidden: it is no partial file
        self.run_lock = run_dir / "run.lock"

    @contextlib.contextmanager
    def exclusive(self, spec: TrainSpec) -> Iterator[None]:
        """Hold the run for one round or final evaluation; refuse a second one at once (two
        rounds in flight could load a state before the other replaced it)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FederationError(
                    f"another round of run {spec.run_id!r} is in progress at this partner; "
                    f"{spec.round_id} is refused.",
                    fix="the operator runs one round of a run at a time.",
                ) from None
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, str]:
        if not self.path.is_file():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except ValueError:
            raise FederationError(
                "the record of revealed rounds is unreadable; refusing every round of this run.",
                file=self.path,
                fix="start a new run (a new run id); never delete or edit this file.",
            ) from None
        return {str(k): str(v) for k, v in doc.items()}

    def refuse(self, key: str, spec: TrainSpec) -> None:
        """Raise when the state a round trains from was revealed from before."""
        earlier = self._read().get(key)
        if earlier is not None:
            raise FederationError(
                f"round {spec.round_index} ({spec.round_id}) of run {spec.run_id!r} would "
                f"train from a state already aggregated with this partner's update (round "
                f"{earlier}); it never contributes an update from one state to two aggregates.",
                fix="the operator resumes from the aggregate it kept, or starts a new run "
                "(a new run id).",
            )

    def claim(self, key: str, spec: TrainSpec) -> None:
        """Record, durably and atomically with the check, that ``key`` is revealed from."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.refuse(key, spec)
            doc = self._read() | {key: spec.round_id}
            _durable_write(self.path, json.dumps(doc, sort_keys=True).encode() + b"\n")
        finally:
            os.close(fd)


class StartRecord:
    """``<partner>/aggregated_starts.json``: global trunk SHA-256 → every aggregate this
    partner revealed an update from that trunk for: its contributors and round id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = path.with_suffix(".lock")

    def _read(self) -> dict[str, list[dict[str, object]]]:
        if not self.path.is_file():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            return {str(k): [dict(e) for e in v] for k, v in doc.items()}
        except (ValueError, TypeError, AttributeError):
            raise FederationError(
                "the record of aggregated starting trunks is unreadable; refusing to reveal.",
                file=self.path,
                fix="restore it from a backup; never delete or edit this file.",
            ) from None

    def claim(self, spec: TrainSpec, contributors: tuple[str, ...], policy: SecurityPolicy) -> None:
        """Refuse (before revealing) a second aggregate from ``spec``'s trunk over other
        contributors, unless both are whole valuation groups; else record this one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._read()
            now = sorted(contributors)
            earlier = doc.setdefault(spec.global_trunk_sha256, [])
            for entry in earlier:
                before = [str(p) for p in entry["contributors"]]  # type: ignore[attr-defined]
                if before != now and not _whole_groups(policy, before, now):
                    raise FederationError(
                        f"{spec.round_id} would aggregate this partner's update from global "
                        f"trunk {spec.global_trunk_sha256[:12]}… with contributors {now}, "
                        f"already aggregated with {before} ({entry['round_id']}): the two "
                        "sums would difference into the updates of the partners in one and "
                        "not the other.",
                        fix="start every run from its own initial trunk (`pharmafl federation "
                        "init-trunk` with a new seed); a contribution study needs valuation "
                        "groups in the signed policy (`pharmafl keys roster --valuation-group`).",
                    )
            if all(e["contributors"] != now for e in earlier):
                earlier.append({"contributors": now, "round_id": spec.round_id})
                _durable_write(self.path, json.dumps(doc, sort_keys=True).encode() + b"\n")
        finally:
            os.close(fd)


def _whole_groups(policy: SecurityPolicy, *sets: list[str]) -> bool:
    """Whether the policy declares valuation groups and every set is a union of them."""
    return policy.valuation_groups is not None and not any(
        policy.groups_violation(s, "contributors") for s in sets
    )


def _durable_write(path: Path, data: bytes) -> None:
    """Write to a temporary file, fsync it, rename it into place and fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


__all__ = ["FRESH_STATE", "REVEALED_FILE", "RevealRecord", "StartRecord", "state_key"]
