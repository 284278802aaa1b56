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
partner reveals from a trunk again only in the same run for the same contributors (a
resumed round), or, where the signed policy declares valuation groups, when both
contributor sets are whole groups (the contribution study: any difference is then a sum over
whole groups). Trunks are keyed by the SHA-256 of their one canonical encoding
(:func:`pharmafl.contract.trunk_from_bytes` refuses any other), and a round 0 must start
from the initial trunk of the run's own seed (:func:`pharmafl.partner.federated.
check_initial_trunk`), so a second run cannot start from a copy of another run's trunk,
re-encoded or nudged.
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
                fix="start a new run (a new run id and seed); never delete or edit this file.",
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
                "(a new run id and seed).",
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


#: Format tag of ``aggregated_starts.json``.
STARTS_FORMAT = "pharmafl.aggregated_starts/2"


class StartRecord:
    """``<partner>/aggregated_starts.json``: global trunk SHA-256 → every aggregate this
    partner revealed an update from that trunk for: its run, contributors and round id.

    The record is created empty when the partner pins its roster (:meth:`create`, bound to
    the partner's identity) and must exist from then on: a partner whose record was lost (a
    wiped volume) would otherwise reveal again from trunks it already revealed from, which
    is exactly what differencing needs. It is refused when missing or when it belongs to
    another identity."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = path.with_suffix(".lock")

    def create(self, identity_fingerprint: str) -> None:
        """Write an empty record for this identity, unless one exists (never reset)."""
        if self.path.exists():
            self.check(identity_fingerprint)
            return
        doc = {"format": STARTS_FORMAT, "identity": identity_fingerprint, "starts": {}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _durable_write(self.path, json.dumps(doc, sort_keys=True).encode() + b"\n")

    def check(self, identity_fingerprint: str) -> None:
        """Refuse a missing record, or one of another identity.

        Raises
        ------
        FederationError
            With the fix: restore it, or join again under a new identity.
        """
        self._owned_doc(identity_fingerprint)

    def _owned_doc(self, identity_fingerprint: str) -> dict[str, object]:
        """The record, refused when missing, unreadable or another identity's."""
        doc = self._doc()
        if doc.get("identity") != identity_fingerprint:
            raise FederationError(
                "the record of aggregated starting trunks belongs to another identity; "
                "refusing to take part.",
                file=self.path,
                fix="restore this partner's own record from its backup.",
            )
        return doc

    def _doc(self) -> dict[str, object]:
        if not self.path.is_file():
            raise FederationError(
                "the record of aggregated starting trunks is missing: this partner cannot "
                "tell which trunks it already revealed updates from; refusing to take part.",
                file=self.path,
                fix="restore it from a backup (keep it on persistent storage, beside the "
                "identity); if it is lost, join again under a new identity "
                "(pharmafl consortium join) and have the operator re-sign the roster.",
            )
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != STARTS_FORMAT or not isinstance(doc.get("starts"), dict):
                raise ValueError("not a start record")
            return dict(doc)
        except (ValueError, TypeError, AttributeError):
            raise FederationError(
                "the record of aggregated starting trunks is unreadable; refusing to reveal.",
                file=self.path,
                fix="restore it from a backup; never delete or edit this file.",
            ) from None

    def claim(
        self,
        spec: TrainSpec,
        contributors: tuple[str, ...],
        policy: SecurityPolicy,
        identity_fingerprint: str,
    ) -> None:
        """Refuse (before revealing) a second aggregate from ``spec``'s trunk in another run
        or over other contributors, unless both are whole valuation groups; else record
        this one."""
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._owned_doc(identity_fingerprint)
            starts: dict[str, list[dict[str, object]]] = doc["starts"]  # type: ignore[assignment]
            now: dict[str, object] = {"contributors": sorted(contributors), "run_id": spec.run_id}
            earlier = starts.setdefault(spec.global_trunk_sha256, [])
            for entry in earlier:
                _refuse_conflict(spec, entry, now, policy)
            if all({k: e.get(k) for k in now} != now for e in earlier):
                earlier.append({**now, "round_id": spec.round_id})
                _durable_write(self.path, json.dumps(doc, sort_keys=True).encode() + b"\n")
        finally:
            os.close(fd)


def _refuse_conflict(
    spec: TrainSpec, entry: dict[str, object], now: dict[str, object], policy: SecurityPolicy
) -> None:
    before = [str(p) for p in entry["contributors"]]  # type: ignore[attr-defined]
    same = before == now["contributors"] and entry.get("run_id") == now["run_id"]
    if same or _whole_groups(policy, before, [str(p) for p in now["contributors"]]):  # type: ignore[attr-defined]
        return
    raise FederationError(
        f"{spec.round_id} would aggregate this partner's update from global trunk "
        f"{spec.global_trunk_sha256[:12]}… with contributors {now['contributors']} in run "
        f"{now['run_id']!r}, already aggregated with {before} in run {entry.get('run_id')!r} "
        f"({entry['round_id']}): the two sums would difference into the updates of the "
        "partners in one and not the other.",
        fix="start every run from its own initial trunk (a new seed in its plan); a "
        "contribution study needs valuation groups in the signed policy (`pharmafl "
        "consortium roster --valuation-group`).",
    )


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


__all__ = [
    "FRESH_STATE",
    "REVEALED_FILE",
    "STARTS_FORMAT",
    "RevealRecord",
    "StartRecord",
    "state_key",
]
