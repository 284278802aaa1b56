"""Simulated consortia for demos, tests and rehearsals.

:func:`simulate_consortium` splits a public dataset (FS-Mol, Tox21/ToxCast, Biogen ADME, or
any file of those shapes) among N partner folders, each with raw exports in a different
realistic shape and a partner config, plus the shared consortium parameters and key, and an
operator folder without the key.
"""

from pharmafl.simulate.assign import (
    ASSAY_STRATEGIES,
    seeded_hash,
    split_by_assay,
    split_by_compound,
)
from pharmafl.simulate.consortium import (
    AUXILIARY_NAME,
    PARTNER_NAMES,
    SCHEMA_MODELS,
    PartnerSummary,
    SimulationManifest,
    SimulationResult,
    SimulationSpec,
    build_spec,
    partner_names,
    simulate_consortium,
)
from pharmafl.simulate.datasets import (
    BUILTIN_DATASETS,
    PublicDataset,
    load_dataset,
    read_public_file,
)
from pharmafl.simulate.shapes import (
    EXPORT_SHAPES,
    SHAPE_ORDER,
    PartnerExport,
    write_partner_export,
)
from pharmafl.simulate.toml import toml_dumps

__all__ = [
    "ASSAY_STRATEGIES",
    "AUXILIARY_NAME",
    "BUILTIN_DATASETS",
    "EXPORT_SHAPES",
    "PARTNER_NAMES",
    "PartnerExport",
    "PartnerSummary",
    "PublicDataset",
    "SCHEMA_MODELS",
    "SHAPE_ORDER",
    "SimulationManifest",
    "SimulationResult",
    "SimulationSpec",
    "build_spec",
    "load_dataset",
    "partner_names",
    "read_public_file",
    "seeded_hash",
    "simulate_consortium",
    "split_by_assay",
    "split_by_compound",
    "toml_dumps",
    "write_partner_export",
]
