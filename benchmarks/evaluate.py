"""Benchmark per-task evaluation: 30k rows × 500 classification tasks at 0.5 % density.

Prints seconds (wall and CPU) for ``evaluate_tasks`` and ``significant_improvement_share``.
Target: < 3 s CPU for ``evaluate_tasks`` on this shape (2-core machine).
"""

from __future__ import annotations

import json
import time

import numpy as np
import scipy.sparse as sp

from pharmafl.evaluation import evaluate_tasks, significant_improvement_share


def main() -> None:
    rng = np.random.default_rng(0)
    n_rows, n_tasks = 30_000, 500
    y = sp.random(n_rows, n_tasks, density=0.005, format="csr", random_state=1)
    y.data = np.where(rng.random(y.nnz) < 0.3, 1.0, -1.0)
    pa, pb = rng.random((n_rows, n_tasks)), rng.random((n_rows, n_tasks))
    out = {}
    for name, fn in (
        ("evaluate_tasks", lambda: evaluate_tasks(y, pa, "classification")),
        ("significant_improvement_share", lambda: significant_improvement_share(y, pa, pb)),
    ):
        w, c = time.perf_counter(), time.process_time()
        fn()
        out[name] = {
            "wall_s": round(time.perf_counter() - w, 3),
            "cpu_s": round(time.process_time() - c, 3),
        }
    out["evaluate_tasks_cpu_target_s"] = 3.0
    out["evaluate_tasks_ratio_to_target"] = round(out["evaluate_tasks"]["cpu_s"] / 3.0, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
