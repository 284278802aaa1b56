"""Faults of a federated run on three real partners (issue 5, "Faults").

- a partner crashing mid-round after the key stages is a dropout (the round completes
  through dropout recovery, the ledger records it);
- fewer than t partners left: the round aborts cleanly, is retried under fresh round ids,
  training then stops with a clear FederationError, and ``--resume`` continues it later;
- an operator crash (after a checkpoint, in the middle of a round, during the final
  evaluation) and ``resume=True`` reach the trunk of an uninterrupted run;
- a restarted partner never redoes a round it already took part in, and a new run in the
  same partner folders starts from scratch.

The dropout test runs partner rounds as Prefect flow runs (``EmbeddedLauncher``) under a
temporary Prefect API. The others use the same launcher class with its ``_run`` calling the
partner library functions directly: same threads and failure bookkeeping, without
~2 s of flow-run overhead per partner and round; what they test is the round, state and
resume logic of the operator and the partners.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.launchers import EmbeddedLauncher
from pharmafl.common.errors import FederationError
from pharmafl.common.io import sha256_bytes
from pharmafl.contract import FederationPlan, LocalTrainingSpec, trunk_to_bytes
from pharmafl.layout import PartnerLayout
from pharmafl.ledger import LedgerEntry, read_entries, verify_ledger
from pharmafl.partner.federated import partner_finish, partner_round
from pharmafl.secure import load_roster
from pharmafl.server import RoundResult, TrainingResult, TrainingState, run_training
from pharmafl.simulate.federation import setup_federation

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TRUNK = {"kind": "sparse", "hidden_sizes": [64], "dropouts": [0.1]}
LOCAL = LocalTrainingSpec(epochs=1, batch_size=128, head_finetune_epochs=1)
BROKEN_FILE = Path("prepared") / "cls_T10_y.npz"


class LibraryLauncher(EmbeddedLauncher):
    """The embedded launcher, partner rounds called as library functions (no flow runs)."""

    def _run(self, partner: str, round_id: str, final: bool) -> Any:
        work = partner_finish if final else partner_round
        pdir = self.partner_dirs[partner]
        return work(pdir, self.exchange_url, round_id, timeout_s=self.timeout_s)


# --- helpers --------------------------------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    for key in dst.glob("partners/*/key.json"):
        os.chmod(key, 0o600)
    for key in dst.glob("**/identity/*.key.json"):
        os.chmod(key, 0o600)
    return dst


def _federation(prepared: Path, dst: Path, **plan: Any) -> Path:
    cdir = _copy(prepared, dst)
    fields: dict[str, Any] = {"trunk": TRUNK, "local": LOCAL, "stage_timeout_s": 60} | plan
    setup_federation(cdir, FederationPlan(**fields))
    return cdir


def _partners(cdir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((cdir / "partners").iterdir())}


def _launcher(cdir: Path, cls: type[Any], store: str = "exchange", **kw: Any) -> Any:
    """A launcher as train_flow makes it: partners wait as long as one stage may take."""
    plan = FederationPlan.model_validate_json((cdir / "operator" / "plan.json").read_text())
    return cls(_partners(cdir), str(cdir / store), plan.stage_timeout_s, **kw)


def _train(
    cdir: Path,
    launcher: EmbeddedLauncher | None = None,
    *,
    store: str = "exchange",
    **kwargs: Any,
) -> TrainingResult:
    url = str(cdir / store)
    chosen = launcher or _launcher(cdir, LibraryLauncher, store)
    try:
        return run_training(cdir / "operator", url, chosen, **kwargs)
    finally:
        chosen.close()


def _break(partner_dir: Path) -> None:
    """Corrupt a prepared matrix: the partner fails when it loads its data to train, i.e.
    after it advertised and shared its secure-aggregation keys."""
    (partner_dir / BROKEN_FILE).write_bytes(b"not an npz file")


def _ledger(cdir: Path) -> list[LedgerEntry]:
    roster = load_roster(cdir / "operator" / "roster.json")
    result = verify_ledger(cdir / "operator" / "ledger.jsonl", roster)
    assert result.ok, result.message
    return read_entries(cdir / "operator" / "ledger.jsonl")


def _events(entries: list[LedgerEntry], event: str) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in entries if e.event.value == event]


def _checkpoint_trunk_hash(cdir: Path) -> str:
    state = TrainingState.load(cdir / "operator" / "state")
    assert state is not None
    return sha256_bytes(trunk_to_bytes(state.trunk))


def _no_partial_files(root: Path) -> None:
    partial = [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert not partial, f"partial files left behind: {partial}"


def _checkpoint_next_round(cdir: Path) -> int:
    state = TrainingState.load(cdir / "operator" / "state")
    assert state is not None
    return state.next_round


def _committed_steps(cdir: Path) -> dict[str, int]:
    import torch

    out = {}
    for name, pdir in _partners(cdir).items():
        ckpt = torch.load(
            pdir / "models" / "federated" / "committed.pt", map_location="cpu", weights_only=True
        )
        out[name] = int(ckpt["counters"]["step"])
    return out


def _last_committed(pdir: Path) -> int:
    doc = json.loads((pdir / "models" / "federated" / "state.json").read_text())
    return int(doc["last_committed_round"])


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _new_ledger(cdir: Path) -> None:
    """The operator starts a new ledger and the partners agree to it out of band: they move
    their recorded heads of the old one aside (else they refuse every spec of the new one,
    tests/security/test_ledger_history.py)."""
    (cdir / "operator" / "ledger.jsonl").unlink()
    for pdir in _partners(cdir).values():
        PartnerLayout(pdir).ledger_heads.unlink()


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_api() -> Iterator[None]:
    """A temporary Prefect API for the flow-run launcher (SQLite, 127.0.0.1)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def base(prepared_consortium: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-round federation set up once (identities, roster, initial trunk); copies of it
    are identical runs up to the secure-aggregation randomness."""
    return _federation(prepared_consortium, tmp_path_factory.mktemp("fed") / "base", rounds=3)


@pytest.fixture(scope="module")
def run_a(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingResult]:
    """The uninterrupted reference run."""
    cdir = _copy(base, tmp_path_factory.mktemp("fed") / "a")
    return cdir, _train(cdir)


# --- a. a partner crashes mid-round  ---------------------------------------------------------


def test_partner_crash_after_key_stages_is_a_dropout(
    prefect_api: None, prepared_consortium: Path, tmp_path: Path
) -> None:
    cdir = _federation(prepared_consortium, tmp_path / "c", rounds=1)
    _break(cdir / "partners" / "charlie")
    result = _train(cdir, _launcher(cdir, EmbeddedLauncher))

    assert result.rounds == 1
    assert result.dropped == {0: ["charlie"]}
    assert [r.contributors for r in result.history] == [["alpha", "bravo"]]
    # charlie did take part in the key stages (so its pairwise masks had to be recovered
    # from the others' shares), then crashed before submitting.
    sent = (cdir / "exchange" / "train-r0000-a0").glob("*/*/charlie.*.env")
    kinds = {p.parent.parent.name for p in sent}  # <round>/<kind>/<recipient>/<sender>.*.env
    assert {"advertise", "shares"} <= kinds and "masked" not in kinds

    entries = _ledger(cdir)
    dropped = _events(entries, "partner_dropped")
    assert [(d["round"], d["partner"]) for d in dropped] == [(0, "charlie")]
    assert all("ModelError" in d["reason"] for d in dropped)
    # the ledger every partner reads names the error's kind, never a partner's file paths
    assert all(str(cdir) not in d["reason"] and "/" not in d["reason"] for d in dropped)
    submitted = Counter((u["round"], u["partner"]) for u in _events(entries, "update_submitted"))
    assert submitted == Counter({(0, "alpha"): 1, (0, "bravo"): 1})
    applied = _events(entries, "aggregate_applied")
    assert [a["contributors"] for a in applied] == [["alpha", "bravo"]]
    assert applied[0]["trunk_hash"] != applied[0]["previous_trunk_hash"]
    assert not _events(entries, "round_aborted")
    assert len(_events(entries, "training_finished")) == 1
    # The survivors finished; charlie's final evaluation failed too (its data is broken).
    for name in ("alpha", "bravo"):
        assert (cdir / "partners" / name / "models/federated/model/metrics.json").is_file()
    assert not (cdir / "partners" / "charlie" / "models/federated/model").exists()
    _no_partial_files(cdir)


# --- b. fewer than t partners left ----------------------------------------------------------


def test_an_aborted_round_releases_its_survivors_at_once(
    prepared_consortium: Path, tmp_path: Path
) -> None:
    """The survivor of an aborted round stops at the operator's signed abort notice instead
    of waiting for its next stage until the stage timeout (and the operator for it)."""
    timeout = 300
    cdir = _federation(
        prepared_consortium, tmp_path / "c", rounds=2, max_round_attempts=1, stage_timeout_s=timeout
    )

    def break_two(record: RoundResult) -> None:
        if record.round == 0:
            for p in ("bravo", "charlie"):
                _break(cdir / "partners" / p)

    class Recording(LibraryLauncher):
        """The partner runs' failures, as the operator collects them."""

        def finish(self, timeout_s: float) -> dict[str, str]:
            self.seen.append(super().finish(timeout_s))
            return self.seen[-1]

    launcher = _launcher(cdir, Recording)
    launcher.seen = []
    t0 = time.monotonic()
    with pytest.raises(FederationError, match="round 1 aborted 1 times"):
        _train(cdir, launcher, on_round=break_two)
    assert time.monotonic() - t0 < timeout / 3  # nobody waited for a stage that never came
    (aborted,) = _events(_ledger(cdir), "round_aborted")
    assert aborted["survivors"] == ["alpha"]  # still in the round when it aborted
    assert "the operator aborted round train-r0001-a0" in launcher.seen[-1]["alpha"]
    _no_partial_files(cdir)


def test_below_threshold_round_aborts_retries_then_fails_cleanly_and_resumes(
    prepared_consortium: Path, tmp_path: Path
) -> None:
    cdir = _federation(
        prepared_consortium, tmp_path / "c", rounds=2, max_round_attempts=2, stage_timeout_s=6
    )
    saved = {p: (cdir / "partners" / p / BROKEN_FILE).read_bytes() for p in ("bravo", "charlie")}

    def break_two(record: RoundResult) -> None:
        if record.round == 0:  # after round 0's checkpoint: round 1 loses two of three
            for p in saved:
                _break(cdir / "partners" / p)

    with pytest.raises(FederationError, match="round 1 aborted 2 times") as err:
        _train(cdir, on_round=break_two)
    assert "--resume" in (err.value.fix or "")

    # Nothing half-written: the checkpoint is still round 0's.
    state = TrainingState.load(cdir / "operator" / "state")
    assert state is not None and state.next_round == 1 and not state.finished
    assert [h.round for h in state.history] == [0]
    assert _checkpoint_trunk_hash(cdir) == state.history[0].trunk_sha256
    # best_trunk.npz exists only when round 0 had a shared validation score, which depends on
    # the consortium key (the suite's fixed key leaves round 0 unscored); when it does, it is
    # round 0's trunk.
    files = ["checkpoint-0001.npz", "checkpoint.json"]
    if state.history[0].mean_validation_auc_pr is not None:
        assert state.best_round == 0
        best = cdir / "operator" / "state" / "best_trunk.npz"
        assert sha256_bytes(best.read_bytes()) == state.history[0].trunk_sha256
        files.insert(0, "best_trunk.npz")
    else:
        assert state.best_round is None
    assert sorted(p.name for p in (cdir / "operator" / "state").iterdir()) == files
    assert not (cdir / "operator" / "final_trunk.npz").exists()
    _no_partial_files(cdir)

    entries = _ledger(cdir)
    assert [s["round"] for s in _events(entries, "round_started")] == [0, 1, 1]
    aborted = _events(entries, "round_aborted")
    assert [a["round"] for a in aborted] == [1, 1]
    assert all("too few masked inputs" in a["reason"] for a in aborted)
    assert [a["round"] for a in _events(entries, "aggregate_applied")] == [0]
    assert not _events(entries, "training_finished")
    # Each attempt ran under its own round id.
    spec_hashes = [s["round_spec_hash"] for s in _events(entries, "round_started")]
    assert len(set(spec_hashes)) == 3
    assert (cdir / "exchange" / "train-r0001-a0").is_dir()
    assert (cdir / "exchange" / "train-r0001-a1").is_dir()

    # The partners come back: --resume retries round 1 under a fresh id and finishes.
    for p, data in saved.items():
        (cdir / "partners" / p / BROKEN_FILE).write_bytes(data)
    result = _train(cdir, resume=True)
    assert result.rounds == 2 and result.stop_reason == "round budget"
    assert result.history[1].round_id == "train-r0001-a2"
    assert result.history[1].contributors == ["alpha", "bravo", "charlie"]
    entries = _ledger(cdir)
    assert [a["round"] for a in _events(entries, "aggregate_applied")] == [0, 1]
    assert len(_events(entries, "training_finished")) == 1
    for pdir in _partners(cdir).values():
        assert _last_committed(pdir) == 1
        assert not (pdir / "models" / "federated" / "pending").exists()
    _no_partial_files(cdir)


# --- c. operator crash and resume -----------------------------------------------------------


class OperatorCrash(Exception):  # noqa: N818 (not an error of the code under test)
    """Stands in for the operator process dying."""


class CrashingLauncher(LibraryLauncher):
    """Crashes the operator once ``when(round_id, final)`` says so, at ``finish``: after
    the round's secure aggregation, before the operator records anything of it."""

    def __init__(self, *args: Any, when: Callable[[str, bool], bool]) -> None:
        super().__init__(*args)
        self.when = when
        self.current: tuple[str, bool] = ("", False)

    def start(self, partner: str, round_id: str, *, final: bool) -> None:
        self.current = (round_id, final)
        super().start(partner, round_id, final=final)

    def finish(self, timeout_s: float) -> dict[str, str]:
        out = super().finish(timeout_s)
        if self.when(*self.current):
            raise OperatorCrash(self.current[0])
        return out


@pytest.mark.parametrize("crash", ["after_checkpoint_then_final", "mid_round"])
def test_resume_after_an_operator_crash_reaches_the_uninterrupted_trunk(
    base: Path, run_a: tuple[Path, TrainingResult], tmp_path: Path, crash: str
) -> None:
    a_dir, a = run_a
    assert a.rounds == 3 and a.stop_reason == "round budget"
    cdir = _copy(base, tmp_path / "b")

    def after_round_1(record: RoundResult) -> None:
        if record.round == 1:
            raise OperatorCrash("after round 1's checkpoint")

    if crash == "mid_round":
        # Round 1's secure aggregation completed (the partners hold pending states of it)
        # but the operator died before applying it: it kept the aggregate.
        launcher = _launcher(cdir, CrashingLauncher, when=lambda rid, _: rid.endswith("r0001-a0"))
        with pytest.raises(OperatorCrash):
            _train(cdir, launcher)
        assert _checkpoint_next_round(cdir) == 1
        assert (cdir / "operator" / "state" / "aggregate-0001.npz").is_file()
    else:
        with pytest.raises(OperatorCrash):
            _train(cdir, on_round=after_round_1)
        assert _checkpoint_next_round(cdir) == 2
        # The resumed run dies again, during the final evaluation.
        launcher = _launcher(cdir, CrashingLauncher, when=lambda _, final: final)
        with pytest.raises(OperatorCrash):
            _train(cdir, launcher, resume=True)
        assert _checkpoint_next_round(cdir) == 3

    b = _train(cdir, resume=True)

    assert b.final_trunk_sha256 == a.final_trunk_sha256
    assert [h.trunk_sha256 for h in b.history] == [h.trunk_sha256 for h in a.history]
    assert b.rounds == 3 and b.stop_reason == "round budget"
    entries = _ledger(cdir)
    assert [x["round"] for x in _events(entries, "aggregate_applied")] == [0, 1, 2]
    finished = _events(entries, "training_finished")
    assert len(finished) == 1 and finished[0]["final_trunk_hash"] == a.final_trunk_sha256
    assert (cdir / "operator" / "final_trunk.npz").read_bytes() == (
        a_dir / "operator" / "final_trunk.npz"
    ).read_bytes()
    # The partners trained every round exactly once, as in the uninterrupted run.
    assert _committed_steps(cdir) == _committed_steps(a_dir)
    for pdir in _partners(cdir).values():
        assert _last_committed(pdir) == 2
        assert (pdir / "models/federated/model/metrics.json").is_file()
    started = [x["round"] for x in _events(entries, "round_started")]
    if crash == "mid_round":  # round 1 was not redone: its kept aggregate was applied
        assert started == [0, 1, 2]
        assert b.history[1].round_id == "train-r0001-a0"
        submitted = Counter(u["round"] for u in _events(entries, "update_submitted"))
        assert submitted == {0: 3, 1: 3, 2: 3}  # written once, after the restart
        assert not list((cdir / "operator" / "state").glob("aggregate-*"))
    else:  # the final evaluation was redone under a fresh id
        assert started == [0, 1, 2]
        assert (cdir / "exchange" / "train-r0003-final").is_dir()
        assert (cdir / "exchange" / "train-r0003-final-a1").is_dir()
    _no_partial_files(cdir)


# --- d. restarted partners ------------------------------------------------------------------


def test_a_restarted_partner_never_redoes_a_round_and_a_new_run_starts_fresh(
    base: Path, run_a: tuple[Path, TrainingResult], tmp_path: Path
) -> None:
    a_dir, a = run_a
    cdir = _copy(base, tmp_path / "d")
    url = str(cdir / "exchange")
    dirs = _partners(cdir)
    seen: list[int] = []

    def restart_charlie(record: RoundResult) -> None:
        if record.round != 1:
            return
        seen.append(1)
        # As designed: after round r, r-1 is committed and r is pending (it is committed
        # when the next spec says round r was aggregated).
        for pdir in dirs.values():
            assert _last_committed(pdir) == 0
            pending = sorted(p.name for p in (pdir / "models/federated/pending").iterdir())
            assert pending == ["train-r0001-a0.pt"]
        before_exchange = _tree(cdir / "exchange")
        before_partner = _tree(dirs["charlie"] / "models")
        # A restarted charlie asked (again) for rounds it already took part in.
        for rid in ("train-r0000-a0", "train-r0001-a0"):
            with pytest.raises(FederationError, match="already took part"):
                partner_round(dirs["charlie"], url, rid, timeout_s=5)
        assert _tree(cdir / "exchange") == before_exchange
        assert _tree(dirs["charlie"] / "models") == before_partner
        # The store (untrusted) plants a key advertisement in alpha's name for the next
        # round, signed with another key: alpha must not take it for its own and sit the
        # round out as "already taken part".
        from pharmafl.secure import ExchangeStore, Identity, seal

        ExchangeStore(url).put(
            seal(
                Identity.generate("alpha"),
                round_id="train-r0002-a0",
                kind="advertise",
                recipient="operator",
                payload=b"{}",
            )
        )

    d = _train(cdir, on_round=restart_charlie)
    assert seen == [1]
    assert d.final_trunk_sha256 == a.final_trunk_sha256
    assert _committed_steps(cdir) == _committed_steps(a_dir)
    steps = _committed_steps(cdir)
    assert all(s > 0 for s in steps.values())

    # The same run again in the same partner folders (new operator state, new store): the
    # partners refuse round 0, whose aggregate the operator already had (a second aggregate
    # of it would difference into one partner's update).
    shutil.rmtree(cdir / "operator" / "state")
    _new_ledger(cdir)
    (cdir / "operator" / "final_trunk.npz").unlink()
    with pytest.raises(FederationError, match="aborted"):
        _train(cdir, store="exchange2", rounds=1)
    with pytest.raises(FederationError, match="already aggregated"):
        partner_round(dirs["alpha"], str(cdir / "exchange2"), "train-r0000-a0", timeout_s=5)

    # A new run id from the same initial trunk and seed would replay round 0 and give every
    # partner the same heads again (a nudged later round could then difference): refused.
    shutil.rmtree(cdir / "operator" / "state")
    _new_ledger(cdir)
    plan = json.loads((cdir / "operator" / "plan.json").read_text())
    (cdir / "operator" / "plan.json").write_text(json.dumps(plan | {"run_id": "train-2"}))
    with pytest.raises(FederationError, match="aborted"):
        _train(cdir, store="exchange3", rounds=1)

    # A new run with its own seed, and so its own initial trunk, starts from scratch.
    from pharmafl.contract import FederationPlan, trunk_to_bytes
    from pharmafl.model import initial_trunk

    shutil.rmtree(cdir / "operator" / "state")
    _new_ledger(cdir)
    fresh = plan | {"run_id": "train-3", "seed": plan["seed"] + 1}
    (cdir / "operator" / "plan.json").write_text(json.dumps(fresh))
    own = FederationPlan.model_validate(fresh)
    run_dir = cdir / "operator" / "runs" / "train-3"
    run_dir.mkdir(parents=True)
    (run_dir / "initial_trunk.npz").write_bytes(trunk_to_bytes(initial_trunk(own.trunk, own.seed)))
    again = _train(cdir, store="exchange4", rounds=1)
    assert again.rounds == 1 and again.final_trunk_sha256 != a.history[0].trunk_sha256
    for pdir in dirs.values():
        doc = json.loads((pdir / "models/runs/train-3/state.json").read_text())
        assert doc["last_committed_round"] == 0
