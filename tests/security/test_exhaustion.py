"""Attack: crash and exhaust the readers (issue 12, finding 10).

(a) A partner signs a round report whose validation score is NaN or infinite, or is not a
    report at all. Before the fix the operator crashed *after* ``aggregate_applied`` was on
    the ledger (the ledger refuses NaN; a malformed report raised a ValidationError), and
    ``--resume`` re-ran the round. Now the report model refuses non-finite scores and the
    operator treats a bad report as "no validation shared" (logged) and finishes the round.
(b) The untrusted store plants a 64 MiB junk file under an envelope name. Before the fix the
    reader read it whole before any check (64 MiB per file, per poll); now the frame size is
    checked before reading (per kind: small JSON kinds have a fixed cap, masked inputs the
    exact size the operator expects), and the read itself is bounded. A named pipe planted
    in the store hung a reader forever; now only regular files are read.
(c) Whoever else writes to the store plants an envelope-named file the reader may not open
    (mode 000, another owner). Since the store retries unreadable files as outages (issue
    17), that one file stalled every reader for the retry window (120 s) and then failed the
    run; now a file that cannot be opened while its folder can be listed is skipped like any
    bad envelope, and only an unreadable folder counts as an outage.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from pharmafl.common.errors import EnvelopeRejectedError, ServiceUnavailableError
from pharmafl.contract import PartnerRoundReport, TrainSpec, TrunkLayout
from pharmafl.secure import (
    Envelope,
    ExchangeStore,
    SecAggClient,
    fetch,
    open_payload,
    publish,
    run_secagg_round,
    seal,
    sealed_recipients,
)
from pharmafl.secure.envelope import MAGIC
from pharmafl.server import LauncherBase

from .conftest import TINY_TRUNK, MiniConsortium

EXAMPLES = 50
JUNK_BYTES = 64 << 20


class ScriptedPartners(LauncherBase):
    """Partners that follow the protocol with a small fixed update (no training), then sign
    a round report: an honest one, or the raw bytes an adversary chose."""

    def __init__(self, c: MiniConsortium, reports: dict[str, bytes]) -> None:
        self.c, self.reports = c, reports
        self._threads: dict[str, threading.Thread] = {}
        self._errors: dict[str, str] = {}

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        if final:  # nothing to evaluate here
            return
        t = threading.Thread(target=self._round, args=(partner, round_id), daemon=True)
        self._threads[partner] = t
        t.start()

    def _round(self, partner: str, round_id: str) -> None:
        try:
            who, store = self.c.partners[partner], self.c.store
            env = fetch(
                store,
                self.c.roster,
                me=partner,
                round_id=round_id,
                kind="train_spec",
                sender="operator",
                timeout_s=10,
                poll_s=0.02,
            )
            spec = TrainSpec.model_validate_json(open_payload(env, who))
            client = SecAggClient(who, self.c.roster, store, round_id)
            update = np.full(TrunkLayout.of(TINY_TRUNK).size, 0.01)
            client.run(update, EXAMPLES, timeout_s=20, poll_s=0.02)
            honest = PartnerRoundReport(
                partner=partner,
                round_index=spec.round_index,
                examples=EXAMPLES,
                validation={"auc_pr": 0.5, "roc_auc": 0.75},
                compute_seconds=0.1,
            )
            payload = self.reports.get(partner, honest.model_dump_json().encode())
            publish(
                store,
                who,
                round_id=round_id,
                kind="partner_report",
                payload=payload,
                recipient="operator",
                seal_to=sealed_recipients(self.c.roster, ("operator",)),
            )
        except Exception as exc:  # a failed partner, as the real launchers report it
            self._errors[partner] = f"{type(exc).__name__}: {exc}"

    def failed(self) -> dict[str, str]:
        return {p: e for p, e in self._errors.items() if not self._threads[p].is_alive()}

    def finish(self, timeout_s: float) -> dict[str, str]:
        for t in self._threads.values():
            t.join(timeout_s)
        self._threads.clear()
        errors, self._errors = self._errors, {}
        return errors


def _report(validation: str) -> bytes:
    doc = f'"partner":"alpha","round_index":0,"examples":{EXAMPLES},"validation":{validation}'
    return ("{" + doc + ',"compute_seconds":0.1}').encode()


@pytest.mark.parametrize(
    "payload",
    [
        _report('{"auc_pr":NaN,"roc_auc":0.7}'),
        _report('{"auc_pr":Infinity}'),
        _report('{"roc_auc":-Infinity}'),
        _report('"not a mapping"'),
        b"\xff not even JSON",
        _report('{"auc_pr":0.9}').replace(b'"alpha"', b'"bravo"'),  # speaks for another
        _report('{"auc_pr":0.9}').replace(b'"round_index":0', b'"round_index":7'),
    ],
    ids=["nan", "inf", "-inf", "wrong-type", "garbage", "other-partner", "other-round"],
)
def test_a_bad_validation_report_never_crashes_the_operator(
    mini_consortium: Callable[..., MiniConsortium],
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
) -> None:
    from pharmafl.ledger import read_entries, verify_ledger
    from pharmafl.server import run_training

    c = mini_consortium(rounds=1)
    with caplog.at_level(logging.WARNING), ScriptedPartners(c, {"alpha": payload}) as launcher:
        result = run_training(c.layout.operator.root, c.url, launcher, poll_s=0.02)

    assert result.rounds == 1 and result.history[0].contributors == ["alpha", "bravo", "charlie"]
    assert sorted(result.history[0].validation) == ["bravo", "charlie"]  # alpha: none shared
    assert result.history[0].mean_validation_auc_pr == pytest.approx(0.5)
    assert "alpha" in caplog.text and "report" in caplog.text
    ledger = c.layout.operator.ledger
    assert verify_ledger(ledger, c.roster).ok
    events = [(e.event.value, e.payload.get("partner")) for e in read_entries(ledger)]
    assert ("evaluation_reported", "alpha") not in events
    assert ("evaluation_reported", "bravo") in events
    assert events[-1][0] == "training_finished"


def test_a_partner_cannot_build_a_non_finite_report() -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValidationError, match="finite"):
            PartnerRoundReport(
                partner="alpha",
                round_index=0,
                examples=1,
                validation={"auc_pr": bad},
                compute_seconds=0.0,
            )


# --- (b) oversize files in the store ------------------------------------------------------


def _plant_junk(folder: Path, sender: str, *, round_id: str, kind: str, recipient: str) -> Path:
    """A 64 MiB file that starts like a real frame (magic, a plausible header) and is junk
    after that. Sparse on disk, so planting it is cheap; reading it is not."""
    nonce = os.urandom(16).hex()
    head = json.dumps(
        {
            "version": 1,
            "round_id": round_id,
            "kind": kind,
            "sender": sender,
            "recipient": recipient,
            "nonce": nonce,
            "headers": {},
            "payload_sha256": "0" * 64,
            "signature": "0" * 128,
        }
    ).encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sender}.{nonce}.env"
    with path.open("wb") as fh:
        fh.write(MAGIC + len(head).to_bytes(4, "big") + head)
        fh.truncate(JUNK_BYTES)
    return path


def _peak_while(work: Callable[[], object]) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = work()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_64_mib_junk_masked_input_is_skipped_unread(tmp_path: Path) -> None:
    rid = "junk-round"
    store = ExchangeStore(tmp_path / "exchange")
    _plant_junk(
        tmp_path / "exchange" / rid / "masked" / "operator",
        "p00",
        round_id=rid,
        kind="masked",
        recipient="operator",
    )
    rng = np.random.default_rng(0)
    updates = {f"p{i:02d}": rng.normal(0, 0.01, 1000) for i in range(4)}
    examples = dict.fromkeys(updates, 10)

    sim, peak = _peak_while(lambda: run_secagg_round(updates, examples, round_id=rid, store=store))

    assert peak < 16 << 20, f"the operator allocated {peak / 2**20:.0f} MiB"
    report = sim.result.report  # type: ignore[attr-defined]
    assert report.survivors == tuple(sorted(updates))  # the round completed
    assert any("limit" in r.reason for r in report.rejections), report.rejections


def test_an_oversize_object_in_a_remote_store_is_refused_unfetched() -> None:
    """In a remote store (fsspec: S3, GCS, memory) an object's size comes with its listing:
    one over its kind's limit is refused on that size, never opened (a GET of a planted
    multi-GiB object would cost the reader the transfer), and the genuine envelope beside it
    is read."""
    import uuid

    from pharmafl.secure import Identity, publish

    store = ExchangeStore(f"memory://exhaustion-{uuid.uuid4().hex}")
    try:
        rid, sender = "junk-round", Identity.generate("p00")
        local = Path(store.root) / rid / "masked" / "operator"
        junk = _plant_junk_bytes(sender.id, round_id=rid, kind="masked", recipient="operator")
        store.fs.pipe_file(f"{local}/{junk[0]}", junk[1])
        publish(store, sender, round_id=rid, kind="masked", recipient="operator", payload=b"x")
        opened: list[str] = []
        real_open = store.fs.open

        def counting_open(path: str, *a: object, **kw: object) -> object:
            opened.append(str(path))
            return real_open(path, *a, **kw)

        store.fs.open = counting_open  # type: ignore[method-assign]
        (env,) = store.list(rid, "masked", "operator", max_payload=1 << 20)
        assert env.payload == b"x"
        assert not any(junk[0] in p for p in opened), opened
    finally:
        store.fs.rm(store.root, recursive=True)


def _plant_junk_bytes(
    sender: str, *, round_id: str, kind: str, recipient: str
) -> tuple[str, bytes]:
    """The name and the 64 MiB content of :func:`_plant_junk`'s file, for a remote store."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = _plant_junk(Path(tmp), sender, round_id=round_id, kind=kind, recipient=recipient)
        return path.name, path.read_bytes()


