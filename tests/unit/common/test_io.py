from __future__ import annotations

import pytest

from pharmafl.common.io import atomic_directory, atomic_write_json


def test_atomic_directory_keeps_old_content_on_failure(tmp_path) -> None:
    dest = tmp_path / "prepared"
    with atomic_directory(dest) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(dest) as tmp:
        (tmp / "a.txt").write_text("second, half-written")
        raise RuntimeError("boom")
    assert (dest / "a.txt").read_text() == "first"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "prepared"]
    assert leftovers == []


def test_atomic_directory_replaces_on_success(tmp_path) -> None:
    dest = tmp_path / "out"
    with atomic_directory(dest) as tmp:
        (tmp / "x").write_text("1")
    with atomic_directory(dest) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == ["y"]


def test_atomic_write_json_leaves_no_temp_on_error(tmp_path) -> None:
    class Bad:
        def __str__(self) -> str:
            raise ValueError("cannot serialise")

    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "m.json", {"x": Bad()})
    assert list(tmp_path.iterdir()) == []
