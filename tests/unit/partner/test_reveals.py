"""The partner's record of aggregated starting trunks (``pharmafl.partner.reveals``): created
once, never reset, refused when another identity's or not a record at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pharmafl.common.errors import FederationError
from pharmafl.partner.reveals import STARTS_FORMAT, StartRecord

ME, OTHER = "a" * 64, "b" * 64


def test_create_never_resets_a_record_and_refuses_another_identitys(tmp_path: Path) -> None:
    record = StartRecord(tmp_path / "aggregated_starts.json")
    record.create(ME)
    doc = json.loads(record.path.read_text())
    assert doc == {"format": STARTS_FORMAT, "identity": ME, "starts": {}}
    doc["starts"] = {"0" * 64: [["run", ["alpha", "bravo"], "r0"]]}
    record.path.write_text(json.dumps(doc))
    record.create(ME)  # joining again must not forget what was revealed
    assert json.loads(record.path.read_text()) == doc
    with pytest.raises(FederationError, match="belongs to another identity"):
        record.create(OTHER)  # a record restored from another partner's backup
    assert json.loads(record.path.read_text()) == doc


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"format": "pharmafl.aggregated_starts/1", "identity": ME, "starts": {}}),
        json.dumps({"format": STARTS_FORMAT, "identity": ME, "starts": []}),
        "[1, 2]",
        "{not json",
    ],
    ids=["old-format", "starts-not-a-map", "not-an-object", "not-json"],
)
def test_a_record_that_is_not_one_is_refused(tmp_path: Path, text: str) -> None:
    record = StartRecord(tmp_path / "aggregated_starts.json")
    record.path.write_text(text)
    with pytest.raises(FederationError, match="unreadable; refusing to reveal") as err:
        record.check(ME)
    assert err.value.file == str(record.path) and "never delete or edit" in (err.value.fix or "")
