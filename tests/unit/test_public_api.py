"""Every name in every sub-package's ``__all__`` imports, and ``__all__`` is sorted."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import pharmafl

PACKAGES = sorted(
    m.name for m in pkgutil.walk_packages(pharmafl.__path__, prefix="pharmafl.") if m.ispkg
)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_import_and_are_sorted(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names missing {item}"
