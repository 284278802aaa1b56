"""The consortium-benefit benchmark (issue 15, item 1): does joining pay off, per partner?

Every FS-Mol kinase assay (ChEMBL 27: 1,322 assays, ≈ 31 k compounds, ≈ 146 k measurements)
is split by assay into 4 partners (the simulator's seeded hash, seed 0: the same partners
for every key). For each consortium key (``--keys``: other scaffold folds, another held-out
set) the benchmark

1. holds out a **new-chemistry set**: every compound whose Murcko scaffold's keyed hash
   falls in the lowest ``--new-share`` (10 %), acyclic compounds kept; no partner trains on
   those scaffolds (a partner scoring its models on compounds made after training);
2. runs the demo's pipeline on the rest (its default recipe, partners uncapped): simulate and
   prepare once per key (``pharmafl.demo.prepare_demo``), then, on a copy per setting
   (``train_demo``), local-only baselines (early-stopped), federated training with secure
   aggregation, pooled reference;
3. scores each partner's local and federated models on its test fold (per-task metrics
   files) and on the new-chemistry measurements of its own assays, written in its own export
   shape and read by ``pharmafl evaluate`` (the partner's command).

Per partner it prints federated − local for classification (AUC-PR, ROC-AUC) and regression
(R², censor-aware RMSE: lower is better), with two 95 % intervals:

- over tasks and keys: each task's gain averaged over the keys that scored it, then a
  t-interval over the partner's tasks (key noise is inside every task's value);
- over keys: a t-interval over the partner's per-key mean gains (K − 1 degrees of freedom:
  wide with 3 keys; a shared fold effect is inside it);

and the share of tasks improved. ``--sweep`` runs the recipe settings of item 2 on the first
key, each against the default (local and federated only, no pooled), and prints a table per
setting; the data settings (another training quorum, the auxiliary public partner: FS-Mol's
non-kinase assays, held out of the new chemistry like everyone's) prepare their own
consortium and run when named. With a public partner, each partner is also compared with its
network trained alone on its own and the public data (what it gets without joining).

    .venv/bin/python benchmarks/consortium.py                      # 3 keys, ≈ 25 min
    .venv/bin/python benchmarks/consortium.py --keys 0 --sweep     # one key, the sweep ≈ 25 min
    .venv/bin/python benchmarks/consortium.py --keys 0 --sweep --no-main --settings \\
        "public partner, 20k compounds"                            # a data setting ≈ 13 min
    .venv/bin/python benchmarks/consortium.py --table runs.json    # reprint earlier runs

Prints one JSON line per run and the tables; ``--out`` writes every run as JSON. Needs the
FS-Mol data (``../shared/data`` or ``PHARMAFL_DATA_DIR``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import numpy as np
import pandas as pd
from quality import _key_file, _mean_ci

from pharmafl.evaluation import paired_task_gains
from pharmafl.evaluation.documents import MetricsReport

#: The metrics compared, per task type, and whether higher is better.
METRICS: dict[str, dict[str, bool]] = {
    "classification": {"auc_pr": True, "roc_auc": True},
    "regression": {"r2": True, "rmse": False},
}
#: The consortium: every kinase assay, 4 partners, no cap (DemoConfig's recipe otherwise).
CONSORTIUM: dict[str, Any] = {
    "dataset": "fsmol",
    "partners": 4,
    "max_compounds": 1_000_000,
    "seed": 0,
    "contribution": False,
    "workers": 0,
}
#: Item 2's recipe settings, each a DemoConfig override measured against the default.
SWEEP: dict[str, dict[str, Any]] = {
    "default": {},
    "hidden 2000, dropout 0.6": {"hidden": 2000, "dropout": 0.6},
    "1 local epoch a round": {"round_epochs": 1.0},
    "16 rounds, patience 4": {"rounds": 16, "fed_patience": 4},
    "FedProx mu 0.01": {"prox_mu": 0.01},
    "FedAvgM": {"server_optimizer": "fedavgm"},
    "FedAdam": {"server_optimizer": "fedadam"},
    "no head fine-tuning": {"head_finetune_epochs": 0},
    "best-round trunk": {"final_trunk": "best"},
    # data settings (each prepares its own consortium: ≈ 10-13 min; run them by name):
    # more (smaller) assays become tasks, their compounds stay
    "task quorum 10": {"task_quorum": 10},
    # item 2's auxiliary public partner: FS-Mol assays of the other target families
    "public partner, 20k compounds": {"auxiliary_compounds": 20_000, "auxiliary_source": "public"},
    "public partner, 5k compounds": {"auxiliary_compounds": 5_000, "auxiliary_source": "public"},
    # the same 20k public partner, its FedAvg weight capped near a partner's training rows
    "public partner, 20k compounds, weight cap 3000": {
        "auxiliary_compounds": 20_000,
        "auxiliary_source": "public",
        "weight_cap": 3_000,
    },
}
#: The settings ``--sweep`` runs unless ``--settings`` names others: the recipe's, which
#: train copies of one prepared consortium (the data settings prepare their own).
RECIPE_SETTINGS = [name for name in SWEEP if not set(SWEEP[name]) & {"task_quorum",
                   "auxiliary_compounds", "auxiliary_source"}]  # fmt: skip
#: ``auxiliary_source`` of a setting that means FS-Mol's non-kinase assays (resolved per key
#: to a file without the key's new-chemistry scaffolds, :func:`public_file`).
PUBLIC = "public"


def _scaffold(smiles: str) -> str:
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = Chem.MolFromSmiles(smiles)
    return "" if mol is None else MurckoScaffold.MurckoScaffoldSmiles(mol=mol)


def fsmol_file(folder: Path, kinase: bool = True) -> Path:
    """Every FS-Mol kinase measurement (``kinase=False``: every other one), in FS-Mol's own
    columns, with each compound's Murcko scaffold (computed once, cached in ``folder``)."""
    path = folder / f"fsmol-{'kinase' if kinase else 'other'}-scaffolds.csv.gz"
    if path.is_file():
        return path
    from pharmafl.common.settings import data_dir

    fsmol = data_dir("fsmol")
    meta = pd.read_csv(fsmol / "fsmol_assay_metadata.csv")
    keep = set(meta.loc[meta["protein_super_family"] == "kinase", "assay_chembl_id"])
    rows = pd.read_csv(fsmol / "fsmol_chembl27_measurements.csv.gz")
    rows = rows[rows["assay_chembl_id"].isin(keep) == kinase].reset_index(drop=True)
    scaffolds = {s: _scaffold(s) for s in rows["smiles"].unique()}
    rows["scaffold"] = rows["smiles"].map(scaffolds)
    rows.to_csv(path.with_suffix(".tmp"), index=False, compression="gzip")
    path.with_suffix(".tmp").rename(path)
    return path


