"""The partner's in-process cache of prepared/ between federated rounds."""

from __future__ import annotations

import os
from pathlib import Path

from pharmafl.model import write_synthetic_prepared
from pharmafl.partner.federated import prepared_data


def _prepared(root: Path, seed: int) -> Path:
    out = root / "prepared"
    write_synthetic_prepared(out, n_rows=40, n_features=32, n_cls_tasks=3, n_reg_tasks=1, seed=seed)
    return out


def test_rounds_reuse_the_data_until_prepared_changes(tmp_path: Path) -> None:
    d = _prepared(tmp_path / "p", seed=1)
    first = prepared_data(d, with_graphs=False)
    assert prepared_data(d, with_graphs=False) is first  # the next round: no re-read
    other = _prepared(tmp_path / "q", seed=2)
    assert prepared_data(other, with_graphs=False) is not first  # another partner folder
    # prepare ran again (a file has another size/time): read again, new content.
    x = d / "cls_T11_x.npz"
    st = x.stat()
    os.utime(x, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    again = prepared_data(d, with_graphs=False)
    assert again is not first
    assert prepared_data(d, with_graphs=False) is again
