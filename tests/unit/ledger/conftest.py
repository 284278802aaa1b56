"""A small consortium (operator + three partners) and a ledger of one short training run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmafl.ledger import Ledger
from pharmafl.secure.identity import Identity, Roster, build_roster

PARTNERS = ("alpha", "beta", "gamma")


def h(tag: str) -> str:
    """A deterministic fake SHA-256 hex digest for tests."""
    import hashlib

    return hashlib.sha256(tag.encode()).hexdigest()


@pytest.fixture(scope="session")
def identities() -> dict[str, Identity]:
    ids = {p: Identity.generate(p) for p in PARTNERS}
    ids["operator"] = Identity.generate("operator", "operator")
    return ids


@pytest.fixture(scope="session")
def roster(identities: dict[str, Identity]) -> Roster:
    return build_roster(
        identities["operator"],
        [identities[p].public for p in PARTNERS],
        consortium="test-consortium",
    )


def write_run(ledger: Ledger, ids: dict[str, Identity], rounds: int = 2) -> None:
    """Append the entries of a consortium set-up and a short training run."""
    op = ids["operator"]
    ledger.append(
        "operator",
        op,
        "consortium_created",
        {
            "consortium": "test-consortium",
            "consortium_hash": h("params"),
            "roster_fingerprint": h("roster"),
            "code_version": "0.1.0",
            "parameters": {"fingerprint": {"radius": 3, "fold_size": 32000}},
        },
    )
    for p in PARTNERS:
        ledger.append(
            p,
            ids[p],
            "partner_joined",
            {
                "partner": p,
                "public_key_fingerprint": ids[p].public.fingerprint(),
                "data": {"compounds": 100, "tasks": 5, "measurements": 300},
            },
        )
    ledger.append(
        "operator",
        op,
        "training_started",
        {
            "code_version": "0.1.0",
            "consortium_hash": h("params"),
            "parameters": {"rounds": rounds, "local_epochs": 1, "lr": 1e-3, "seed": 7},
            "initial_trunk_hash": h("trunk-init"),
            "participants": list(PARTNERS),
            "secure_aggregation": True,
        },
    )
    trunk = h("trunk-init")
    for r in range(rounds):
        ledger.append(
            "operator",
            op,
            "round_started",
            {"round": r, "global_trunk_hash": trunk, "participants": list(PARTNERS)},
        )
        for p in PARTNERS:
            if r == 1 and p == "gamma":
                ledger.append(
                    "operator",
                    op,
                    "partner_dropped",
                    {"round": r, "partner": p, "reason": "timeout after 60 s"},
                )
                continue
            ledger.append(
                p,
                ids[p],
                "update_submitted",
                {"round": r, "partner": p, "envelope_hash": h(f"env-{r}-{p}")},
            )
        new = h(f"trunk-{r}")
        contributors = list(PARTNERS) if r != 1 else ["alpha", "beta"]
        ledger.append(
            "operator",
            op,
            "aggregate_applied",
            {
                "round": r,
                "trunk_hash": new,
                "previous_trunk_hash": trunk,
                "contributors": contributors,
                "server_optimizer": "fedavg",
            },
        )
        trunk = new
    ledger.append(
        "operator",
        op,
        "training_finished",
        {"rounds": rounds, "final_trunk_hash": trunk, "reason": "round budget"},
    )


@pytest.fixture
def ledger_path(tmp_path: Path, identities: dict[str, Identity], roster: Roster) -> Path:
    path = tmp_path / "ledger.jsonl"
    write_run(Ledger(path, roster=roster), identities)
    return path