def test_a_64_mib_junk_spec_is_skipped_unread(
    mini_consortium: Callable[..., MiniConsortium], caplog: pytest.LogCaptureFixture
) -> None:
    c = mini_consortium()
    rid = "train-r0000-a0"
    folder = c.layout.exchange / rid / "train_spec" / "consortium"
    _plant_junk(folder, "operator", round_id=rid, kind="train_spec", recipient="consortium")
    publish(c.store, c.operator, round_id=rid, kind="train_spec", payload=b'{"genuine": 1}')

    def read() -> bytes:
        env = fetch(
            c.store, c.roster, me="alpha", round_id=rid, kind="train_spec", sender="operator"
        )
        return env.payload

    with caplog.at_level(logging.WARNING):
        payload, peak = _peak_while(read)
    assert payload == b'{"genuine": 1}'
    # Refused on its size alone: not even the 4 MiB a small kind may hold was read.
    assert peak < 2 << 20, f"the partner allocated {peak / 2**20:.1f} MiB"
    assert "limit" in caplog.text


def test_a_frame_longer_than_its_limit_is_read_no_further(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    """The read itself is bounded (a file may grow after its size was checked)."""
    c = mini_consortium()
    env = seal(c.operator, round_id="r1", kind="masked", recipient="operator", payload=b"x" * 64)
    stream = io.BytesIO(env.to_bytes() + b"junk" * 1000)
    with pytest.raises(EnvelopeRejectedError, match="over the 64-byte limit"):
        Envelope.read_from(stream, max_payload=64)
    assert stream.tell() < len(env.to_bytes()) + 2  # stopped one byte past the limit
    assert Envelope.read_from(io.BytesIO(env.to_bytes()), max_payload=64) == env


def test_a_named_pipe_in_the_store_does_not_hang_a_reader(
    mini_consortium: Callable[..., MiniConsortium],
) -> None:
    c = mini_consortium()
    rid = "train-r0000-a0"
    folder = c.layout.exchange / rid / "train_spec" / "consortium"
    folder.mkdir(parents=True)
    fifo = folder / f"operator.{'a' * 32}.env"
    os.mkfifo(fifo)
    publish(c.store, c.operator, round_id=rid, kind="train_spec", payload=b"{}")
    got: list[int] = []
    reader = threading.Thread(
        target=lambda: got.append(len(c.store.list(rid, "train_spec", "consortium"))), daemon=True
    )
    reader.start()
    reader.join(5)
    hung = reader.is_alive()
    if hung:  # release the reader blocked in open() (a writer appears, closes: EOF)
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(5)
    assert not hung, "the reader blocked on a named pipe planted in the store"
    assert got == [1]


def test_an_unreadable_planted_file_is_skipped_not_retried(
    mini_consortium: Callable[..., MiniConsortium],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import time

    from pharmafl.secure import store as store_module

    monkeypatch.setenv("PHARMAFL_RETRY_WINDOW_S", "30")
    c = mini_consortium()
    store = ExchangeStore(c.layout.exchange)  # reads the retry window set above
    rid = "train-r0000-a0"
    folder = c.layout.exchange / rid / "train_spec" / "consortium"
    folder.mkdir(parents=True)
    planted = folder / f"operator.{'b' * 32}.env"
    planted.write_bytes(b"unreadable")
    planted.chmod(0)
    if os.geteuid() == 0:  # root opens a mode-000 file: have the kernel's answer given here
        real_open = os.open

        def refuse(path: str, *args: object, **kwargs: object) -> int:
            if os.path.basename(path) == planted.name:
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store_module.os, "open", refuse)
    publish(store, c.operator, round_id=rid, kind="train_spec", payload=b'{"genuine": 1}')

    monkeypatch.setattr(store_module, "PLANTED_GRACE_S", 1.0)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING):
        env = fetch(store, c.roster, me="alpha", round_id=rid, kind="train_spec", sender="operator")
    waited = time.monotonic() - t0
    assert env.payload == b'{"genuine": 1}'
    assert 1.0 <= waited < 4.0, f"the reader waited {waited:.1f} s on the planted file"
    assert re.search(r"permission denied for \d s\) although its folder can", caplog.text)

    # An unreadable folder is still the store at fault: retried, then one clear error.
    monkeypatch.setenv("PHARMAFL_RETRY_WINDOW_S", "1")
    store = ExchangeStore(c.layout.exchange)
    real_ls = store.fs.ls

    def no_listing(path: str, *args: object, **kwargs: object) -> object:
        if path.endswith("/consortium"):
            raise PermissionError(13, "Permission denied", path)
        return real_ls(path, *args, **kwargs)

    monkeypatch.setattr(store.fs, "ls", no_listing)
    with pytest.raises(ServiceUnavailableError):
        store.get(f"{rid}/train_spec/consortium/{planted.name}")


@pytest.mark.parametrize(
    "fault",
    [PermissionError(13, "Permission denied"), OSError(5, "Input/output error")],
    ids=["permission", "io-error"],
)
def test_a_brief_permission_fault_does_not_skip_a_genuine_envelope(
    mini_consortium: Callable[..., MiniConsortium], monkeypatch: pytest.MonkeyPatch, fault: OSError
) -> None:
    """A genuine envelope refused for a moment (an expiring NFS ticket, a chmod sweeping the
    tree, a flaky disk) is retried, not taken for a planted file."""
    import time

    from pharmafl.secure import store as store_module

    c = mini_consortium()
    rid = "train-r0000-a0"
    publish(c.store, c.operator, round_id=rid, kind="train_spec", payload=b'{"genuine": 1}')
    (key,) = c.store.keys(rid, "train_spec", "consortium")
    refuse_until = time.monotonic() + 1.0
    real_open = os.open

    def flapping(path: str, *args: object, **kwargs: object) -> int:
        if path.endswith(".env") and time.monotonic() < refuse_until:
            raise type(fault)(fault.errno, fault.strerror, path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module.os, "open", flapping)
    env = c.store.get(key)
    assert env.payload == b'{"genuine": 1}' and time.monotonic() >= refuse_until
