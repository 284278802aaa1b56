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


def test_a_short_append_is_cut_back_and_raised(tmp_path, monkeypatch) -> None:
    """A ledger (or ledger-heads) line that only half reaches the disk (disk full, quota) is
    an error, and the file is cut back to its previous end: never half a line for the next
    reader to trip on."""
    import os

    from pharmafl.common.io import append_line, locked_append

    path = tmp_path / "ledger.jsonl"
    path.write_bytes(b'{"first": 1}\n')
    real = os.write
    with locked_append(path) as fd:
        monkeypatch.setattr(os, "write", lambda f, data: real(f, data[: len(data) // 2]))
        with pytest.raises(OSError, match="short write"):
            append_line(fd, b'{"second": 2}\n')
        monkeypatch.undo()
        append_line(fd, b'{"third": 3}\n')
    assert path.read_bytes() == b'{"first": 1}\n{"third": 3}\n'
