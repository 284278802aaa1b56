"""Faults of a distributed run, injected into real processes (issue 17).

The session's ``fleet`` (``conftest.py``): a real ``prefect server`` and three
``pharmafl partner serve`` processes (each its own pool, worker and folder) on 127.0.0.1. The
faults are injected into one 3-round run (a run costs ~20 s a round in flow-run start-up,
so one run keeps the suite fast), each asserted for its outcome and the time it took, from
the ledger's timestamps and the operator's log, and the ledger verified at the end:

- round 0: a partner's machine dies mid-round (serve, worker and flow run killed): the
  operator knows within ≈ 30 s (its worker's heartbeats stop), not after the stage timeout;
- round 1: the partner is dropped at once, and the exchange store is unreachable for a
  while (ridden out, two log lines); the partner serves again;
- round 2: the operator is killed mid-round; ``--resume`` (while the Prefect server
  restarts) cancels the dead operator's flow run and its partners' round, and the partner
  rejoins.

SIGTERM to ``partner serve`` is its own short test, and so is a run that crashed before it
started (submitted again). Timings hold with the fleet's 120 s
stage timeout: waiting for it once would fail them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

#: How long the exchange store is unreachable in the dead-worker test (the issue's 30 s is
#: measured in the closing note; a shorter one keeps the suite fast).
OUTAGE_S = 8.0


# --- helpers --------------------------------------------------------------------------------


def _entries(cdir: Path, run_id: str) -> list[Any]:
    from pharmafl.common.errors import LedgerError
    from pharmafl.ledger import read_entries

    try:
        entries = read_entries(cdir / "operator" / "ledger.jsonl")
    except (LedgerError, ValueError, OSError):  # a line being appended right now
        return []
    return [e for e in entries if e.payload.get("run_id") == run_id]


def _at(cdir: Path, run_id: str, event: str, round_index: int, nth: int = 0) -> datetime | None:
    """When the ``nth`` ``event`` of ``round_index`` was recorded (None: not yet)."""
    found = [
        e.timestamp
        for e in _entries(cdir, run_id)
        if e.event.value == event and e.payload.get("round") == round_index
    ]
    return found[nth] if len(found) > nth else None


def _wait(what: str, cond: Callable[[], object], timeout_s: float = 240.0) -> float:
    """Wait until ``cond()`` holds; return the monotonic time it did."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic()


def _verified(cdir: Path) -> None:
    from pharmafl.ledger import verify_ledger
    from pharmafl.secure import load_roster

    odir = cdir / "operator"
    check = verify_ledger(odir / "ledger.jsonl", load_roster(odir / "roster.json"))
    assert check.ok and check.signatures_checked, check.message


