"""What a federated round costs around its training (issue 16, items 3 and 4).

Simulates a consortium (FS-Mol, ``--partners`` partners of ``--compounds`` compounds each, from
the public data or the shipped extract), prepares it once, then trains ``--rounds`` embedded
rounds twice on copies of it: partners one after another (``PHARMAFL_PARALLEL_PARTNERS=1``, the
behaviour before issue 16) and all at once (the default). For each round it prints the wall
time (ledger: ``round_started`` → ``aggregate_applied``), the slowest partner's training time
and the sum of all partners' training times (``LocalTrainer.train``, timed in-process), and the
round's overhead: wall time minus the slowest partner's training (secure-aggregation stages,
subflow starts, trunk serialisation, the operator's validation). It checks that both modes
reach the same final trunk.

    .venv/bin/python benchmarks/rounds.py                       # 4 partners, hidden 500
    .venv/bin/python benchmarks/rounds.py --partners 4 --hidden 2000 --rounds 3

Prints one JSON line per mode and a table; ``--out`` writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _prepared(work: Path, partners: int, compounds: int) -> Path:
    from pharmafl.partner import PrepareOptions, prepare_partner
    from pharmafl.simulate import SimulationSpec, simulate_consortium

    cdir = work / "prepared"
    if (cdir / "partners").is_dir():  # --work of an earlier run: compare on the same data
        return cdir
    spec = SimulationSpec(dataset="fsmol", partners=partners, max_compounds=compounds, seed=3)
    simulate_consortium(cdir, spec, workers=1)
    for p in sorted((cdir / "partners").iterdir()):
        prepare_partner(p, PrepareOptions(workers=1))
    return cdir


def _setup(prepared: Path, dst: Path, args: argparse.Namespace) -> Path:
    from pharmafl.contract import FederationPlan, LocalTrainingSpec
    from pharmafl.secure import QuantizationConfig
    from pharmafl.simulate.federation import setup_federation

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(prepared, dst)
    for key in dst.glob("partners/*/key.json"):
        os.chmod(key, 0o600)
    plan = FederationPlan(
        rounds=args.rounds,
        trunk={"kind": "sparse", "hidden_sizes": [args.hidden], "dropouts": [0.6]},
        local=LocalTrainingSpec(epochs=1, head_finetune_epochs=1),
        stage_timeout_s=1800,
        patience=10_000,  # every round runs
        quantization=QuantizationConfig.for_ring(args.ring_bits),
    )
    setup_federation(dst, plan)
    return dst


def _round_windows(cdir: Path) -> list[tuple[float, float]]:
    from pharmafl.ledger import LedgerEvent, read_entries

    starts: dict[int, float] = {}
    out: list[tuple[float, float]] = []
    for e in read_entries(cdir / "operator" / "ledger.jsonl"):
        if e.event is LedgerEvent.ROUND_STARTED:
            starts[int(e.payload["round"])] = e.timestamp.timestamp()  # type: ignore[arg-type]
        elif e.event is LedgerEvent.AGGREGATE_APPLIED:
            out.append((starts[int(e.payload["round"])], e.timestamp.timestamp()))  # type: ignore[arg-type]
    return out


def _run(cdir: Path, slots: int) -> dict[str, Any]:
    from flows.train import run_train
    from pharmafl.model import LocalTrainer

    spans: list[tuple[float, float]] = []
    real = LocalTrainer.train

    def timed(self: LocalTrainer, *a: Any, **kw: Any) -> Any:
        t0 = time.time()
        try:
            return real(self, *a, **kw)
        finally:
            spans.append((t0, time.time()))

    os.environ["PHARMAFL_PARALLEL_PARTNERS"] = str(slots)
    LocalTrainer.train = timed  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        result = run_train(cdir)
        total = time.perf_counter() - t0
    finally:
        LocalTrainer.train = real  # type: ignore[method-assign]
    rounds = []
    for start, end in _round_windows(cdir):
        inside = [b - a for a, b in spans if a >= start and b <= end]
        slowest = max(inside, default=0.0)
        rounds.append(
            {
                "wall_s": round(end - start, 2),
                "slowest_training_s": round(slowest, 2),
                "sum_training_s": round(sum(inside), 2),
                "overhead_s": round(end - start - slowest, 2),
            }
        )
    return {
        "mode": "one after another" if slots == 1 else "all at once",
        "command_s": round(total, 1),
        "rounds": rounds,
        "final_trunk_sha256": result.final_trunk_sha256,
    }


def _table(runs: list[dict[str, Any]]) -> str:
    head = f"{'mode':<18} {'round wall s':>12} {'slowest train s':>15} {'sum train s':>12} "
    lines = [head + f"{'overhead s':>11}"]
    for r in runs:
        med = {k: statistics.median(x[k] for x in r["rounds"]) for k in r["rounds"][0]}
        lines.append(
            f"{r['mode']:<18} {med['wall_s']:>12.1f} {med['slowest_training_s']:>15.1f} "
            f"{med['sum_training_s']:>12.1f} {med['overhead_s']:>11.1f}"
        )
    if len(runs) == 2:
        serial, parallel = (statistics.median(x["wall_s"] for x in r["rounds"]) for r in runs)
        lines.append(f"round wall time, all at once / one after another: {parallel / serial:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--partners", type=int, default=4)
    ap.add_argument("--compounds", type=int, default=1500, help="per partner")
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["serial", "parallel"],
        choices=("serial", "parallel"),
        help="partners one after another, all at once, or both (and compare final trunks)",
    )
    ap.add_argument("--ring-bits", type=int, default=32, choices=(8, 16, 32, 64))
    ap.add_argument("--work", type=Path, default=None, help="keep the folders here")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="pharmafl-rounds-"))
    try:
        prepared = _prepared(work, args.partners, args.compounds)
        runs = []
        for slots in [{"serial": 1, "parallel": 0}[m] for m in args.modes]:
            cdir = _setup(prepared, work / f"run-{slots}", args)
            runs.append(_run(cdir, slots))
            print(json.dumps(runs[-1]), flush=True)
        print(_table(runs))
        # Stochastic rounding (compressed rings) draws from OS entropy: no equality to check.
        same = (
            len(runs) < 2
            or args.ring_bits < 32
            or len({r["final_trunk_sha256"] for r in runs}) == 1
        )
        print(f"same final trunk in both modes: {same}")
        if args.out:
            args.out.write_text(
                json.dumps(
                    {
                        "args": vars(args) | {"work": str(work)},
                        "runs": runs,
                        "same_final_trunk": same,
                    },
                    default=str,
                    indent=1,
                )
            )
        return 0 if same else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
