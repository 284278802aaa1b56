"""Shared fixtures for the secure-aggregation tests: identities, a roster, a fresh store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pharmafl.secure import ExchangeStore, Identity, Roster, build_roster


@dataclass
class Consortium:
    """An operator, partners and their signed roster."""

    operator: Identity
    partners: dict[str, Identity]
    roster: Roster


def make_consortium(n: int) -> Consortium:
    operator = Identity.generate("operator", "operator")
    partners = {f"p{i:02d}": Identity.generate(f"p{i:02d}") for i in range(n)}
    roster = build_roster(operator, [p.public for p in partners.values()], consortium="test")
    return Consortium(operator, partners, roster)


@pytest.fixture
def consortium() -> Consortium:
    return make_consortium(4)


@pytest.fixture
def memory_store() -> Iterator[ExchangeStore]:
    store = ExchangeStore(f"memory://secure-tests-{uuid.uuid4().hex}")
    yield store
    if store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)
