"""Ledger, accounting and report are operator-side: no torch, no RDKit (STYLE.md §2).

matplotlib is imported only when a figure is drawn, so reading or verifying stays light.
"""

from __future__ import annotations

import subprocess
import sys

CODE = """
import importlib, pkgutil, sys
for pkg in ("pharmafl.ledger", "pharmafl.accounting", "pharmafl.report"):
    mod = importlib.import_module(pkg)
    for m in pkgutil.walk_packages(mod.__path__, prefix=pkg + "."):
        importlib.import_module(m.name)
import pharmafl.cli.ledger
heavy = sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "rdkit", "torch_geometric"))
print(heavy, "matplotlib" in sys.modules)
"""


def test_operator_side_packages_import_neither_torch_nor_rdkit() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[] False", out.stdout
