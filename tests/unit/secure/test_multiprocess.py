"""Each partner in its own process; only a folder store (and key files) in between."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pharmafl.secure import (
    ExchangeStore,
    QuantizationConfig,
    SecAggServer,
    generate_identity,
    load_identity,
)
from pharmafl.secure.identity import create_roster_file, private_key_path, public_key_path

PARTNER = """
import sys
import numpy as np
from pharmafl.secure import ExchangeStore, SecAggClient, load_identity, load_roster
key, roster, pin, store, round_id, seed, count = sys.argv[1:]
client = SecAggClient(load_identity(key), load_roster(roster, pin), ExchangeStore(store),
                      round_id, pinned_fingerprint=pin)
update = np.random.default_rng(int(seed)).normal(0, 0.05, 500).astype(np.float32)
client.run(update, int(count), timeout_s=120, poll_s=0.02)
"""


@pytest.mark.integration
def test_partners_in_separate_processes(tmp_path) -> None:
    keys = tmp_path / "keys"
    generate_identity(keys, "op", "operator")
    ids = ["alpha", "beta", "gamma"]
    for p in ids:
        generate_identity(keys, p)
    roster = create_roster_file(
        private_key_path(keys, "op"),
        [public_key_path(keys, p) for p in ids],
        tmp_path / "roster.json",
        consortium="mp",
    )
    store_dir = tmp_path / "exchange"
    counts = {"alpha": 100, "beta": 300, "gamma": 600}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PARTNER,
                str(private_key_path(keys, p)),
                str(tmp_path / "roster.json"),
                roster.fingerprint(),
                str(store_dir),
                "mp-1",
                str(i),
                str(counts[p]),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, p in enumerate(ids)
    ]
    cfg = QuantizationConfig(max_examples=1024)
    server = SecAggServer(
        load_identity(private_key_path(keys, "op")),
        roster,
        ExchangeStore(store_dir),
        "mp-1",
        vector_length=500,
        quantization=cfg,
    )
    try:
        result = server.run(stage_timeout_s=120, poll_s=0.02)
    finally:
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    updates = {
        p: np.random.default_rng(i).normal(0, 0.05, 500).astype(np.float32)
        for i, p in enumerate(ids)
    }
    fedavg = sum(counts[p] * updates[p].astype(np.float64) for p in ids) / sum(counts.values())
    assert result.dropped == ()
    assert np.max(np.abs(result.mean - fedavg)) <= cfg.mean_error_bound(3, 1000)
    # Only envelopes ever landed in the store.
    files = [f for f in store_dir.rglob("*") if f.is_file()]
    assert files and all(
        f.name.endswith(".env") and f.read_bytes()[:8] == b"PFLENV1\n" for f in files
    )
