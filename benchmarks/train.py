"""Training speed and memory of the sparse trunk on a SparseChem-shaped partner.

Shape of the reference (SparseChem 1.0.0 on this 2-core machine, one FS-Mol partner prepared
by MELLODDY-TUNER): 31,377 compounds × 32,000 features, 479 classification tasks, hidden 2000,
dropout 0.6, batch_ratio 0.02, Adam lr 1e-3 → 70–89 s per training epoch, peak RSS 2.4 GB.

Usage::

    .venv/bin/python benchmarks/train.py                  # synthetic partner of that shape
    .venv/bin/python benchmarks/train.py --prepared PARTNER_DIR --epochs 3
    .venv/bin/python benchmarks/train.py --reference-steps 5   # + SparseChem-like core loop

Prints compounds/s, seconds per training epoch (training steps only; one validation pass is
timed separately), peak RSS (whole process and sampled during training) against parameters +
Adam state, and the speed-up over the 70 s and 89 s SparseChem epochs. Folds as SparseChem's
defaults (``--fold_va 0``, no test fold), so an epoch covers the same ~80 % of rows.

``--reference-steps N`` also times N steps of a SparseChem-like core loop (COO ``torch.mm``
input layer, ``torch.optim.Adam``, COO batch built per step) on the same data at the same time,
which makes the ratio robust to other load on the machine. It is an approximation of
SparseChem's inner loop, not SparseChem itself.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SPARSECHEM_EPOCH_S = (70.0, 89.0)
SPARSECHEM_PEAK_RSS_GB = 2.4


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


class _PeakSampler:
    """Samples this process's RSS every few milliseconds in a background thread."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = _rss()
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(self._interval)

    def __enter__(self) -> _PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _make_synthetic(dest: Path, args: argparse.Namespace) -> None:
    """Write the synthetic partner in a child process (keeps this process's peak RSS clean)."""
    code = (
        "import sys; from pharmafl.model import write_synthetic_prepared as w; "
        f"w(sys.argv[1], n_rows={args.rows}, n_features={args.features}, "
        f"n_cls_tasks={args.tasks}, n_reg_tasks=0, bits_per_row={args.bits}, "
        f"label_density={args.density}, seed={args.seed})"
    )
    subprocess.run([sys.executable, "-c", code, str(dest)], check=True)