def held_out(scaffolds: pd.Series, key: str, share: float) -> np.ndarray:
    """True for rows whose scaffold's keyed hash falls in the lowest ``share``: whole
    scaffolds, so no kept compound shares one; acyclic compounds (no scaffold) are kept."""

    def bucket(s: str) -> float:
        digest = hashlib.sha256(f"{key}\0{s}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    buckets = {s: bucket(s) for s in scaffolds.unique() if s}
    return scaffolds.map(lambda s: bool(s) and buckets[s] < share).to_numpy(dtype=bool)


def split_files(kinase: Path, key_file: str, share: float, work: Path) -> tuple[Path, Path]:
    """``train.csv`` (what the partners hold) and ``new.csv`` (the new chemistry)."""
    rows = pd.read_csv(kinase)
    key = json.loads(Path(key_file).read_text())["key"]
    new = held_out(rows["scaffold"].fillna(""), key, share)
    rows = rows.drop(columns="scaffold")
    train, newf = work / "train.csv", work / "new.csv"
    rows[~new].to_csv(train, index=False)
    rows[new].to_csv(newf, index=False)
    return train, newf


def public_file(work: Path, key_file: str, share: float, folder: Path) -> Path:
    """FS-Mol's non-kinase measurements without the key's new-chemistry scaffolds (the
    auxiliary partner trains on none of the compounds the partners are later scored on)."""
    rows = pd.read_csv(fsmol_file(work, kinase=False))
    key = json.loads(Path(key_file).read_text())["key"]
    new = held_out(rows["scaffold"].fillna(""), key, share)
    path = folder / "public.csv"
    rows[~new].drop(columns="scaffold").to_csv(path, index=False)
    return path


def _deltas(a: Any, b: Any, task_type: str) -> dict[str, dict[str, float]]:
    """Per metric: task label → b − a on the tasks both scored (labels, not column ids: a
    task keeps its label under another key's folds)."""
    return {
        metric: {str(t): v for t, v in paired_task_gains(a, b, metric, task_type, "task").items()}
        for metric in METRICS[task_type]
    }


def _metrics(pdir: Path, model: str) -> MetricsReport:
    """A partner model's metrics document (``local``, ``federated``, … as the partner names
    them; ``pharmafl.model.select.resolve_model`` finds its folder)."""
    from pharmafl.layout import METRICS_FILE
    from pharmafl.model.select import resolve_model

    path = resolve_model(pdir, model).path / METRICS_FILE
    return MetricsReport.model_validate_json(path.read_bytes())


def _test_deltas(a: MetricsReport, b: MetricsReport) -> dict[str, Any]:
    """b − a per task on the test fold, per task type and metric."""
    assert a.test is not None and b.test is not None
    return {t: _deltas(a.test, b.test, t) for t in METRICS}


def partner_deltas(pdir: Path, pooled: Any | None, public: bool) -> dict[str, Any]:
    """One partner's test-fold comparisons, its local and federated metrics read once:
    ``test`` (federated − local), ``pooled`` (pooled − local, given the pooled document's
    entry for it) and, with an auxiliary public partner, ``public_alone`` (the partner alone
    with the public data − local: what it gets without joining) and ``vs_public``
    (federated − that reference)."""
    local, fed = _metrics(pdir, "local"), _metrics(pdir, "federated")
    out = {
        "test": _test_deltas(local, fed),
        "pooled": None if pooled is None else _test_deltas(local, pooled),
    }
    if public:
        from pharmafl.layout import MODELS_DIR
        from pharmafl.model.public import PUBLIC_REFERENCE

        alone = _metrics(pdir, str(pdir / MODELS_DIR / PUBLIC_REFERENCE))
        out |= {"public_alone": _test_deltas(local, alone), "vs_public": _test_deltas(alone, fed)}
    return out


def pooled_reports(root: Path) -> dict[str, Any]:
    """The pooled reference's metrics per partner (the simulation's upper bound)."""
    from pharmafl.evaluation.documents import PooledReport
    from pharmafl.layout import METRICS_FILE, ConsortiumLayout

    path = ConsortiumLayout(root).operator.pooled / METRICS_FILE
    return dict(PooledReport.model_validate_json(path.read_bytes()).partners)


def members(layout: Any) -> dict[str, Path]:
    """The partners whose benefit counts: all but the auxiliary public partner."""
    from pharmafl.simulate import AUXILIARY_NAME

    return {n: p for n, p in layout.partner_dirs().items() if n != AUXILIARY_NAME}


def _new_chemistry_export(pdir: Path, rows: pd.DataFrame, shape: str, out: Path) -> Path | None:
    """The partner's new-chemistry measurements (its own assays), in its own export shape."""
    from pharmafl.data import load_catalogue
    from pharmafl.simulate import PartnerExport, write_partner_export

    assays = {t.assay_id for t in load_catalogue(pdir / "prepared").tasks}
    mine = rows[rows["assay"].isin(assays)]
    if mine.empty:
        return None
    smiles = sorted(mine["smiles"].unique())
    number = {s: i + 1 for i, s in enumerate(smiles)}
    part = PartnerExport(
        name=pdir.name,
        kind="dose_response",
        measurements=mine.assign(compound_number=mine["smiles"].map(number).astype(np.int64)),
    )
    return write_partner_export(out / pdir.name, shape, part)


def new_chemistry_deltas(root: Path, new_file: Path) -> dict[str, dict[str, Any]]:
    """Per partner: federated − local per task on its new-chemistry measurements, scored by
    ``pharmafl evaluate``'s code (``evaluate_new_measurements``)."""
    from pharmafl.layout import ConsortiumLayout
    from pharmafl.partner.evaluate import evaluate_new_measurements
    from pharmafl.simulate import read_public_file

    layout = ConsortiumLayout(root)
    manifest = json.loads(layout.simulation.read_text())
    shapes = {p["name"]: p["shape"] for p in manifest["partners"]}
    rows = read_public_file(new_file).measurements
    out: dict[str, dict[str, Any]] = {}
    for name, pdir in members(layout).items():
        config = _new_chemistry_export(pdir, rows, shapes[name], root / "new-chemistry")
        if config is None:
            continue
        doc = evaluate_new_measurements(
            pdir,
            config=config,
            models=["local", "federated"],
            resamples=1,  # tasks only
        )
        per: dict[str, Any] = {t: {m: {} for m in METRICS[t]} for t in METRICS}
        for task in doc.scores.tasks:
            local, fed = task.scores.get("local") or {}, task.scores.get("federated") or {}
            for metric in METRICS[task.kind]:
                a, b = local.get(metric), fed.get(metric)
                if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
                    per[task.kind][metric][task.task] = b - a
        out[name] = per | {"n_compounds": doc.scores.n_rows}
    return out


#: DemoConfig fields that change the prepared data (a prepared folder is shared by the
#: settings that differ only in the others).
DATA_FIELDS = frozenset(
    {"dataset", "source", "target_family", "partners", "max_compounds", "auxiliary_compounds",
     "auxiliary_source", "free_riders", "seed", "strategy", "eval_fold_min", "task_quorum",
     "key_file", "workers"}
)  # fmt: skip


def prepared(
    kinase: Path, key_index: int, work: Path, overrides: dict[str, Any], share: float
) -> tuple[Path, Path, dict[str, Any]]:
    """The key's simulated and prepared consortium (made once per key and data settings,
    ``pharmafl.demo.prepare_demo``), its new-chemistry file and the run's DemoConfig fields."""
    from pharmafl.demo import DemoConfig, prepare_demo

    key_file = _key_file(work, key_index)
    data = {k: v for k, v in overrides.items() if k in DATA_FIELDS}
    folder = work / f"key{key_index}-{_slug(data)}"
    folder.mkdir(parents=True, exist_ok=True)
    fields = CONSORTIUM | {"source": str(folder / "train.csv"), "key_file": key_file} | overrides
    snapshot = folder / "prepared"
    if fields.get("auxiliary_source") == PUBLIC:
        fields["auxiliary_source"] = str(folder / "public.csv")
    if not (snapshot / "demo.json").is_file():
        split_files(kinase, key_file, share, folder)
        if "auxiliary_source" in data:
            public_file(kinase.parent, key_file, share, folder)
        prepare_demo(snapshot, DemoConfig.model_validate(fields), say=lambda _: None, force=True)
    return snapshot, folder / "new.csv", fields


def run_key(
    kinase: Path,
    key_index: int,
    work: Path,
    overrides: dict[str, Any],
    share: float,
    keep: bool = False,
) -> dict[str, Any]:
    """One key and setting: a copy of the key's prepared consortium trained with the setting
    (``pharmafl.demo.train_demo``), scored on the test fold and the new chemistry; the copy
    is deleted afterwards unless ``keep`` (a trained copy of all kinase is ≈ 3 GB)."""
    from pharmafl.demo import DemoConfig, train_demo
    from pharmafl.layout import ConsortiumLayout

    t0 = time.perf_counter()
    snapshot, new, fields = prepared(kinase, key_index, work, overrides, share)
    t1 = time.perf_counter()
    root = snapshot.parent / f"trained-{_slug(overrides)}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(snapshot, root)
    cfg = DemoConfig.model_validate(fields)
    train_demo(root, cfg, say=lambda _: None)
    layout = ConsortiumLayout(root)
    pooled = pooled_reports(root) if cfg.pooled else {}
    public = cfg.auxiliary_compounds is not None
    deltas = {n: partner_deltas(p, pooled.get(n), public) for n, p in members(layout).items()}
    newchem = new_chemistry_deltas(root, new)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "key": key_index,
        "overrides": overrides,
        "new_share": share,
        "prepare_s": round(t1 - t0, 1),
        "wall_s": round(time.perf_counter() - t0, 1),
        "partners": {name: d | {"new": newchem.get(name)} for name, d in deltas.items()},
    }


