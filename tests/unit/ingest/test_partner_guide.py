"""docs/partner-guide.md stays true: every TOML example is a valid partner config, and the
CSV shown above an example ingests through it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from pharmafl.ingest import ingest_partner, parse_partner_config

GUIDE = Path(__file__).parents[3] / "docs" / "partner-guide.md"
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]


def _examples() -> list[tuple[str, str]]:
    """(data, toml) pairs: a TOML block and the plain block just before it."""
    blocks = _blocks()
    return [(blocks[i - 1][1], text) for i, (lang, text) in enumerate(blocks) if lang == "toml"]


def test_the_guide_has_the_promised_sections() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    for heading in (
        "## Joining a consortium",
        "## Draft the config: `pharmafl partner inspect`",
        "### Long CSV in nM, qualifiers inside values",
        "### `;`-separated Latin-1 export from Excel",
        "### Wide table of 0/1 readouts",
        "### SDF with tags",
        "### Parquet, with an assay file",
        "### MELLODDY T0/T1/T2",
        "## What `prepare` writes",
    ):
        assert heading in text
    assert text.index("## Joining a consortium") < text.index("## Your partner folder")


@pytest.mark.parametrize("index", range(6))
def test_every_toml_example_is_a_valid_config(index: int) -> None:
    _data, text = _examples()[index]
    parse_partner_config(tomllib.loads(text), source=f"{GUIDE.name} example {index + 1}")


@pytest.mark.parametrize(("index", "measurements"), [(0, 3), (1, 2), (2, 4)])
def test_csv_examples_ingest_through_their_config(
    tmp_path: Path, index: int, measurements: int
) -> None:
    data, text = _examples()[index]
    config = parse_partner_config(tomllib.loads(text))
    src = config.activity_sources()[0]
    path = tmp_path / src.path
    path.parent.mkdir(parents=True)
    path.write_bytes(data.encode(src.encoding or "utf-8"))
    result = ingest_partner(tmp_path, config)
    assert len(result.t1) == measurements and result.rejections.empty
