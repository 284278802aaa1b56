"""Realistic partner export shapes for simulated partners (one per partner, cycling).

Each writer puts a partner's measurements under ``raw/`` in its own shape and returns the
partner config document that maps them onto T0/T1/T2:

========== ================================================================================
shape      files
========== ================================================================================
chembl_csv one CSV, one row per measurement (structure repeated), ChEMBL-style
           ``standard_relation``/``standard_value``/``standard_units`` (nM); TOML config
sdf_pic50  one SDF, one record per compound (repeated for replicates), one ``pIC50 <assay>``
           property per assay with the qualifier inside the value (``<4.52``); TOML config
parquet_um structures.parquet (integer ids) + activities.parquet (µM, qualifier column) +
           an assay description CSV with the partner's own column names; TOML config
tsv_molar  compounds.tsv + measurements.tsv (molar, scientific notation, ``Operator``
           column); YAML config
========== ================================================================================

For binary (Tox21) and ADME data the same layouts carry 0/1 readouts (unit ``binary``) or
values as given (unit ``none``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pharmafl.common.io import atomic_write_bytes, atomic_write_text
from pharmafl.ingest.config import parse_partner_config
from pharmafl.ingest.sdf import format_sdf_record, smiles_to_molblocks, write_sdf
from pharmafl.simulate.datasets import DatasetKind
from pharmafl.simulate.toml import toml_dumps

#: ChEMBL relation spellings, mirrored for a value turned into a pXC50.
_MIRROR_SPELLING = {"<": ">", "<=": ">=", "<<": ">>", ">": "<", ">=": "<=", ">>": "<<"}


@dataclass(frozen=True)
class PartnerExport:
    """What a shape writer gets: the partner and its measurements.

    ``measurements`` has ``compound_number`` (int, 1…n, the partner's own numbering),
    ``smiles``, ``assay``, ``relation`` (ChEMBL spelling or ""), ``value`` (nM for
    dose-response, 0/1 for binary, as given for ADME; NaN when empty), ``source_type``.
    """

    name: str
    kind: DatasetKind
    measurements: pd.DataFrame
    workers: int = 1
    """Processes for depicting SDF structures."""

    @property
    def prefix(self) -> str:
        """Upper-case id prefix derived from the partner name."""
        return self.name[:3].upper()


def _defaults(kind: DatasetKind) -> dict[str, Any]:
    if kind == "binary":
        return {"assay_type": "OTHER", "is_binary": True}
    if kind == "adme":
        return {"assay_type": "ADME"}
    # FS-Mol B/F/T and A assays are all potencies (IC50/Ki…) → dose-response "OTHER".
    return {"assay_type": "OTHER"}


def _fixed_unit(kind: DatasetKind) -> str:
    return {"binary": "binary", "adme": "none", "dose_response": "nM"}[kind]


def _num(values: np.ndarray, fmt: str) -> list[str]:
    return ["" if not np.isfinite(v) else format(v, fmt) for v in values]


def _csv(frame: pd.DataFrame, sep: str = ",") -> str:
    return frame.to_csv(index=False, sep=sep, lineterminator="\n")


def _chembl_csv(raw: Path, part: PartnerExport) -> tuple[dict[str, Any], str]:
    m = part.measurements.sort_values(["assay", "compound_number"], kind="stable")
    ids = [f"{part.prefix}-{n:07d}" for n in m["compound_number"]]
    frame = pd.DataFrame(
        {
            "molecule_id": ids,
            "canonical_smiles": m["smiles"].to_numpy(),
            "assay_chembl_id": m["assay"].to_numpy(),
            "standard_relation": m["relation"].to_numpy(),
            "standard_value": _num(m["value"].to_numpy(), ".6g"),
        }
    )
    activity: dict[str, Any] = {
        "path": "raw/chembl_export.csv",
        "columns": {
            "input_compound_id": "molecule_id",
            "input_assay_id": "assay_chembl_id",
            "standard_qualifier": "standard_relation",
            "standard_value": "standard_value",
        },
    }
    if part.kind == "dose_response":
        frame["standard_units"] = "nM"
        activity["unit_column"] = "standard_units"
    else:
        activity["unit"] = _fixed_unit(part.kind)
    atomic_write_text(raw / "chembl_export.csv", _csv(frame))
    doc = {
        "name": part.name,
        "structures": [
            {
                "path": "raw/chembl_export.csv",
                "allow_repeated_ids": True,
                "columns": {"input_compound_id": "molecule_id", "smiles": "canonical_smiles"},
            }
        ],
        "activities": [activity],
        "assay_defaults": _defaults(part.kind),
    }
    return doc, "partner.toml"


def _sdf_pic50(raw: Path, part: PartnerExport) -> tuple[dict[str, Any], str]:
    m = part.measurements.sort_values(["compound_number", "assay"], kind="stable").copy()
    m["replicate"] = m.groupby(["compound_number", "assay"]).cumcount()
    m = m.sort_values(["compound_number", "replicate", "assay"], kind="stable")
    value = m["value"].to_numpy(dtype=np.float64)
    if part.kind == "dose_response":
        prefix, unit = "pIC50 ", "pIC50"
        with np.errstate(divide="ignore", invalid="ignore"):
            pic50 = 9.0 - np.log10(value)
        qual = [_MIRROR_SPELLING.get(r, "" if r in ("", "=") else r) for r in m["relation"]]
        texts = [
            "ND" if not (np.isfinite(v) and v > 0) else f"{q}{p:.2f}"
            for q, v, p in zip(qual, value, pic50, strict=True)
        ]
    else:
        prefix = "Result " if part.kind == "binary" else "ADME "
        unit = _fixed_unit(part.kind)
        texts = _num(value, "g" if part.kind == "binary" else ".6g")
    unique = list(pd.unique(m["smiles"]))
    molblocks = dict(zip(unique, smiles_to_molblocks(unique, workers=part.workers), strict=True))
    # One record per (compound, replicate): rows are sorted, so records are runs of rows.
    numbers = m["compound_number"].to_numpy()
    reps = m["replicate"].to_numpy()
    assays, smiles = m["assay"].tolist(), m["smiles"].tolist()
    starts = np.flatnonzero(
        np.r_[True, (numbers[1:] != numbers[:-1]) | (reps[1:] != reps[:-1])]
    ).tolist()
    records = []
    for a, b in zip(starts, [*starts[1:], len(m)], strict=True):
        props = {f"{prefix}{assays[i]}": texts[i] for i in range(a, b)}
        title = f"{part.prefix}{int(numbers[a]):07d}"
        records.append(format_sdf_record(title, molblocks[smiles[a]], props))
    write_sdf(raw / "compounds.sdf", records)
    doc = {
        "name": part.name,
        "structures": [{"path": "raw/compounds.sdf", "allow_repeated_ids": True}],
        "activities": [
            {
                "path": "raw/compounds.sdf",
                "layout": "wide",
                "assay_column_prefix": prefix,
                "unit": unit,
                "qualifier_in_value": part.kind == "dose_response",
            }
        ],
        "assay_defaults": _defaults(part.kind),
    }
    return doc, "partner.toml"


def _parquet_um(raw: Path, part: PartnerExport) -> tuple[dict[str, Any], str]:
    m = part.measurements.sort_values(["assay", "compound_number"], kind="stable")
    ids = 1_000_000 + m["compound_number"].to_numpy(dtype=np.int64)
    structures = (
        pd.DataFrame({"compound_id": ids, "smiles": m["smiles"].to_numpy()})
        .drop_duplicates("compound_id")
        .sort_values("compound_id")
        .reset_index(drop=True)
    )
    value = m["value"].to_numpy(dtype=np.float64)
    if part.kind == "dose_response":
        value, unit = value / 1000.0, "uM"
    elif part.kind == "binary":
        value, unit = np.where(value == 1, 1.0, np.where(value == 0, -1.0, np.nan)), "binary"
    else:
        unit = "none"
    activities = pd.DataFrame(
        {
            "compound_id": ids,
            "assay_id": m["assay"].to_numpy(),
            "qualifier": pd.Series(m["relation"].to_numpy(), dtype=object).replace("", None),
            "value_um" if unit == "uM" else "value": value,
        }
    )
    assays = m.drop_duplicates("assay")[["assay", "source_type"]].sort_values("assay")
    defaults = _defaults(part.kind)
    binary = part.kind == "binary"
    assay_table = pd.DataFrame(
        {
            "assay_id": assays["assay"].to_numpy(),
            "category": defaults["assay_type"],
            "regression": "no" if binary else "yes",
            "binary": "yes" if binary else "no",
            "source_type": assays["source_type"].to_numpy(),
        }
    )
    for name, frame in (("structures", structures), ("activities", activities)):
        path = raw / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = frame.to_parquet(index=False, compression="zstd")
        atomic_write_bytes(path, buf)
    atomic_write_text(raw / "assays.csv", _csv(assay_table))
    doc = {
        "name": part.name,
        "structures": [
            {"path": "raw/structures.parquet", "columns": {"input_compound_id": "compound_id"}}
        ],
        "activities": [
            {
                "path": "raw/activities.parquet",
                "unit": unit,
                "columns": {
                    "input_compound_id": "compound_id",
                    "input_assay_id": "assay_id",
                    "standard_qualifier": "qualifier",
                    "standard_value": "value_um" if unit == "uM" else "value",
                },
            }
        ],
        "assays": [
            {
                "path": "raw/assays.csv",
                "columns": {
                    "input_assay_id": "assay_id",
                    "assay_type": "category",
                    "use_in_regression": "regression",
                    "is_binary": "binary",
                },
                "ignore_columns": ["source_type"],
            }
        ],
    }
    return doc, "partner.toml"


def _tsv_molar(raw: Path, part: PartnerExport) -> tuple[dict[str, Any], str]:
    m = part.measurements.sort_values(["assay", "compound_number"], kind="stable")
    ids = [f"{part.prefix}_{n}" for n in m["compound_number"]]
    compounds = (
        pd.DataFrame(
            {
                "Compound": ids,
                "SMILES": m["smiles"].to_numpy(),
                "Number": m["compound_number"].to_numpy(),
            }
        )
        .drop_duplicates("Compound")
        .sort_values("Number")
        .drop(columns="Number")
    )
    compounds["Project"] = "legacy-import"
    value = m["value"].to_numpy(dtype=np.float64)
    if part.kind == "dose_response":
        texts, unit = _num(value * 1e-9, ".4e"), "M"
    else:
        unit = _fixed_unit(part.kind)
        texts = _num(value, "g" if part.kind == "binary" else ".6g")
    results = pd.DataFrame(
        {
            "Compound": ids,
            "Assay": m["assay"].to_numpy(),
            "Operator": m["relation"].to_numpy(),
            "Result": texts,
        }
    )
    atomic_write_text(raw / "compounds.tsv", _csv(compounds, "\t"))
    atomic_write_text(raw / "measurements.tsv", _csv(results, "\t"))
    doc = {
        "name": part.name,
        "structures": [
            {
                "path": "raw/compounds.tsv",
                "columns": {"input_compound_id": "Compound", "smiles": "SMILES"},
                "ignore_columns": ["Project"],
            }
        ],
        "activities": [
            {
                "path": "raw/measurements.tsv",
                "unit": unit,
                "columns": {
                    "input_compound_id": "Compound",
                    "input_assay_id": "Assay",
                    "standard_qualifier": "Operator",
                    "standard_value": "Result",
                },
            }
        ],
        "assay_defaults": _defaults(part.kind),
    }
    return doc, "partner.yaml"


#: Export shapes: name → writer(raw folder, partner) → (config document, config file name).
EXPORT_SHAPES: dict[str, Callable[[Path, PartnerExport], tuple[dict[str, Any], str]]] = {
    "chembl_csv": _chembl_csv,
    "parquet_um": _parquet_um,
    "sdf_pic50": _sdf_pic50,
    "tsv_molar": _tsv_molar,
}
#: The order in which partners get shapes (partner i gets ``SHAPE_ORDER[i % 4]``).
SHAPE_ORDER: tuple[str, ...] = ("chembl_csv", "sdf_pic50", "parquet_um", "tsv_molar")


def write_partner_export(partner_dir: Path, shape: str, part: PartnerExport) -> Path:
    """Write ``part``'s raw files and config into ``partner_dir``; return the config path.

    The config is validated as a :class:`~pharmafl.ingest.config.PartnerConfig` before it
    is written.
    """
    doc, config_name = EXPORT_SHAPES[shape](partner_dir / "raw", part)
    config_path = partner_dir / config_name
    parse_partner_config(doc, source=config_path)
    header = (
        f"# Partner config of simulated partner {part.name!r} (shape {shape}).\n"
        "# Maps this partner's own exports onto MELLODDY T0/T1/T2; see\n"
        "# schemas/partner_config.schema.json for every field.\n"
    )
    if config_name.endswith(".yaml"):
        text = header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    else:
        text = header + toml_dumps(doc)
    atomic_write_text(config_path, text)
    return config_path


__all__ = ["EXPORT_SHAPES", "SHAPE_ORDER", "PartnerExport", "write_partner_export"]