def _slug(overrides: dict[str, Any]) -> str:
    text = json.dumps(overrides, sort_keys=True)
    return "default" if not overrides else hashlib.sha256(text.encode()).hexdigest()[:8]


# --- statistics -------------------------------------------------------------------------


def summarise(
    runs: list[dict[str, Any]], where: str, partner: str, task_type: str, metric: str
) -> dict[str, Any] | None:
    """Mean federated − local of one partner on one metric, its two intervals, the share of
    tasks improved, the tasks and keys counted (None without any scored task)."""
    per_key = [
        ((r["partners"].get(partner) or {}).get(where) or {}).get(task_type, {}).get(metric, {})
        for r in runs
    ]
    per_key = [d for d in per_key if d]
    if not per_key:
        return None
    tasks: dict[str, list[float]] = {}
    for d in per_key:
        for task, v in d.items():
            tasks.setdefault(task, []).append(v)
    task_means = [float(np.mean(v)) for v in tasks.values()]
    mean, lo, hi = _mean_ci(task_means)
    _, klo, khi = _mean_ci([float(np.mean(list(d.values()))) for d in per_key])
    better = METRICS[task_type][metric]
    improved = [(m > 0) if better else (m < 0) for m in task_means]
    return {
        "mean": mean,
        "ci_tasks_keys": (lo, hi),
        "ci_keys": (klo, khi),
        "share_improved": float(np.mean(improved)),
        "tasks": len(task_means),
        "keys": len(per_key),
    }


