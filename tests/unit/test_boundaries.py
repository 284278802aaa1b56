"""The shape of the house (STYLE.md §2, §19, §21): who may import whom, and short functions.

- The partner side (``pharmafl.partner``) and the operator side (``pharmafl.server``) never
  import each other; what both agree on lives in ``pharmafl.contract``, which imports
  neither side (nor ``pharmafl.model``, torch or RDKit).
- The library never imports ``flows``; only the entry points (``pharmafl.cli``,
  ``pharmafl.demo``) start flows.
- No function in ``pharmafl.server`` or ``pharmafl.partner`` is longer than 80 lines.

Imports are read from the source (every ``import`` statement, inside functions too), so a
lazy import inside a function counts like a top-level one.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pharmafl

ROOT = Path(pharmafl.__file__).resolve().parent
ENTRY_POINTS = ("pharmafl.cli", "pharmafl.demo")
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _modules() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(ROOT.rglob("*.py"))}


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(source: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{mod} imports {imp}"
        for mod, imports in _modules().items()
        if _under(mod, source)
        for imp in imports
        if any(_under(imp, f) for f in forbidden)
    )


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("pharmafl.partner", ("pharmafl.server", "pharmafl.accounting")),
        ("pharmafl.server", ("pharmafl.partner", "pharmafl.model", "pharmafl.chem")),
        (
            "pharmafl.contract",
            ("pharmafl.partner", "pharmafl.server", "pharmafl.model", "torch", "rdkit"),
        ),
    ],
)
def test_the_two_sides_never_import_each_other(source: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(source, forbidden) == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    # The scan above must be able to fail: a lazy import inside a function is found.
    mod = tmp_path / "m.py"
    mod.write_text("def f():\n    from pharmafl.server.rounds import secure_round\n")
    assert "pharmafl.server.rounds" in _imports(mod)


def test_the_library_never_imports_flows() -> None:
    offenders = sorted(
        f"{mod} imports {imp}"
        for mod, imports in _modules().items()
        if not any(_under(mod, e) for e in ENTRY_POINTS)
        for imp in imports
        if _under(imp, "flows")
    )
    assert offenders == []


def test_the_contract_loads_without_torch_or_rdkit() -> None:
    code = (
        "import sys, importlib, pkgutil, pharmafl.contract as c\n"
        "for m in pkgutil.walk_packages(c.__path__, prefix='pharmafl.contract.'):\n"
        "    importlib.import_module(m.name)\n"
        "import pharmafl.layout, pharmafl.server\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'rdkit')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout


def _long_functions(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    return out


@pytest.mark.parametrize("package", ["server", "partner"])
def test_operator_and_partner_functions_stay_short(package: str) -> None:
    assert _long_functions(package) == []
