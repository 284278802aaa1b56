"""Benchmark the partner preparation pipeline on FS-Mol.

Builds one partner of ``--compounds`` random FS-Mol compounds with all their measurements
(a ChEMBL-style CSV in nM), then runs the full ``prepare`` (ingest → standardize →
describe → fold → tasks → matrices → write) at each worker count in a fresh subprocess, and
prints compounds/s, seconds and the peak RSS of the whole process tree (sampled every 0.1 s).

Reference (developers' brief): MELLODDY-TUNER 3.0.2, 2 processes, 20,000 random FS-Mol
compounds with all their 46 k measurements: 180 s ≈ 110 compounds/s, peak RSS 0.42 GB.
Target: ≥ 220 compounds/s; all 196 k FS-Mol compounds in < 4 GiB peak RSS (``--all``).

Usage::

    .venv/bin/python benchmarks/prepare.py --compounds 20000 --workers 1 2 [--all] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

TUNER_COMPOUNDS_PER_S = 110.0

_CHILD = """
import json, sys, time
from pharmafl.partner.prepare import PrepareOptions, prepare_partner
t = time.perf_counter()
r = prepare_partner(sys.argv[1], PrepareOptions(workers=int(sys.argv[2])))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "steps": {s.name: s.seconds for s in r.steps},
                  "compounds": r.manifest.counts.compounds_input,
                  "rows": r.manifest.counts.descriptor_vectors,
                  "cls_tasks": r.manifest.counts.classification_tasks,
                  "reg_tasks": r.manifest.counts.regression_tasks}))
"""


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def run_one(partner_dir: Path, workers: int) -> dict[str, object]:
    """Run one preparation in a subprocess; return its timings and peak tree RSS."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(partner_dir), str(workers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(ps))
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"prepare failed with exit code {proc.returncode}")
    res = json.loads(out.strip().splitlines()[-1])
    res["workers"] = workers
    res["peak_rss_gib"] = round(peak / 2**30, 3)
    res["compounds_per_s"] = round(res["compounds"] / res["seconds"], 1)
    res["ratio_vs_tuner"] = round(res["compounds_per_s"] / TUNER_COMPOUNDS_PER_S, 2)
    return res


def make_partner(root: Path, compounds: int | None, seed: int) -> Path:
    """One partner holding ``compounds`` random FS-Mol compounds (None = all) with all their
    measurements, as a ChEMBL-style CSV (``relation`` refers to ``value_nM``)."""
    import numpy as np
    import pandas as pd

    from pharmafl.common.params import ConsortiumParameters
    from pharmafl.common.secret import write_new_consortium_key
    from pharmafl.common.settings import data_dir

    df = pd.read_csv(data_dir("fsmol") / "fsmol_chembl27_measurements.csv.gz")
    smiles = df["smiles"].drop_duplicates().to_numpy()
    if compounds is not None and compounds < len(smiles):
        smiles = np.random.default_rng(seed).choice(smiles, size=compounds, replace=False)
    ids = pd.Series([f"C{i:07d}" for i in range(len(smiles))], index=smiles)
    df = df[df["smiles"].isin(ids.index)]
    out = root / ("fsmol-all" if compounds is None else f"fsmol-{compounds}")
    (out / "raw").mkdir(parents=True)
    pd.DataFrame(
        {
            "compound_id": ids.loc[df["smiles"]].to_numpy(),
            "smiles": df["smiles"].to_numpy(),
            "assay_id": df["assay_chembl_id"].to_numpy(),
            "relation": df["relation"].to_numpy(),
            "value_nM": df["value_nM"].to_numpy(),
        }
    ).to_csv(out / "raw" / "export.csv", index=False)
    (out / "partner.toml").write_text(
        'name = "bench"\n\n[assay_defaults]\nassay_type = "OTHER"\n\n'
        '[[structures]]\npath = "raw/export.csv"\nallow_repeated_ids = true\n'
        '[structures.columns]\ninput_compound_id = "compound_id"\nsmiles = "smiles"\n\n'
        '[[activities]]\npath = "raw/export.csv"\nunit = "nM"\n'
        '[activities.columns]\ninput_compound_id = "compound_id"\n'
        'input_assay_id = "assay_id"\nstandard_qualifier = "relation"\n'
        'standard_value = "value_nM"\n'
    )
    (out / "consortium.json").write_text(ConsortiumParameters().model_dump_json(indent=2))
    write_new_consortium_key(out / "key.json")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--compounds", type=int, default=20000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--all", action="store_true", help="Also prepare all FS-Mol compounds (2 workers)."
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="One JSON line per run.")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="pharmafl-bench-") as tmp:
        partner = make_partner(Path(tmp), args.compounds, args.seed)
        for w in args.workers:
            results.append(run_one(partner, w))
        if args.all:
            full = make_partner(Path(tmp) / "all", None, args.seed)
            results.append(run_one(full, max(args.workers)))
    for r in results:
        if args.json:
            print(json.dumps(r))
        else:
            print(
                f"{r['compounds']:>7} compounds, {r['workers']} worker(s): {r['seconds']:7.1f} s, "
                f"{r['compounds_per_s']:7.1f} compounds/s "
                f"({r['ratio_vs_tuner']:.2f}× TUNER's 110/s), "
                f"peak RSS {r['peak_rss_gib']:.2f} GiB; steps {r['steps']}"
            )
    same = [r for r in results if r["compounds"] == results[0]["compounds"]]
    one = next((r for r in same if r["workers"] == 1), None)
    for r in same:
        if one is not None and r["workers"] > 1:
            eff = float(r["compounds_per_s"]) / (r["workers"] * float(one["compounds_per_s"]))
            line = {"workers": r["workers"], "parallel_efficiency": round(eff, 3)}
            print(
                json.dumps(line)
                if args.json
                else f"parallel efficiency at {r['workers']} "
                f"workers: {eff:.0%} of {r['workers']}× the 1-worker rate"
            )


if __name__ == "__main__":
    main()
