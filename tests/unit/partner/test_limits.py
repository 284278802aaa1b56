"""Too little data is said, not silently turned into empty outputs or bare NaNs."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from pharmafl.cli.model import NOT_SCORABLE, metrics_line
from pharmafl.common.errors import DataNotFoundError, PreparationError
from pharmafl.common.params import TaskParams
from pharmafl.data.catalogue import TaskCatalogue
from pharmafl.model import load_prepared
from pharmafl.partner import PrepareOptions, prepare_partner
from pharmafl.partner.limits import check_trainable
from pharmafl.simulate import SimulationSpec, simulate_consortium


@pytest.mark.slow
def test_thirty_compounds_fail_with_the_quorums_and_write_nothing(
    tmp_path: Path, consortium_key_file: Path
) -> None:
    simulate_consortium(
        tmp_path / "c",
        SimulationSpec(dataset="fsmol", partners=2, max_compounds=30, seed=7),
        workers=1,
        key_file=consortium_key_file,
    )
    partner = tmp_path / "c" / "partners" / "alpha"
    with pytest.raises(PreparationError) as err:
        prepare_partner(partner, PrepareOptions(workers=1))
    text = str(err.value)
    assert "no trainable task" in text and "measurements on" in text
    assert "≥ 25 actives" in text and "in every fold" in text
    assert "quorum" in (err.value.fix or "")
    assert not (partner / "prepared").exists()
    assert not [p for p in partner.iterdir() if p.name.startswith(".")], "no temp folder left"


def test_no_scorable_task_warns_but_prepares(caplog) -> None:
    task = SimpleNamespace(evaluation_quorum_ok=False)
    cat = TaskCatalogue.model_construct(tasks=[task], n_classification_tasks=1)
    check_trainable(cat, TaskParams(), measurements=300, assays=1, rejection_counts={})
    assert "can be scored" in caplog.text and "every fold" in caplog.text


def test_empty_prepared_data_is_one_clear_error(tmp_path: Path) -> None:
    import numpy as np
    from scipy import sparse

    from pharmafl.model.data import PREPARED_FILES

    d = tmp_path / "prepared"
    d.mkdir()
    sparse.save_npz(d / PREPARED_FILES["x"], sparse.csr_matrix((0, 8), dtype=np.float32))
    np.save(d / PREPARED_FILES["folding"], np.zeros(0, dtype=np.int64))
    with pytest.raises(DataNotFoundError, match="no task"):
        load_prepared(d)


def test_metric_lines_say_why_instead_of_nan() -> None:
    split = SimpleNamespace(metric=lambda n: math.nan if n == "auc_pr" else 0.5)
    line = metrics_line("test", split, ("roc_auc", "auc_pr"))
    assert "nan" not in line and "auc_pr n/a" in line and NOT_SCORABLE in line
    assert NOT_SCORABLE not in metrics_line("test", SimpleNamespace(metric=lambda n: 0.7), ("a",))
