"""Fixtures shared across test packages: a small simulated FS-Mol consortium."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


#: The simulated test consortia's key. A fixed key makes their folds, quorums and scores the
#: same on every run (a fresh random key changed which tiny validation folds held an
#: evaluable task from run to run); the key's own handling is tested in tests/unit/simulate.
#: Same shape as a generated key (32 bytes, hex): sha256(b"pharmafl test suite consortium key").
TEST_CONSORTIUM_KEY = (
    '{"key": "73677c9cfa2c3ec9720496c8116f5c8ce52835b21f38dbdddb675a6772e161d4"}\n'
)


@pytest.fixture(scope="session")
def consortium_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key file (mode 600) holding :data:`TEST_CONSORTIUM_KEY`."""
    path = tmp_path_factory.mktemp("key") / "key.json"
    path.write_text(TEST_CONSORTIUM_KEY)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="session")
def small_consortium(tmp_path_factory: pytest.TempPathFactory, consortium_key_file: Path) -> Path:
    """Three simulated FS-Mol partners (≈300 compounds each), not yet prepared."""
    from pharmafl.simulate import SimulationSpec, simulate_consortium

    out = tmp_path_factory.mktemp("consortium") / "sim"
    simulate_consortium(
        out,
        SimulationSpec(dataset="fsmol", partners=3, max_compounds=300, seed=7),
        workers=1,
        key_file=consortium_key_file,
    )
    return out


@pytest.fixture(scope="session")
def prepared_consortium(small_consortium: Path) -> Path:
    """The small consortium with every partner prepared (library call, 1 worker)."""
    from pharmafl.partner import PrepareOptions, prepare_partner

    for partner in sorted((small_consortium / "partners").iterdir()):
        prepare_partner(partner, PrepareOptions(workers=1))
    return small_consortium
