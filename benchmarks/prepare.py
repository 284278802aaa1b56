"""Benchmark the partner preparation pipeline on FS-Mol, against TUNER's chemistry on this machine.

Builds one partner of ``--compounds`` random FS-Mol compounds with all their measurements
(a ChEMBL-style CSV in nM), then runs the full ``prepare`` (ingest → standardize →
describe → fold → tasks → matrices → write) at each worker count in a fresh subprocess, and
prints compounds/s, seconds and the peak RSS of the whole process tree (sampled every 0.1 s).

Reference (developers' brief): MELLODDY-TUNER 3.0.2, 2 processes, 20,000 random FS-Mol
compounds with all their 46 k measurements: 180 s ≈ 110 compounds/s, peak RSS 0.42 GB
(standardization 117 s, fingerprints 9 s, scaffold folds 43 s, activity steps ~10 s).
Target: ≥ 220 compounds/s; all 196 k FS-Mol compounds in < 4 GiB peak RSS (``--all``).

That 110/s was measured once, and this machine's speed varies by about ±25 % from hour to
hour. So, right after each pharmafl run, the same compounds (the export's unique SMILES that
ingest passes on to chemistry) go through TUNER's literal per-compound chemistry
(:func:`pharmafl.chem.tuner_reference.tuner_prepare_one`) in a fresh subprocess with
``multiprocessing.Pool(workers)``, and the benchmark prints:

- the *same-machine ratio*, pharmafl compounds/s ÷ TUNER-literal chemistry compounds/s. It is
  a lower bound that favours TUNER: the literal reference leaves out TUNER's file I/O, pandas
  steps and activity processing (about 11 of its 180 s, ~6 %);
- a *calibrated TUNER end-to-end estimate*, the literal chemistry seconds × 180/169 (169 s
  of TUNER's 180 s were its chemistry steps), and pharmafl's ratio against that.

``--refresh`` measures incremental preparation instead (issue 16, item 5): a full ``prepare``
of ``--compounds`` compounds (the cache cold), then the same export plus ``--added`` (5 %) new
compounds with their measurements, prepared again with the cache warm; it prints both times,
their ratio (target ≤ 0.10), and whether every output equals a from-scratch ``--no-cache`` run
on the final export in a fresh copy of the partner (byte for byte; ``manifest.json``,
``run_report.json`` and ``summary.txt`` compared without their run-specific fields: times,
durations and the ``cached`` count).

Input: FS-Mol from ``pharmafl.common.settings.data_dir`` (``PHARMAFL_DATA_DIR``, else
``../shared/data``, else the shipped extract ``data/extract/``, whose 34,819 structures
suffice for 21,000).

Usage::

    .venv/bin/python benchmarks/prepare.py --compounds 20000 --workers 1 2 [--all] [--json]
        [--no-tuner-reference]
    .venv/bin/python benchmarks/prepare.py --refresh [--compounds 20000] [--added 0.05]
        [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

TUNER_COMPOUNDS_PER_S = 110.0
#: TUNER's measured end-to-end seconds, and the part of them spent in per-compound chemistry
#: (standardization 117 s + fingerprints 9 s + scaffold folds 43 s).
TUNER_SECONDS = 180.0
TUNER_CHEMISTRY_SECONDS = 169.0

_CHILD = """
import json, sys, time
from pharmafl.partner.prepare import PrepareOptions, prepare_partner
cache = sys.argv[3:] != ["no-cache"]
t = time.perf_counter()
r = prepare_partner(sys.argv[1], PrepareOptions(workers=int(sys.argv[2]), cache=cache))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "steps": {s.name: s.seconds for s in r.steps},
                  "cached": sum(int(s.counts.get("cached", 0)) for s in r.steps),
                  "compounds": r.manifest.counts.compounds_input,
                  "rows": r.manifest.counts.descriptor_vectors,
                  "cls_tasks": r.manifest.counts.classification_tasks,
                  "reg_tasks": r.manifest.counts.regression_tasks}))
"""

# TUNER's literal chemistry over exactly the structures pharmafl's chemistry step gets: the
# export's unique SMILES less those ingest drops (no accepted measurement), read before the
# clock starts. Forked workers inherit the imports, so pool start-up costs next to nothing
# (in TUNER's favour).
_TUNER_CHILD = """
import functools, json, multiprocessing, pathlib, sys, time
from pharmafl.chem.tuner_reference import tuner_prepare_one
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import load_consortium_key
from pharmafl.ingest import ingest_partner
root, workers = pathlib.Path(sys.argv[1]), int(sys.argv[2])
smiles = ingest_partner(root, workers=1).t2["smiles"].tolist()
params = ConsortiumParameters.model_validate_json((root / "consortium.json").read_text())
work = functools.partial(
    tuner_prepare_one, key=load_consortium_key(root / "key.json").reveal(), params=params
)
t = time.perf_counter()
with multiprocessing.get_context("fork").Pool(workers) as pool:
    accepted = sum(r is not None for r in pool.imap_unordered(work, smiles, chunksize=64))
