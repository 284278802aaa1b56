"""A tiny partner folder builder for ingest tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pharmafl.common.errors import IngestError
from pharmafl.ingest import IngestResult, ingest_partner, parse_partner_config


class PartnerFolder:
    """Writes source files into a temporary partner folder and ingests them."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, rel: str, content: str | bytes | pd.DataFrame) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pd.DataFrame):
            content.to_parquet(path, index=False)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def ingest(self, doc: dict[str, Any], **kwargs: Any) -> IngestResult:
        return ingest_partner(self.root, parse_partner_config(doc), **kwargs)

    def error(self, doc: dict[str, Any]) -> IngestError:
        with pytest.raises(IngestError) as err:
            self.ingest(doc)
        return err.value


@pytest.fixture
def partner(tmp_path: Path) -> PartnerFolder:
    return PartnerFolder(tmp_path)
