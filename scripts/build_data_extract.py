#!/usr/bin/env python3
"""Build the compact public-data extract shipped in ``data/extract/``.

``pharmafl.common.settings.data_dir`` falls back to this extract when there is no
``../shared/data`` beside the checkout, so ``make demo`` and ``make test`` run on a fresh
clone. The extract has the same folders, file names and column layout as the shared data (the
lines are copied verbatim), so every loader reads it unchanged, and it holds:

- FS-Mol: every assay of the demo's protein super-family (``DemoConfig.target_family``,
  kinase), so the demo's consortium is the same as from the full data for any seed and size;
  plus every assay that the test suite's FS-Mol consortia pick (:data:`CONSORTIA`), so they
  too are the same; and the rows of ``fsmol_assay_metadata.csv`` for these assays.
- Tox21, ToxCast, Biogen ADME: the compounds the consortia of :data:`CONSORTIA` pick.

A simulation's split depends only on the assays (compounds) it picks and on their own rows, so
these splits are exactly those of the full data; the script checks that before it finishes.
Deterministic: the same input gives byte-identical output (gzip with mtime 0, no file name).

    .venv/bin/python scripts/build_data_extract.py [--source ../shared/data] [--out data/extract]

When a test starts simulating another FS-Mol/Tox21/ADME consortium, add its spec to
:data:`CONSORTIA` and rebuild (tests/unit/common/test_data_extract.py compares the committed
extract with a rebuild from ../shared/data).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pharmafl.demo import DemoConfig
from pharmafl.simulate import SimulationSpec
from pharmafl.simulate.consortium import split_partners
from pharmafl.simulate.datasets import BUILTIN_DATASETS, PublicDataset, read_public_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "data" / "extract"

#: Consortia whose split the extract must reproduce exactly, with who simulates them.
CONSORTIA: tuple[tuple[str, SimulationSpec], ...] = (
    (
        "tests/conftest.py (small_consortium), tests/unit/report/test_report_cli.py",
        SimulationSpec(dataset="fsmol", partners=3, max_compounds=300, seed=7),
    ),
    (
        "tests/unit/flows/test_contribution_flow.py",
        SimulationSpec(dataset="fsmol", partners=6, max_compounds=400, seed=7),
    ),
    (
        "tests/unit/simulate/test_consortium.py",
        SimulationSpec(dataset="fsmol", partners=3, max_compounds=1500, seed=7),
    ),
    (
        "tests/unit/simulate/test_consortium.py",
        SimulationSpec(dataset="tox21", partners=2, max_compounds=200, seed=3),
    ),
    (
        "tests/unit/flows/test_free_rider.py",
        SimulationSpec(dataset="tox21", partners=6, max_compounds=1000, seed=3, overlap=0.0),
    ),
    (
        "tests/unit/simulate/test_consortium.py",
        SimulationSpec(dataset="adme", partners=2, max_compounds=200, seed=3),
    ),
    (
        "`--dataset toxcast` rehearsals on a fresh machine",
        SimulationSpec(dataset="toxcast", partners=2, max_compounds=200, seed=3),
    ),
)
FSMOL_METADATA = "fsmol_assay_metadata.csv"


@dataclass
class CsvLines:
    """A CSV file as its verbatim header line and data lines (bytes)."""

    header: bytes
    columns: list[str]
    lines: list[bytes]

    def column(self, name: str) -> list[str]:
        """The stripped values of one column, one per line (lines hold no newline in a field)."""
        i = self.columns.index(name)
        out = []
        for line in self.lines:
            fields = next(csv.reader([line.decode("utf-8")]))
            if len(fields) != len(self.columns):
                raise ValueError(f"a line has {len(fields)} fields, not {len(self.columns)}")
            out.append(fields[i].strip())
        return out


def read_lines(path: Path) -> CsvLines:
    """Read a CSV (or .csv.gz) as verbatim lines."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = raw.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines[-1] += b"\n"
    header = lines[0]
    columns = next(csv.reader([header.decode("utf-8")]))
    return CsvLines(header=header, columns=columns, lines=[ln for ln in lines[1:] if ln.strip()])


def write_lines(path: Path, header: bytes, lines: Sequence[bytes]) -> None:
    """Write lines as plain CSV, or deterministic gzip for a ``.gz`` name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = header + b"".join(lines)
    if path.suffix == ".gz":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
            gz.write(data)
        data = buf.getvalue()
    path.write_bytes(data)


def _key_column(name: str, columns: list[str]) -> str:
    """The column that decides what is kept: the assay id (FS-Mol) or the SMILES (wide)."""
    if name == "fsmol":
        return "assay_chembl_id"
    return next(c for c in columns if c.strip().lower() == "smiles")


def _family_assays(meta: CsvLines, family: str) -> set[str]:
    fam = meta.column("protein_super_family")
    return {a for a, f in zip(meta.column("assay_chembl_id"), fam, strict=True) if f == family}


def _readme(rows: list[tuple[str, int, str, int, int | None]]) -> str:
    consortia = "\n".join(
        f"  - {s.dataset}: {s.partners} partners × ≤ {s.max_compounds} compounds, seed "
        f"{s.seed} ({who})"
        for who, s in CONSORTIA
    )
    table = "\n".join(
        f"| `{path}` | {n:,} | {what} | {csv_bytes / 1024:,.0f} KiB |"
        + (f" {gz_bytes / 1024:,.0f} KiB gzipped |" if gz_bytes is not None else " (plain) |")
        for path, n, what, csv_bytes, gz_bytes in rows
    )
    family = DemoConfig.model_fields["target_family"].default
    return f"""# Public-data extract (shipped)