print(json.dumps({"seconds": time.perf_counter() - t, "compounds": len(smiles),
                  "accepted": accepted}))
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


def _run_child(
    code: str, partner_dir: Path, workers: int, *extra: str
) -> tuple[dict[str, Any], int]:
    """Run ``code`` in a fresh interpreter; return its last JSON line and the peak tree RSS."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(partner_dir), str(workers), *extra],
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
        raise SystemExit(f"benchmark child failed with exit code {proc.returncode}")
    res: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return res, peak


def run_one(partner_dir: Path, workers: int, *, cache: bool = False) -> dict[str, Any]:
    """Run one preparation in a subprocess; return its timings and peak tree RSS.

    Without ``cache`` every structure is described (the throughput runs prepare one folder at
    several worker counts: a warm cache would time the second from the first's results).
    """
    res, peak = _run_child(_CHILD, partner_dir, workers, *([] if cache else ["no-cache"]))
    res["workers"] = workers
    res["peak_rss_gib"] = round(peak / 2**30, 3)
    res["compounds_per_s"] = round(res["compounds"] / res["seconds"], 1)
    res["ratio_vs_tuner"] = round(res["compounds_per_s"] / TUNER_COMPOUNDS_PER_S, 2)
    return res


def add_tuner_reference(res: dict[str, Any], partner_dir: Path) -> None:
    """Time TUNER's literal chemistry on the same compounds and workers; add it to ``res``."""
    ref, peak = _run_child(_TUNER_CHILD, partner_dir, int(res["workers"]))
    rate = ref["compounds"] / ref["seconds"]
    calibrated = ref["seconds"] * TUNER_SECONDS / TUNER_CHEMISTRY_SECONDS
    res["tuner_literal_seconds"] = round(ref["seconds"], 2)
    res["tuner_literal_compounds"] = ref["compounds"]
    res["tuner_literal_accepted"] = ref["accepted"]
    res["tuner_literal_compounds_per_s"] = round(rate, 1)
    res["tuner_literal_peak_rss_gib"] = round(peak / 2**30, 3)
    res["same_machine_ratio"] = round(res["compounds_per_s"] / rate, 2)
    res["tuner_calibrated_seconds"] = round(calibrated, 2)
    res["tuner_calibrated_compounds_per_s"] = round(ref["compounds"] / calibrated, 1)
    res["ratio_vs_tuner_calibrated"] = round(
        res["compounds_per_s"] * calibrated / ref["compounds"], 2
    )


def _tuner_lines(r: dict[str, Any]) -> str:
    return (
        f"        TUNER-literal chemistry, same {r['tuner_literal_compounds']} compounds, "
        f"{r['workers']} worker(s): {r['tuner_literal_seconds']:7.1f} s, "
        f"{r['tuner_literal_compounds_per_s']:7.1f} compounds/s, "
        f"peak RSS {r['tuner_literal_peak_rss_gib']:.2f} GiB\n"
        f"        same-machine ratio = pharmafl compounds/s / TUNER-literal chemistry "
        f"compounds/s = {r['same_machine_ratio']:.2f}× (LOWER BOUND, FAVOURABLE TO TUNER: the "
        f"literal reference omits TUNER's file I/O, pandas steps and activity processing, "
        f"~6% of its 180 s)\n"
        f"        calibrated TUNER end-to-end estimate = literal chemistry seconds × 180/169 = "
        f"{r['tuner_calibrated_seconds']:.1f} s "
        f"({r['tuner_calibrated_compounds_per_s']:.1f} compounds/s); "
        f"pharmafl = {r['ratio_vs_tuner_calibrated']:.2f}× that"
    )


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


#: What may differ between two preparations of the same input: when and how long they ran,
#: and how much came from the cache. Everything else must be byte-identical.
_RUN_SPECIFIC = ("created_at", "wall_seconds")


def _comparable(name: str, text: str) -> Any:
    """A run document without its run-specific fields."""
    if name == "summary.txt":  # the header's date and seconds, each step's seconds, the cache
        lines = text.splitlines()[1:]
        return [
            re.sub(r"(, )?cached=\d+|\s+[0-9.]+ s\b", "", ln)
            for ln in lines
            if not ln.startswith("cache: ")
        ]
    doc = json.loads(text)
    manifest = doc.get("manifest", doc)
    for k in _RUN_SPECIFIC:
        manifest.pop(k, None)
    for step in doc.get("steps", []):
        step.pop("seconds", None)
        step["counts"].pop("cached", None)
    return doc


def differing_outputs(a: Path, b: Path) -> list[str]:
    """Files of ``prepared/`` folders ``a`` and ``b`` that differ (beyond run-specific fields)."""
    names = sorted({p.name for p in a.iterdir()} | {p.name for p in b.iterdir()})
    out = []
    for name in names:
        fa, fb = a / name, b / name
        if not (fa.is_file() and fb.is_file()):
            out.append(name)
        elif name in ("manifest.json", "run_report.json", "summary.txt"):
            ta, tb = fa.read_text(encoding="utf-8"), fb.read_text(encoding="utf-8")
            if _comparable(name, ta) != _comparable(name, tb):
                out.append(name)
        elif not filecmp.cmp(fa, fb, shallow=False):
            out.append(name)
    return out


def run_refresh(
    root: Path, compounds: int, added: float, workers: int, seed: int
) -> dict[str, Any]:
    """Full prepare of ``compounds`` compounds, then a refresh with ``added`` × more; compare
    the refresh's outputs with a from-scratch run on the final export."""
    import numpy as np
    import pandas as pd

    n_new = round(compounds * added)
    partner = make_partner(root, compounds + n_new, seed)
    export = partner / "raw" / "export.csv"
    final = pd.read_csv(export, dtype=str, keep_default_na=False)
    ids = final["compound_id"].drop_duplicates().to_numpy()
    new = np.random.default_rng(seed + 1).choice(ids, size=n_new, replace=False)
    final.to_csv(root / "final.csv", index=False)
    final[~final["compound_id"].isin(new)].to_csv(export, index=False)
    full = run_one(partner, workers, cache=True)  # cold: every structure is described
    shutil.copyfile(root / "final.csv", export)  # the same export plus the new compounds
    refresh = run_one(partner, workers, cache=True)
    scratch = root / "scratch"
    shutil.copytree(partner, scratch, ignore=shutil.ignore_patterns("prepared", "cache"))
    (scratch / "key.json").chmod(0o600)
    reference = run_one(scratch, workers, cache=False)
    differing = differing_outputs(partner / "prepared", scratch / "prepared")
    return {
        "workers": workers,
        "compounds": full["compounds"],
        "compounds_final": refresh["compounds"],
        "added": refresh["compounds"] - full["compounds"],
        "full_seconds": round(full["seconds"], 2),
        "refresh_seconds": round(refresh["seconds"], 2),
        "refresh_cached": refresh["cached"],
        "ratio": round(refresh["seconds"] / full["seconds"], 3),
        "scratch_seconds": round(reference["seconds"], 2),
        "ratio_vs_scratch": round(refresh["seconds"] / reference["seconds"], 3),
        "identical": not differing,
        "differing_files": differing,
        "full_steps": full["steps"],
        "refresh_steps": refresh["steps"],
        "peak_rss_gib": round(max(full["peak_rss_gib"], refresh["peak_rss_gib"]), 3),
    }


def _refresh_lines(r: dict[str, Any]) -> str:
    same = (
        "IDENTICAL to a from-scratch --no-cache run on the final export (every file byte "
        "for byte; manifest, run report and summary without their times and cached count)"
        if r["identical"]
        else f"DIFFERENT from a from-scratch run: {r['differing_files']}"
    )
    return (
        f"full prepare, {r['compounds']} compounds, cache cold, {r['workers']} worker(s): "
        f"{r['full_seconds']:7.1f} s; steps {r['full_steps']}\n"
        f"refresh, {r['compounds_final']} compounds (+{r['added']} new, "
        f"{r['refresh_cached']} from the cache): {r['refresh_seconds']:7.1f} s; "
        f"steps {r['refresh_steps']}\n"
        f"refresh / full = {r['ratio']:.3f} (target <= 0.10); from-scratch run on the final "
        f"export {r['scratch_seconds']:.1f} s, refresh / that = {r['ratio_vs_scratch']:.3f}; "
        f"peak RSS {r['peak_rss_gib']:.2f} GiB\n"
        f"outputs: {same}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--compounds", type=int, default=20000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--all", action="store_true", help="Also prepare all FS-Mol compounds (2 workers)."
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--tuner-reference",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="After each pharmafl run, time TUNER's literal chemistry on the same compounds "
        "with the same workers (default on; not for --all).",
    )
    ap.add_argument("--json", action="store_true", help="One JSON line per run.")
    ap.add_argument(
        "--refresh",
        action="store_true",
        help="Measure incremental preparation: a full run, then a refresh with --added more "
        "compounds and the cache warm (largest --workers); outputs checked against a "
        "from-scratch run.",
    )
    ap.add_argument(
        "--added", type=float, default=0.05, help="--refresh: new compounds, as a fraction."
    )
    args = ap.parse_args()
    if args.refresh:
        with tempfile.TemporaryDirectory(prefix="pharmafl-bench-") as tmp:
            r = run_refresh(Path(tmp), args.compounds, args.added, max(args.workers), args.seed)
        print(json.dumps(r) if args.json else _refresh_lines(r))
        if not r["identical"]:
            raise SystemExit(1)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="pharmafl-bench-") as tmp:
        partner = make_partner(Path(tmp), args.compounds, args.seed)
        for w in args.workers:  # back to back, so both see the same machine state
            res = run_one(partner, w)
            if args.tuner_reference:
                add_tuner_reference(res, partner)
            results.append(res)
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
            if "same_machine_ratio" in r:
                print(_tuner_lines(r))
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