def _cell(s: dict[str, Any] | None) -> str:
    if s is None:
        return f"{'–':>44}"
    lo, hi = s["ci_tasks_keys"]
    klo, khi = s["ci_keys"]
    return (
        f"{s['mean']:+.4f} [{lo:+.4f},{hi:+.4f}] {{{klo:+.3f},{khi:+.3f}}} "
        f"{100 * s['share_improved']:3.0f}% {s['tasks']:>4}"
    )


#: What each comparison of a run's partner record is (``test``, ``new``: federated − local).
WHAT = {
    "pooled": "pooled − local (test fold)",
    "public_alone": "local with the public partner's data − local (test fold)",
    "vs_public": "federated − local with the public partner's data (test fold)",
}


def table(runs: list[dict[str, Any]], where: str = "test") -> str:
    """Per partner and metric: mean gain [tasks & keys] {keys} share-improved tasks."""
    partners = sorted({p for r in runs for p in r["partners"]})
    cols = [(t, m) for t in METRICS for m in METRICS[t]]
    head = " | ".join(f"{m:<44}" for _, m in cols)
    what = WHAT.get(where, f"{where}: federated − local")
    lines = [f"{what}; mean [95 % over tasks & keys] {{over keys}} "
             "share of tasks improved, tasks", f"{'partner':<8} | {head}"]  # fmt: skip
    for p in partners:
        cells = " | ".join(_cell(summarise(runs, where, p, t, m)) for t, m in cols)
        lines.append(f"{p:<8} | {cells}")
    lines.append(f"{'mean':<8} | " + " | ".join(_partner_mean(runs, where, t, m) for t, m in cols))
    return "\n".join(lines)