@contextlib.contextmanager
def _api(url: str) -> Iterator[None]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def _runs(url: str, name_prefix: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    flt = FlowRunFilter(name=FlowRunFilterName(like_=name_prefix))
    with _api(url), get_client(sync_client=True) as client:
        return [
            r for r in client.read_flow_runs(flow_run_filter=flt) if r.name.startswith(name_prefix)
        ]


def _running(url: str, name: str) -> bool:
    return any(r.state is not None and r.state.is_running() for r in _runs(url, name))


def _beating_since(url: str, pool: str, since: datetime) -> bool:
    """Whether a worker of ``pool`` has sent a heartbeat after ``since``."""
    from prefect.client.orchestration import get_client

    with _api(url), get_client(sync_client=True) as client:
        workers = client.read_workers_for_work_pool(pool)
    beats = [w.last_heartbeat_time for w in workers if w.last_heartbeat_time is not None]
    return any(b > since for b in beats)


def _all_started(url: str, prefix: str, n: int) -> bool:
    """Whether ``n`` runs named ``prefix…`` exist and none is still starting up (each is
    running or already over: a quick partner may finish before a slow one starts)."""
    runs = _runs(url, prefix)
    return len(runs) == n and all(
        r.state is not None and (r.state.is_running() or r.state.is_final()) for r in runs
    )


def _unreachable(store: Path, seconds: float) -> None:
    """Make the exchange store unreachable for ``seconds`` (its folder swapped for a file,
    which even root cannot write through), then put it back."""
    aside = store.with_name(store.name + ".aside")
    store.rename(aside)
    store.write_bytes(b"the store is away")
    time.sleep(seconds)
    store.unlink()
    aside.rename(store)


def _worker_folders(fleet: Any, name: str) -> list[Path]:
    return sorted((fleet.machines / f"machine-{name}" / "tmp").glob("pharmafl-worker-*"))


# --- one run, every fault ------------------------------------------------------------------


def test_a_run_survives_each_fault_quickly(fleet: Any) -> None:
    """Round 0: charlie's machine dies mid-round. Round 1: charlie still away, the store
    unreachable for OUTAGE_S; then charlie serves again. Round 2: the operator is killed
    mid-round; resumed while the Prefect server restarts, charlie rejoins. One run keeps the
    suite fast: each fault is timed from the ledger's timestamps and the operator's log."""
    from flows.train import run_train

    fleet.ensure_serving()
    cdir, url, run = fleet.cdir, fleet.server.url, "faults"
    fleet.new_run(run, rounds=3)
    cmd = [sys.executable, "-c", "from pharmafl.cli.main import main; main()"]
    cmd += ["train", str(cdir), "--launcher", "distributed"]
    operator = fleet.processes.start("operator-faults", cmd, env=fleet.server.env(), cwd=cdir)
    try:
        _wait("charlie's round 0", lambda: _running(url, f"{run}-r0000-a0-charlie"))
        fleet.kill("charlie")
        killed_at = time.time()
        _wait("round 1", lambda: _at(cdir, run, "round_started", 1))
        _unreachable(cdir / "exchange", OUTAGE_S)
        _wait("round 1 done", lambda: _at(cdir, run, "aggregate_applied", 1))
        fleet.serve("charlie")  # back in time for the resumed round 2
        served_at = datetime.now(UTC)
        _wait("round 2 running", lambda: _running(url, f"{run}-r0002-a0-alpha"))
    except AssertionError:
        print(fleet.processes.tails())
        raise
    os.killpg(operator.popen.pid, signal.SIGKILL)  # the operator's machine died
    operator.popen.wait(timeout=10)
    tagged = _tagged(url, _run_tag(cdir, run))
    stale = [r for r in tagged if r.state is not None and not r.state.is_final()]
    assert any(r.deployment_id is None for r in stale), stale  # the dead operator's own run
    assert any(r.deployment_id is not None for r in stale), stale  # its partners' round 2
    # charlie's new worker must be polling before the resumed round invites it: on a loaded
    # machine its start-up can outlast the round, and the operator then rightly drops it
    _wait("charlie's new worker", lambda: _beating_since(url, "pool-charlie", served_at), 180)

    restarted: list[float] = []

    def restart_server() -> None:  # while the resumed round runs
        with contextlib.suppress(AssertionError):
            # once every partner's round has started: the operator is polling the API, not starting
            # runs (run_deployment's client rides out a short outage silently), and no partner
            # run is starting up (Prefect's engine gives up at once on an API that is away)
            prefix = f"{run}-r0002-a1-"
            _wait("the resumed round", lambda: _all_started(url, prefix, 3), 120)
            restarted.append(fleet.server.restart())

    thread = threading.Thread(target=restart_server, daemon=True)
    thread.start()
    t0 = time.monotonic()
    with _api(url), _lines("pharmafl.common.retry") as outages:
        result = run_train(cdir, launcher="distributed", resume=True)
    resumed_in = time.monotonic() - t0
    thread.join(timeout=60)

    # outcome: charlie dropped out of rounds 0 and 1 (its worker offline) and rejoined
    assert result.rounds == 3 and restarted, restarted
    assert [r.contributors for r in result.history] == [
        ["alpha", "bravo"],
        ["alpha", "bravo"],
        ["alpha", "bravo", "charlie"],
    ]
    dropped = [e.payload for e in _entries(cdir, run) if e.event.value == "partner_dropped"]
    assert [(d["round"], d["partner"], d["reason"]) for d in dropped] == [
        (0, "charlie", "worker offline"),
        (1, "charlie", "worker offline"),
    ]
    # time: the operator knew charlie was gone within ≈ 30 s of its death (not the 120 s
    # stage timeout), and round 1 did not wait for it at all (only for the store)
    log = operator.log.read_text()
    detected = _logged_at(log, "pool pool-charlie: worker offline") - killed_at
    assert detected <= 45, detected  # six 5-s heartbeats (30 s) after its last one
    dur = {i: _seconds(cdir, run, i, nth=1 if i == 2 else 0) for i in range(3)}
    plan = json.loads((cdir / "operator" / "plan.json").read_text())
    assert dur[0] < plan["stage_timeout_s"] and dur[1] <= OUTAGE_S + 40, dur
    # the store outage: one line when it went, one when it came back, in the operator's log
    assert log.count("unreachable (") == 1 and "retrying for up to" in log, log[-3000:]
    assert log.count("reachable again after") == 1, log[-3000:]
    # the server's restart: a line when the API went, one when it came back (not one a call)
    api = [m for m in outages if m.startswith("Prefect API")]
    assert len(api) <= 4, api  # never a line per call
    if api:  # the operator called the API while it was away; it need not have: the resumed
        # round's partners may finish before the server goes down, and the operator then
        # works on the store (tests/unit/common/test_retry.py: two lines per outage)
        assert "unreachable" in api[0] and "reachable again" in api[-1], api
    # the resumed run cancelled the dead operator's flow run and its partners' round
    after = {r.id: r for r in _tagged(url, _run_tag(cdir, run))}
    for old in stale:
        state = after[old.id].state
        # Cancelling: the partner's worker stopped the process at once, and marks the run
        # Cancelled ~30 s later; the dead operator's own run is Cancelled at once
        assert state is not None and (state.is_cancelled() or state.name == "Cancelling")
        assert state.is_cancelled() or old.deployment_id is not None, (old.name, state)
    _verified(cdir)
    for p in fleet.partner_dirs.values():  # every partner evaluated the final trunk
        assert (p / "models" / "runs" / run / "model" / "metrics.json").is_file()
    print(
        f"faults: charlie offline after {detected:.1f} s, rounds {dur}, resumed in "
        f"{resumed_in:.1f} s, server away {restarted[0]:.1f} s"
    )


@contextlib.contextmanager
def _lines(logger: str) -> Iterator[list[str]]:
    """The messages ``logger`` logs in the block (a handler of its own: the first flow run
    in a process lets Prefect configure logging, which drops pytest's capture handler)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect(logging.INFO)
    logging.getLogger(logger).addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger(logger).removeHandler(handler)


def _logged_at(log: str, needle: str) -> float:
    """The time (epoch seconds) of the first log line holding ``needle`` (the command line's
    format: ``2026-01-31 12:00:00,123 LEVEL logger: message``)."""
    line = next(line for line in log.splitlines() if needle in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _seconds(cdir: Path, run: str, index: int, nth: int = 0) -> float:
    """How long attempt ``nth`` of round ``index`` took, from the ledger."""
    started = _at(cdir, run, "round_started", index, nth)
    applied = _at(cdir, run, "aggregate_applied", index)
    assert started is not None and applied is not None
    return (applied - started).total_seconds()


def _run_tag(cdir: Path, run: str) -> str:
    from flows.launchers import run_tag
    from pharmafl.common.params import load_consortium_parameters

    scope = load_consortium_parameters(cdir / "operator" / "consortium.json").parameter_hash()
    return run_tag(scope[:12], run)


# --- SIGTERM stops a partner's worker -------------------------------------------------------


def test_sigterm_stops_a_partner_worker_and_its_round_within_5_s(fleet: Any) -> None:
    from flows.launchers import DeploymentLauncher

    fleet.ensure_serving()
    url, serve = fleet.server.url, fleet.serving["alpha"]
    with _api(url):
        launcher = DeploymentLauncher(str(fleet.cdir / "exchange"), timeout_s=60.0)
        launcher.start("alpha", "sigterm-r0000-a0", final=False)  # waits for a spec: runs
        _wait("alpha's run", lambda: _running(url, "sigterm-r0000-a0-alpha"), 120)
        assert _worker_folders(fleet, "alpha")
        tree = [psutil.Process(serve.popen.pid), *psutil.Process(serve.popen.pid).children(True)]
        assert len(tree) >= 3  # serve, its worker, the round's flow run
        t0 = time.monotonic()
        os.kill(serve.popen.pid, signal.SIGTERM)
        serve.popen.wait(timeout=10)
        stopped = time.monotonic() - t0
        _, alive = psutil.wait_procs(tree, timeout=1)
        assert stopped <= 5.0, stopped
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
        assert serve.popen.returncode == 0
        assert _worker_folders(fleet, "alpha") == []
        # the operator learns at once: the stopped round is recorded as crashed
        failed = launcher.failed()
        assert failed["alpha"].startswith("run crashed: flow run Crashed"), failed
        launcher.close()
    fleet.serve("alpha")
    print(f"SIGTERM: partner serve stopped in {stopped:.1f} s")


# --- a run that crashed before it started is submitted again --------------------------------

SUBMIT_FAILED = "Failed to submit flow run to infrastructure: HTTPStatusError: 503"


def test_a_run_that_crashed_before_it_started_is_submitted_again(fleet: Any) -> None:
    """Seen once in CI: the Prefect server answered 503 while a worker submitted a partner's
    run, the worker marked it crashed before it had started, and the operator counted the
    partner as a dropout. None of the partner's code ran, so the launcher submits it again
    (at most RELAUNCHES times a round, and not once the round's aggregation is over). Here
    bravo's pool is paused while its runs are marked crashed as a worker marks a run it could
    not submit; resumed, the new run starts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate
    from prefect.states import Crashed

    from flows.launchers import RELAUNCHES, DeploymentLauncher

    fleet.ensure_serving()
    url, exchange = fleet.server.url, str(fleet.cdir / "exchange")

    def crash_newest(client: Any, name: str, n: int) -> None:
        runs = sorted(_runs(url, name), key=lambda r: r.created)
        assert len(runs) == n and runs[-1].state.is_scheduled(), runs
        client.set_flow_run_state(runs[-1].id, Crashed(message=SUBMIT_FAILED), force=True)
        time.sleep(0.3)  # past the launchers' poll interval

    launchers = [DeploymentLauncher(exchange, timeout_s=60.0, poll_s=0.2) for _ in range(3)]
    again, spent, over = launchers
    with _api(url), get_client(sync_client=True) as client:
        client.update_work_pool("pool-bravo", WorkPoolUpdate(is_paused=True))
        try:
            again.start("bravo", "resubmit-r0000-a0", final=False)
            crash_newest(client, "resubmit-r0000-a0-bravo", 1)
            assert again.failed() == {}  # submitted again, not a dropout
            assert len(_runs(url, "resubmit-r0000-a0-bravo")) == 2

            # a partner whose runs keep crashing before they start counts as failed
            spent.start("bravo", "spent-r0000-a0", final=False)
            for n in range(1, RELAUNCHES + 2):
                crash_newest(client, "spent-r0000-a0-bravo", n)
                failed = spent.failed()
                assert ("bravo" in failed) == (n == RELAUNCHES + 1), (n, failed)
            assert failed["bravo"].startswith("run crashed: flow run Crashed"), failed
            assert len(_runs(url, "spent-r0000-a0-bravo")) == RELAUNCHES + 1

            # once the round's aggregation is over (finish), a run could no longer take part
            over.start("bravo", "over-r0000-a0", final=False)
            crash_newest(client, "over-r0000-a0-bravo", 1)
            assert over.finish(5.0)["bravo"].startswith("run crashed"), "not submitted again"
            assert len(_runs(url, "over-r0000-a0-bravo")) == 1
        finally:
            for launcher in (spent, over):
                launcher.close()
            client.update_work_pool("pool-bravo", WorkPoolUpdate(is_paused=False))
        try:
            _wait("bravo's new run", lambda: _running(url, "resubmit-r0000-a0-bravo"), 120)
            assert again.failed() == {}
        finally:
            again.close()  # cancels it: its worker stops the process
    _wait("bravo's run stopped", lambda: not _running(url, "resubmit-r0000-a0-bravo"), 60)


def _tagged(url: str, tag: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    flt = FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
    with _api(url), get_client(sync_client=True) as client:
        return list(client.read_flow_runs(flow_run_filter=flt))
