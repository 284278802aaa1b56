"""ε per partner over every aggregate its updates went into, from the ledger."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pharmafl.accounting import partner_privacy
from pharmafl.ledger import (
    AggregateAppliedPayload,
    Ledger,
    RoundAbortedPayload,
    RoundStartedPayload,
    TrainingStartedPayload,
    read_entries,
)
from pharmafl.secure import DPConfig, Identity, build_roster

PARTNERS = ("alpha", "bravo", "charlie")
DP = DPConfig(clip_norm=1.0, noise_multiplier=4.0, delta=1e-6)


def _h(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


class _Run:
    def __init__(self, path: Path) -> None:
        self.op = Identity.generate("operator", "operator")
        ids = [Identity.generate(p).public for p in PARTNERS]
        self.ledger = Ledger(path, roster=build_roster(self.op, ids, consortium="t"))
        self.dp: dict[str, DPConfig | None] = {}

    def add(self, payload: object, event: str) -> None:
        self.ledger.append("operator", self.op, event, payload)  # type: ignore[arg-type]

    def start(self, run: str, dp: DPConfig | None, members: tuple[str, ...]) -> None:
        self.dp[run] = dp
        params = {"run_id": run, "dp": None if dp is None else dp.model_dump(mode="json")}
        self.add(
            TrainingStartedPayload(
                run_id=run,
                code_version="x",
                consortium_hash=_h("c"),
                parameters=params,
                initial_trunk_hash=_h("t"),
                participants=list(members),
                secure_aggregation=True,
            ),
            "training_started",
        )

    def round(
        self, run: str, index: int, members: tuple[str, ...], *, revealed_abort: bool = False
    ) -> None:
        self.add(
            RoundStartedPayload(
                run_id=run,
                round=index,
                global_trunk_hash=_h("g"),
                participants=list(members),
                dp=self.dp[run],
            ),
            "round_started",
        )
        if revealed_abort:
            reason = "round 3: aborted while revealing: too few partners revealed shares"
            self.add(
                RoundAbortedPayload(run_id=run, round=index, reason=reason, released=True),
                "round_aborted",
            )
            return
        self.add(
            AggregateAppliedPayload(
                run_id=run, round=index, trunk_hash=_h(f"{run}{index}"), contributors=list(members)
            ),
            "aggregate_applied",
        )


def test_every_aggregate_of_every_run_is_composed(tmp_path: Path) -> None:
    log = _Run(tmp_path / "ledger.jsonl")
    log.start("train", DP, PARTNERS)
    for r in range(3):
        log.round("train", r, PARTNERS)
    log.round("train", 3, PARTNERS, revealed_abort=True)  # may have been decoded: counts
    log.start("cs-1", DP, ("alpha", "bravo"))  # a contribution-study coalition
    log.round("cs-1", 0, ("alpha", "bravo"))
    rows = {r.partner: r for r in partner_privacy(read_entries(log.ledger.path))}
    assert rows["alpha"].aggregates == 5 and rows["alpha"].runs == 2
    assert rows["charlie"].aggregates == 4 and rows["charlie"].runs == 1
    assert rows["alpha"].epsilon == pytest.approx(DP.epsilon(5))
    assert rows["charlie"].epsilon == pytest.approx(DP.epsilon(4))
    assert rows["charlie"].epsilon < rows["alpha"].epsilon
    assert rows["alpha"].delta == DP.delta


def test_one_aggregate_without_dp_makes_epsilon_unbounded(tmp_path: Path) -> None:
    log = _Run(tmp_path / "ledger.jsonl")
    log.start("train", DP, PARTNERS)
    log.round("train", 0, PARTNERS)
    log.start("cs-2", None, ("bravo", "charlie"))
    log.round("cs-2", 0, ("bravo", "charlie"))
    rows = {r.partner: r for r in partner_privacy(read_entries(log.ledger.path))}
    assert rows["alpha"].epsilon == pytest.approx(DP.epsilon(1))
    assert rows["bravo"].epsilon is None and rows["bravo"].aggregates == 2


def test_a_round_records_its_own_dp_and_a_plain_abort_releases_nothing(tmp_path: Path) -> None:
    log = _Run(tmp_path / "ledger.jsonl")
    log.start("train", DP, PARTNERS)  # the plan said DP at the start ...
    log.add(  # ... but this round ran without it (a plan edited before a resume)
        RoundStartedPayload(
            run_id="train", round=0, global_trunk_hash=_h("g"), participants=list(PARTNERS), dp=None
        ),
        "round_started",
    )
    log.add(
        AggregateAppliedPayload(
            run_id="train", round=0, trunk_hash=_h("t0"), contributors=list(PARTNERS)
        ),
        "aggregate_applied",
    )
    log.add(
        RoundAbortedPayload(run_id="train", round=1, reason="too few partners"), "round_aborted"
    )
    rows = {r.partner: r for r in partner_privacy(read_entries(log.ledger.path))}
    assert rows["alpha"].aggregates == 1 and rows["alpha"].epsilon is None
