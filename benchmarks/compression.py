"""Compressed updates under secure aggregation: bytes, time and the federated gain (issue 16,
item 1).

For each consortium key (``--seeds``: one key per seed, so folds are the same for every ring
compared on that seed — a paired comparison) and each ring (``--ring-bits``, default 32 and
8), runs the default demo consortium (4 FS-Mol kinase partners, hidden 500, up to 8 rounds;
no contribution study) and reads:

- the message: the bytes of one masked update in the exchange store ÷ the float32 trunk
  update (4 bytes per trunk parameter);
- the median round wall time (ledger: ``round_started`` → ``aggregate_applied``);
- each partner's federated − local test AUC-PR (and ROC-AUC), from the report.

Then, per ring, the mean gain over partners and seeds with a 95 % t-interval over seeds, and
the paired difference to the 32-bit ring. Target (issue 16): message ≤ 0.25×, mean AUC-PR gain
within ± 0.003 of the 32-bit ring's.

    .venv/bin/python benchmarks/compression.py                      # 3 keys × (32, 8)
    .venv/bin/python benchmarks/compression.py --seeds 0 --quick    # a smoke run

Prints one JSON line per run and a table; ``--out`` writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import numpy as np
from quality import _key_file, _mean_ci
from rounds import _round_windows

from pharmafl.demo import DemoConfig, run_demo
from pharmafl.report.build import write_report

QUICK = {"max_compounds": 800, "rounds": 3, "local_epochs": 5}


def _message_ratio(out: Path) -> float:
    """Bytes of the largest masked update left in the store ÷ 4 bytes per trunk parameter."""
    with np.load(out / "operator" / "final_trunk.npz") as z:
        params = sum(int(z[k].size) for k in z.files)
    sizes = [p.stat().st_size for p in (out / "exchange").rglob("*") if "masked" in p.parts]
    return max(sizes) / (4 * params) if sizes else math.nan


def run_one(bits: int, seed: int, quick: bool, work: Path) -> dict[str, Any]:
    out = work / f"ring{bits}-seed{seed}"
    cfg = DemoConfig.model_validate(
        {
            "seed": seed,
            "key_file": _key_file(work, seed),
            "contribution": False,
            "ring_bits": bits,
        }
        | (QUICK if quick else {})
    )
    t0 = time.perf_counter()
    run_demo(out, cfg, say=lambda _: None, force=True)
    wall = time.perf_counter() - t0
    summary = json.loads(Path(write_report(out).summary_path).read_text())
    rounds = [b - a for a, b in _round_windows(out)]
    partners = {
        p["name"]: {
            "auc_pr_gain": p["federated"]["auc_pr"] - p["local"]["auc_pr"],
            "roc_auc_gain": p["federated"]["roc_auc"] - p["local"]["roc_auc"],
        }
        for p in summary["partners"]
    }
    return {
        "ring_bits": bits,
        "seed": seed,
        "quick": quick,
        "message_ratio": round(_message_ratio(out), 5),
        "rounds": len(rounds),
        "round_wall_s_median": round(statistics.median(rounds), 2) if rounds else None,
        "demo_wall_s": round(wall, 1),
        "mean_auc_pr_gain": statistics.fmean(v["auc_pr_gain"] for v in partners.values()),
        "partners": partners,
    }


def table(runs: list[dict[str, Any]]) -> str:
    """Per ring: message ratio, round time, mean gain ± 95 % interval over seeds, and the
    paired difference to the 32-bit ring (same keys)."""
    by = {(r["ring_bits"], r["seed"]): r for r in runs}
    rings = sorted({r["ring_bits"] for r in runs}, reverse=True)
    lines = [
        "ring  message  round s  AUC-PR gain [95 % CI over keys]     vs 32-bit [95 % CI]",
    ]
    for bits in rings:
        mine = [r for r in runs if r["ring_bits"] == bits]
        gain = _mean_ci([r["mean_auc_pr_gain"] for r in mine])
        diff = _mean_ci(
            [
                r["mean_auc_pr_gain"] - by[(32, r["seed"])]["mean_auc_pr_gain"]
                for r in mine
                if (32, r["seed"]) in by
            ]
        )
        lines.append(
            f"{bits:>4}  {statistics.fmean(r['message_ratio'] for r in mine):>7.4f}  "
            f"{statistics.fmean(r['round_wall_s_median'] or math.nan for r in mine):>7.1f}  "
            f"{gain[0]:+.4f} [{gain[1]:+.4f}, {gain[2]:+.4f}]  "
            f"{diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ring-bits", type=int, nargs="+", default=[32, 8], choices=(8, 16, 32, 64))
    ap.add_argument("--quick", action="store_true", help="Small partners, 3 rounds.")
    ap.add_argument("--work", type=Path, default=None, help="Keep the runs here.")
    ap.add_argument("--out", type=Path, default=None, help="Write the JSON here.")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="pharmafl-compression-"))
    runs = []
    for seed in args.seeds:
        for bits in args.ring_bits:
            run = run_one(bits, seed, args.quick, work)
            print(json.dumps(run), flush=True)
            runs.append(run)
    print(table(runs))
    if args.out:
        args.out.write_text(json.dumps(runs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
