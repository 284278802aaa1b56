"""Training coalitions in parallel: results recorded as they come, launchers closed, the
first failure raised only after the coalitions already running were recorded.

The study itself (real coalitions, ledger, cache, resume) is tested end to end in
``tests/unit/flows/test_contribution_flow.py``.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Mapping

import pytest

from pharmafl.accounting.study import _train_in_parallel
from pharmafl.accounting.utility import Coalition

COALITIONS = [frozenset({"a", "b"}), frozenset({"a", "c"}), frozenset({"b", "c"})]


class _Launcher:
    """A launcher stand-in that only records being closed (no partner is started)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self, partner: str, round_id: str, *, final: bool) -> None:  # pragma: no cover
        raise AssertionError("not used")

    def failed(self) -> dict[str, str]:  # pragma: no cover
        return {}

    def finish(self, timeout_s: float) -> dict[str, str]:  # pragma: no cover
        return {}

    def close(self) -> None:
        self.log.append("closed")


def test_parallel_training_records_every_coalition_and_overlaps() -> None:
    log: list[str] = []
    recorded: dict[Coalition, Mapping[str, float]] = {}
    running, most = [0], [0]
    lock = threading.Lock()
    main = threading.get_ident()

    def train(c: Coalition, launcher: object) -> Mapping[str, float]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return {p: 0.1 for p in c}

    def record(c: Coalition, gains: Mapping[str, float]) -> None:
        assert threading.get_ident() == main  # the cache is only touched by the caller
        recorded[c] = gains

    _train_in_parallel(COALITIONS, 2, train, lambda: _Launcher(log), record)
    assert set(recorded) == set(COALITIONS)
    assert recorded[COALITIONS[0]] == {"a": 0.1, "b": 0.1}
    assert most[0] == 2
    assert log == ["closed"] * 3


_SETTING: contextvars.ContextVar[str] = contextvars.ContextVar("setting", default="unset")


def test_workers_see_the_callers_context_variables() -> None:
    """Prefect keeps settings (a temporary API URL) and run context in context variables;
    a worker thread without them would talk to another (ephemeral) API."""
    seen: list[str] = []

    def train(c: Coalition, launcher: object) -> Mapping[str, float]:
        seen.append(_SETTING.get())
        return {}

    token = _SETTING.set("http://127.0.0.1:4200/api")
    try:
        _train_in_parallel(COALITIONS, 2, train, lambda: _Launcher([]), lambda c, g: None)
    finally:
        _SETTING.reset(token)
    assert seen == ["http://127.0.0.1:4200/api"] * 3


def test_a_failure_stops_new_coalitions_after_recording_running_ones() -> None:
    log: list[str] = []
    recorded: list[Coalition] = []

    def train(c: Coalition, launcher: object) -> Mapping[str, float]:
        if c == COALITIONS[0]:
            raise RuntimeError("round aborted")
        time.sleep(0.1)  # still running when the first one fails
        return {p: 0.0 for p in c}

    with pytest.raises(RuntimeError, match="round aborted"):
        _train_in_parallel(
            COALITIONS, 2, train, lambda: _Launcher(log), lambda c, g: recorded.append(c)
        )
    assert recorded == [COALITIONS[1]]  # the third was never started
    assert log == ["closed"] * 2


def test_a_coalition_a_member_did_not_report_for_is_not_valued(monkeypatch, tmp_path) -> None:
    """A member that withholds its gain (a free rider whose own gain would be telling, or a
    partner without its local-only model) must not have its coalition valued on the other
    members' reports alone: the study stops and says who, and what to do."""
    from types import SimpleNamespace

    import pharmafl.accounting.study as study_mod
    from pharmafl.accounting import StudyConfig
    from pharmafl.common.errors import AccountingError
    from pharmafl.contract import PartnerUtilityReport
    from pharmafl.secure import SecurityPolicy

    six = ("a1", "a2", "a3", "b1", "b2", "b3")
    policy = SecurityPolicy(valuation_groups=(six[:3], six[3:]))
    ctx = SimpleNamespace(roster=SimpleNamespace(security_policy=policy), operator_dir=tmp_path)
    ctx.plan = None
    reports = {
        p: PartnerUtilityReport(partner=p, run_id="cs-x", gain=0.01, gain_se=0.01)
        for p in six[:-1]  # b3 is silent
    }
    monkeypatch.setattr(study_mod, "coalition_plan", lambda *a: None)
    monkeypatch.setattr(study_mod, "write_run_plan", lambda *a: None)
    monkeypatch.setattr(
        study_mod, "run_training", lambda *a, **k: SimpleNamespace(utility_reports=reports)
    )
    with pytest.raises(AccountingError, match=r"partner\(s\) \['b3'\] did not report") as err:
        study_mod._train_coalition(
            ctx,
            "url",
            _Launcher([]),
            StudyConfig(),
            "sid",
            frozenset(six),
            None,  # type: ignore[arg-type]
        )
    assert "pharmafl baseline" in (err.value.fix or "")