A compact extract of the public datasets in `../shared/data/`, so that `make demo` and
`make test` run on a fresh machine: `pharmafl.common.settings.data_dir()` reads
`PHARMAFL_DATA_DIR` when set, else `../shared/data` beside the checkout when it exists, else
this folder. Same folders, file names and column layout as the shared data (lines copied
verbatim), so every loader reads it unchanged. It is not a replacement for the full data:
use `../shared/data` or `PHARMAFL_DATA_DIR` for full-size runs.

Generated, do not edit: rebuild with

```bash
.venv/bin/python scripts/build_data_extract.py --source ../shared/data --out data/extract
```

(deterministic: the same input gives byte-identical files; `tests/unit/common/
test_data_extract.py` checks that this folder is what the script builds).

## What it holds

- FS-Mol: every assay of protein super-family `{family}` (the demo's `target_family`, so
  `make demo` simulates the same consortium as from the full data), plus every assay that
  these consortia pick (their splits are exactly those of the full data):
{consortia}
- `fsmol_assay_metadata.csv`: the rows of these assays.
- Tox21, ToxCast, Biogen ADME: the compounds that the consortia above pick.

| file | rows | holds | CSV | on disk |
|---|---|---|---|---|
{table}

## Licences and citations

- `fsmol/`: derived from ChEMBL 27 via the FS-Mol dataset. Licence: CC BY-SA 3.0 (Creative
  Commons Attribution-ShareAlike 3.0 Unported); these files stay under CC BY-SA 3.0 and keep
  this attribution. Cite: Stanley et al., "FS-Mol: A Few-Shot Learning Dataset of Molecules",
  NeurIPS 2021 Datasets and Benchmarks; Mendez et al., "ChEMBL: towards direct deposition of
  bioassay data", Nucleic Acids Research 2019.
- `tox21/`: Tox21 and ToxCast, US government works (NIH/NCATS Tox21, EPA ToxCast), public
  domain; MoleculeNet copies.
- `adme/`: Biogen public ADME set. MIT licence (c) 2020 molecularinformatics. Cite: Fang et
  al., "Prospective Validation of Machine Learning Algorithms for ADME Prediction: An
  Industrial Perspective", J. Chem. Inf. Model. 2023.
"""


def build(source: Path, out: Path, *, verify: bool = True) -> list[Path]:
    """Write the extract of ``source`` into ``out`` (replaced); return the files written.

    Raises
    ------
    FileNotFoundError
        If a source file is missing.
    RuntimeError
        If a consortium's split from the extract differs from its split from the source.
    """
    family = DemoConfig.model_fields["target_family"].default
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        rows: list[tuple[str, int, str, int, int | None]] = []
        full: dict[str, PublicDataset] = {}
        fsmol_assays: set[str] = set()
        for name, (folder, file) in BUILTIN_DATASETS.items():
            src = source / folder / file
            lines = read_lines(src)
            data = full[name] = read_public_file(src)
            specs = [s for _, s in CONSORTIA if s.dataset == name]
            if name == "fsmol":
                keep = _family_assays(read_lines(source / folder / FSMOL_METADATA), family)
                for spec in specs:
                    keep |= {a for part in split_partners(data, spec) for a in part["assay"]}
            else:
                keep = {
                    s
                    for spec in specs
                    for part in split_partners(data, spec)
                    for s in part["smiles"]
                }
            keys = lines.column(_key_column(name, lines.columns))
            kept = [ln for ln, k in zip(lines.lines, keys, strict=True) if k in keep]
            write_lines(tmp / folder / file, lines.header, kept)
            held = {k for k in keys if k in keep}
            if name == "fsmol":
                fsmol_assays = held
            what = f"{len(held):,} {'assays' if name == 'fsmol' else 'compounds'}"
            csv_bytes = len(lines.header) + sum(map(len, kept))
            gz = (tmp / folder / file).stat().st_size if file.endswith(".gz") else None
            rows.append((f"{folder}/{file}", len(kept), what, csv_bytes, gz))
        meta = read_lines(source / "fsmol" / FSMOL_METADATA)
        kept = [
            ln
            for ln, a in zip(meta.lines, meta.column("assay_chembl_id"), strict=True)
            if a in fsmol_assays
        ]
        write_lines(tmp / "fsmol" / FSMOL_METADATA, meta.header, kept)
        csv_bytes = len(meta.header) + sum(map(len, kept))
        rows.insert(1, (f"fsmol/{FSMOL_METADATA}", len(kept), "assay metadata", csv_bytes, None))
        (tmp / "README.md").write_text(_readme(rows), encoding="utf-8")
        if verify:
            _verify(full, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return sorted(p for p in out.rglob("*") if p.is_file())


def _verify(full: dict[str, PublicDataset], extract: Path) -> None:
    """Every consortium of CONSORTIA splits the extract exactly as it splits the source."""
    for who, spec in CONSORTIA:
        folder, file = BUILTIN_DATASETS[spec.dataset]
        small = read_public_file(extract / folder / file)
        pairs = zip(
            split_partners(full[spec.dataset], spec), split_partners(small, spec), strict=True
        )
        for i, (a, b) in enumerate(pairs):
            if not a.reset_index(drop=True).equals(b.reset_index(drop=True)):
                raise RuntimeError(f"{spec} ({who}): partner {i} differs in the extract")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"shared data (default {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"extract folder (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="skip re-splitting the extract (faster)"
    )
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"--source {args.source} does not exist")
    files = build(args.source, args.out, verify=not args.no_verify)
    for path in files:
        print(f"{path.stat().st_size:>10,}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
