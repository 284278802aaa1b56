"""benchmarks/secagg.py runs a real round and prints the JSON line the issue asks for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "secagg.py"


def test_benchmark_prints_one_json_line() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--partners",
            "4",
            "--params",
            "20000",
            "--dropouts",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    for key in (
        "mask_mb_per_s",
        "unmask_seconds",
        "size_overhead",
        "partner_seconds_max",
        "server_seconds",
    ):
        assert doc[key] > 0
    assert doc["exact"] is True and doc["dropouts_recovered"] is True
    assert doc["size_overhead"] <= 1.1