def _reference_step_seconds(data, rows_per_batch: int, steps: int, hidden: int) -> float:
    """Seconds per step of a SparseChem-like core loop (COO mm + torch Adam)."""
    import torch
    import torch.nn.functional as nnf

    x, y = data.x, data.y_cls
    n_tasks = y.shape[1]
    w = torch.nn.Parameter(torch.empty(x.shape[1], hidden))
    torch.nn.init.xavier_uniform_(w)
    b = torch.nn.Parameter(torch.full((hidden,), 0.1))
    head = torch.nn.Linear(hidden, n_tasks)
    opt = torch.optim.Adam([w, b, *head.parameters()], lr=1e-3)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        rows = rng.choice(x.shape[0], rows_per_batch, replace=False)
        coo = x[rows].tocoo()
        xt = torch.sparse_coo_tensor(
            torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64)),
            torch.from_numpy(coo.data),
            size=coo.shape,
            check_invariants=False,
        )
        yb = torch.from_numpy(y[rows].toarray())
        mask = (yb != 0).float()
        h = torch.mm(xt, w) + b
        out = head(nnf.dropout(torch.relu(h), 0.6))
        loss = (
            nnf.binary_cross_entropy_with_logits(out, (yb > 0).float(), reduction="none") * mask
        ).sum() / rows_per_batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def _time_training(args: argparse.Namespace, data, rss_data: int, n_threads: int) -> None:
    """Train ``args.epochs`` epochs with a fresh model and print speed and memory."""
    from pharmafl.model import (
        LocalTrainer,
        MultiTaskModel,
        SparseTrunkConfig,
        TrainConfig,
        local_model_config,
    )

    trunk = SparseTrunkConfig(
        input_size=data.n_features, hidden_sizes=(args.hidden,), dropouts=(args.dropout,)
    )
    model = MultiTaskModel.from_config(
        local_model_config(trunk, data.n_cls_tasks, data.n_reg_tasks)
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_ratio=args.batch_ratio,
        lr=1e-3,
        fold_va=0,
        fold_te=None,
        eval_every=0,
        seed=args.seed,
    )
    trainer = LocalTrainer(model, data, cfg)
    n_params = sum(p.numel() for p in model.parameters())
    state_bytes = 3 * 4 * n_params  # fp32 parameters + Adam exp_avg + exp_avg_sq
    n_train = len(trainer.train_rows)
    print(
        f"\n== {n_threads} thread(s): {n_params / 1e6:.1f} M parameters; {n_train} training "
        f"rows, batch {trainer.batch_size}, {trainer.steps_per_epoch} steps/epoch"
    )
    epoch_s = []
    with _PeakSampler() as sampler:
        for _ in range(args.epochs):
            res = trainer.train(epochs=1, evaluate=False)
            epoch_s.append(res.seconds)
            print(f"  epoch {trainer.epoch}: {res.seconds:.2f} s, loss {res.mean_loss:.5f}")
    t0 = time.perf_counter()
    val = trainer.evaluate("validation")
    eval_s = time.perf_counter() - t0
    best = min(epoch_s)
    mean = float(np.mean(epoch_s))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gib = 1024.0**3
    print(f"seconds/epoch (training): best {best:.2f}, mean {mean:.2f} over {len(epoch_s)}")
    print(f"compounds/s: {n_train / best:.0f} (best), {n_train / mean:.0f} (mean)")
    for ref in SPARSECHEM_EPOCH_S:
        print(
            f"speed-up vs SparseChem {ref:.0f} s/epoch: {ref / best:.1f}× (best), "
            f"{ref / mean:.1f}× (mean)"
        )
    print(
        f"validation pass ({len(trainer.valid_rows)} rows, all metrics): {eval_s:.2f} s, "
        f"ROC-AUC {val.metric('roc_auc'):.3f}"
    )
    print(
        f"parameters + Adam state: {state_bytes / gib:.2f} GiB; 1.5× = "
        f"{1.5 * state_bytes / gib:.2f} GiB"
    )
    print(
        f"peak RSS: process {peak / gib:.2f} GiB (SparseChem {SPARSECHEM_PEAK_RSS_GB} GB); "
        f"during training {sampler.peak / gib:.2f} GiB; above the loaded data "
        f"{(sampler.peak - rss_data) / gib:.2f} GiB = "
        f"{(sampler.peak - rss_data) / state_bytes:.2f}× parameters + state"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prepared", type=Path, help="Partner folder or prepared/ folder.")
    parser.add_argument("--epochs", type=int, default=2, help="Timed epochs (default 2).")
    parser.add_argument(
        "--threads",
        default="2",
        help="torch threads, or a comma-separated list to time each (default 2).",
    )
    parser.add_argument("--hidden", type=int, default=2000)
    parser.add_argument("--dropout", type=float, default=0.6)
    parser.add_argument("--batch-ratio", type=float, default=0.02)
    parser.add_argument("--rows", type=int, default=31_377, help="Synthetic rows.")
    parser.add_argument("--features", type=int, default=32_000, help="Synthetic features.")
    parser.add_argument("--tasks", type=int, default=479, help="Synthetic tasks.")
    parser.add_argument("--bits", type=float, default=65.0, help="Synthetic bits per row.")
    parser.add_argument("--density", type=float, default=0.005, help="Synthetic label density.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference-steps",
        type=int,
        default=0,
        help="Also time N steps of a SparseChem-like core loop.",
    )
    args = parser.parse_args()

    import torch

    from pharmafl.model import load_prepared

    load0 = os.getloadavg()[0]
    tmp = None
    if args.prepared is None:
        tmp = tempfile.TemporaryDirectory(prefix="pharmafl-bench-")
        src = Path(tmp.name) / "prepared"
        t0 = time.perf_counter()
        _make_synthetic(src, args)
        print(f"synthetic partner written in {time.perf_counter() - t0:.1f} s")
    else:
        src = args.prepared
    data = load_prepared(src)
    print(
        f"data: {data.n_rows} rows × {data.n_features} features, {data.n_cls_tasks} cls + "
        f"{data.n_reg_tasks} reg tasks, {data.x.nnz / data.n_rows:.1f} bits/row, "
        f"label density {data.y_cls.nnz / max(1, data.n_rows * data.n_cls_tasks):.4f}"
    )
    rss_data = _rss()
    threads = [int(t) for t in str(args.threads).split(",")]
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        _time_training(args, data, rss_data, n_threads)
    if args.reference_steps:
        torch.set_num_threads(threads[-1])
        n_train = int((data.folds != 0).sum())
        batch = int(np.ceil(args.batch_ratio * n_train))
        ref_step = _reference_step_seconds(data, batch, args.reference_steps, args.hidden)
        ref_epoch = ref_step * int(np.ceil(n_train / batch))
        print(
            f"SparseChem-like core loop ({threads[-1]} threads): {ref_step:.2f} s/step → "
            f"{ref_epoch:.1f} s/epoch (compare with the epochs above, same machine and time)"
        )
    print(
        f"load average: {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end "
        "(other processes share the cores)"
    )
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