def _partner_mean(runs: list[dict[str, Any]], where: str, task_type: str, metric: str) -> str:
    """The mean over partners of their mean gains, with a t-interval over keys of the per-key
    means over partners."""
    partners = sorted({p for r in runs for p in r["partners"]})
    stats = [summarise(runs, where, p, task_type, metric) for p in partners]
    means = [s["mean"] for s in stats if s is not None]
    if not means:
        return f"{'–':>44}"
    per_key = []
    for r in runs:
        one = [summarise([r], where, p, task_type, metric) for p in partners]
        vals = [s["mean"] for s in one if s is not None]
        if vals:
            per_key.append(float(np.mean(vals)))
    _, lo, hi = _mean_ci(per_key)
    return f"{float(np.mean(means)):+.4f} {{{lo:+.4f},{hi:+.4f}}} over keys{'':>14}"


def sweep_table(runs: list[dict[str, Any]]) -> str:
    """One line per setting: the mean over partners of federated − local, test fold and new
    chemistry (the sweep's runs share one key: paired)."""
    lines = [
        f"{'setting':<28} {'test ΔAUC-PR':>12} {'test ΔROC':>10} {'test ΔR²':>10} "
        f"{'new ΔAUC-PR':>12} {'new ΔR²':>10} {'minutes':>8}"
    ]
    for name in SWEEP:
        mine = [r for r in runs if r.get("sweep") == name]
        if not mine:
            continue
        cells = []
        for where, t, m in (
            ("test", "classification", "auc_pr"),
            ("test", "classification", "roc_auc"),
            ("test", "regression", "r2"),
            ("new", "classification", "auc_pr"),
            ("new", "regression", "r2"),
        ):
            stats = [summarise(mine, where, p, t, m) for p in mine[0]["partners"]]
            vals = [s["mean"] for s in stats if s is not None]
            cells.append(float(np.mean(vals)) if vals else math.nan)
        minutes = np.mean([r["wall_s"] - r.get("prepare_s", 0.0) for r in mine]) / 60
        lines.append(
            f"{name:<28} {cells[0]:>+12.4f} {cells[1]:>+10.4f} {cells[2]:>+10.4f} "
            f"{cells[3]:>+12.4f} {cells[4]:>+10.4f} {minutes:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--new-share", type=float, default=0.1, help="Scaffolds held out.")
    ap.add_argument("--sweep", action="store_true", help="Item 2's settings on the first key.")
    ap.add_argument("--no-main", action="store_true", help="Only the sweep.")
    ap.add_argument(
        "--settings", nargs="+", choices=list(SWEEP), default=RECIPE_SETTINGS,
        help="The sweep's settings (default: the recipe's, not the data settings).",
    )  # fmt: skip
    ap.add_argument(
        "--set", action="append", default=[], metavar="FIELD=JSON",
        help="Override a DemoConfig field of the main runs (e.g. hidden=1000); repeatable.",
    )  # fmt: skip
    ap.add_argument("--out", type=Path, help="Write every run's JSON here.")
    ap.add_argument("--keep", type=Path, help="Keep the consortia in this folder.")
    ap.add_argument("--table", type=Path, help="Only print the tables of a --out file.")
    args = ap.parse_args(argv)
    runs = json.loads(args.table.read_text()) if args.table is not None else _run(args)
    main_runs = [r for r in runs if not r.get("sweep")]
    sweep = [r for r in runs if r.get("sweep")]
    for where in ("test", "pooled", "new", "public_alone", "vs_public"):
        if _has(main_runs, where):
            print(table(main_runs, where))
    if sweep:
        print(sweep_table(sweep))
    for name in SWEEP:
        mine = [r for r in sweep if r["sweep"] == name]
        for where in ("public_alone", "vs_public"):
            if _has(mine, where):
                print(f"{name}: " + table(mine, where))
    return 0


def _has(runs: list[dict[str, Any]], where: str) -> bool:
    """Whether any partner of ``runs`` has the comparison ``where``."""
    return any(p.get(where) for r in runs for p in r["partners"].values())


def _run(args: argparse.Namespace) -> list[dict[str, Any]]:
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    work = args.keep or Path(tempfile.mkdtemp(prefix="pharmafl-consortium-"))
    work.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    try:
        kinase = fsmol_file(work)
        plan: list[tuple[int, dict[str, Any], str | None]] = (
            [] if args.no_main else [(k, overrides, None) for k in args.keys]
        )
        if args.sweep:
            plan += [
                (args.keys[0], overrides | SWEEP[name] | {"pooled": False}, name)
                for name in args.settings
            ]
        for key_index, setting, sweep in plan:
            run = run_key(kinase, key_index, work, setting, args.new_share, args.keep is not None)
            run |= {"sweep": sweep}
            print(json.dumps(run), flush=True)
            runs.append(run)
            if args.out is not None:
                args.out.write_text(json.dumps(runs) + "\n")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return runs


if __name__ == "__main__":
    sys.exit(main())
