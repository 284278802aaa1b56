"""Shared fixtures: small synthetic SparseChem-format partners, one torch thread per test.

One thread keeps these tiny models fast and repeatable on a shared 2-core machine (OpenMP
synchronisation dominates tiny ops when other processes compete for the cores).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pharmafl.model import write_synthetic_prepared


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


SMALL = dict(n_rows=600, n_features=512, n_cls_tasks=8, n_reg_tasks=3, label_density=0.3)


@pytest.fixture(scope="session")
def small_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A partner folder with a small synthetic ``prepared/`` (read-only for tests)."""
    root = tmp_path_factory.mktemp("partner")
    write_synthetic_prepared(root / "prepared", seed=1, **SMALL)
    return root
