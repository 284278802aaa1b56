"""The aggregator package imports neither torch nor RDKit (STYLE.md §2)."""

from __future__ import annotations

import subprocess
import sys

import pharmafl.secure

CODE = """
import importlib, pkgutil, sys
import pharmafl.secure
for m in pkgutil.walk_packages(pharmafl.secure.__path__, prefix="pharmafl.secure."):
    importlib.import_module(m.name)
import pharmafl.cli.keys
from pharmafl.secure import dp_epsilon
dp_epsilon(1.0, 1, 1e-5)  # the lazily imported accountant too
heavy = sorted(k for k in sys.modules if k.split(".")[0] in ("torch", "rdkit", "torch_geometric"))
print(heavy)
"""


def test_secure_package_imports_neither_torch_nor_rdkit() -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


def test_every_module_is_listed() -> None:
    # Guard against a new module hiding from the walk above.
    import pkgutil

    names = {m.name for m in pkgutil.iter_modules(pharmafl.secure.__path__)}
    assert {"client", "server", "store", "envelope", "quantize", "masking"} <= names
