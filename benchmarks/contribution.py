"""Contribution values that mean something: free riders caught, the grand coalition agreeing
with the main run (issue 15, item 3).

For each consortium key (``--keys``), two demo consortia of six Tox21 partners (the same
twelve assays at each; ``--compounds`` each) in the simulator's two valuation groups of three:

- ``riders``: delta, echo and foxtrot join with real compounds and shuffled results
  (``SimulationSpec.free_riders``);
- ``control``: the same partners with their true results.

Each runs the demo's pipeline: local-only baselines (early-stopped), the main federated run
(secure aggregation, ``--rounds`` rounds of 2 local epochs, no early stop) and a contribution
study whose coalitions get the main run's budget (exact Shapley over the two groups, members'
gains with their standard errors over their test tasks). Per run it prints each group's
Shapley value with its 95 % interval and checks:

- riders: the free riders come out last with an interval at or below 0, the genuine group's
  interval above 0 ("caught");
- both: v(N) agrees with the main run's measured gain (mean over all partners of federated −
  local test AUC-PR): same sign, inside v(N)'s interval ("agrees").

    .venv/bin/python benchmarks/contribution.py                  # 3 keys × 2 consortia
    .venv/bin/python benchmarks/contribution.py --keys 0 --no-control
    .venv/bin/python benchmarks/contribution.py --study-rounds 1   # the old truncated study

Prints one JSON line per run and a table; ``--out`` writes the JSON. Needs the full Tox21
file (``../shared/data`` or ``PHARMAFL_DATA_DIR``) for more than 1,000 compounds a partner.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from quality import _key_file, _mean_ci

from pharmafl.accounting import ContributionResult
from pharmafl.demo import DemoConfig, run_demo

RIDERS = ("delta", "echo", "foxtrot")


def config(
    seed: int, riders: bool, compounds: int, rounds: int, work: Path, study_rounds: int | None
) -> DemoConfig:
    """The demo recipe of the free-rider test (tests/unit/flows/test_free_rider.py); the
    study gets the main run's budget unless ``study_rounds`` truncates it."""
    return DemoConfig(
        dataset="tox21",
        target_family=None,
        partners=6,
        max_compounds=compounds,
        free_riders=RIDERS if riders else (),
        seed=seed,
        key_file=_key_file(work, seed),
        hidden=128,
        dropout=0.2,
        batch_size=64,
        local_epochs=30,
        rounds=rounds,
        round_epochs=2.0,
        fed_patience=rounds,
        head_finetune_epochs=3,
        study_rounds=study_rounds,
        eval_fold_min=3,
        workers=1,
    )


def run_one(
    seed: int, riders: bool, compounds: int, rounds: int, work: Path, study_rounds: int | None
) -> dict[str, Any]:
    out = work / f"{'riders' if riders else 'control'}-key{seed}"
    t0 = time.perf_counter()
    cfg = config(seed, riders, compounds, rounds, work, study_rounds)
    result = run_demo(out, cfg, say=lambda _: None)
    res = ContributionResult.model_validate_json((out / "operator/contribution.json").read_text())
    assert res.shapley is not None and res.groups is not None
    genuine, rider = "alpha+bravo+charlie", "delta+echo+foxtrot"
    ci = res.shapley_ci or {}
    main = result.summary.main_run_utility()
    assert main is not None  # every partner of the study is in the summary
    v_ci = res.grand_coalition_ci
    row: dict[str, Any] = {
        "case": "riders" if riders else "control",
        "key": seed,
        "study_rounds": study_rounds or rounds,
        "shapley": res.shapley,
        "shapley_ci": ci,
        "grand_coalition": res.grand_coalition_utility,
        "grand_coalition_ci": v_ci,
        "leave_one_out": res.leave_one_out,
        "main_run_gain": main,
        "agrees": bool(
            v_ci is not None
            and v_ci[0] <= main <= v_ci[1]
            and (main > 0) == (res.grand_coalition_utility > 0)
        ),
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if riders and ci:
        row["caught"] = bool(
            min(res.shapley, key=res.shapley.__getitem__) == rider
            and ci[rider][0] <= 0.0
            and ci[genuine][0] > 0.0
        )
    return row


def _fmt(row: dict[str, Any], group: str) -> str:
    lo, hi = row["shapley_ci"].get(group, (math.nan, math.nan))
    return f"{row['shapley'][group]:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | key | alpha+bravo+charlie | delta+echo+foxtrot | v(N) [95 %] | main run | "
        "agrees | caught |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v = r["grand_coalition_ci"] or (math.nan, math.nan)
        lines.append(
            f"| {r['case']} | {r['key']} | {_fmt(r, 'alpha+bravo+charlie')} | "
            f"{_fmt(r, 'delta+echo+foxtrot')} | {r['grand_coalition']:+.4f} "
            f"[{v[0]:+.4f}, {v[1]:+.4f}] | {r['main_run_gain']:+.4f} | {r['agrees']} | "
            f"{r.get('caught', '–')} |"
        )
    for case in ("riders", "control"):
        mine = [r for r in rows if r["case"] == case]
        if len(mine) > 1:
            for g in ("alpha+bravo+charlie", "delta+echo+foxtrot"):
                m, lo, hi = _mean_ci([r["shapley"][g] for r in mine])
                lines.append(f"{case}: {g} mean over keys {m:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--compounds", type=int, default=1000, help="Per partner (cap).")
    ap.add_argument("--rounds", type=int, default=8, help="Main run and every coalition.")
    ap.add_argument(
        "--study-rounds",
        type=int,
        help="A fixed, truncated budget per coalition (default: the main run's).",
    )
    ap.add_argument("--no-control", action="store_true", help="Only the free-rider runs.")
    ap.add_argument("--out", type=Path, help="Write every run's JSON here.")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="pharmafl-contribution-") as tmp:
        for seed in args.keys:
            for riders in (True,) if args.no_control else (True, False):
                row = run_one(
                    seed, riders, args.compounds, args.rounds, Path(tmp), args.study_rounds
                )
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
