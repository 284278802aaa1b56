"""Partner exports → validated T0 (assays), T1 (activities), T2 (structures) tables.

A partner config (:class:`PartnerConfig`, ``partner.toml`` or ``partner.yaml``) maps the
partner's own CSV/TSV/parquet/SDF exports (or MELLODDY-TUNER's own T0/T1/T2 files) onto the
MELLODDY year-3 standard tables; :func:`ingest_partner` reads and checks them and converts
units to pXC50; :func:`inspect_exports` drafts a commented config from export files.
"""

from pharmafl.ingest.config import (
    CONFIG_FILE_NAMES,
    ActivitySource,
    AssayDefaults,
    AssaySource,
    MelloddyInputs,
    PartnerConfig,
    StructureSource,
    find_partner_config,
    infer_format,
    load_partner_config,
    parse_partner_config,
    partner_config_path,
)
from pharmafl.ingest.config import SCHEMA_MODELS as _CONFIG_MODELS
from pharmafl.ingest.inspect import (
    Inspection,
    draft_partner_config,
    inspect_exports,
    write_partner_config,
)
from pharmafl.ingest.models import (
    EXPERT_THRESHOLD_COLUMNS,
    T0_COLUMNS,
    T1_COLUMNS,
    T2_COLUMNS,
    T0Assay,
    T1Activity,
    T2Structure,
)
from pharmafl.ingest.models import SCHEMA_MODELS as _TABLE_MODELS
from pharmafl.ingest.read import IngestResult, assign_ids, ingest_partner, write_standard_tables
from pharmafl.ingest.sdf import format_sdf_record, read_sdf_table, smiles_to_molblock, write_sdf
from pharmafl.ingest.tables import REJECTION_REASONS
from pharmafl.ingest.units import (
    QUALIFIER_SPELLINGS,
    UNITS,
    Unit,
    convert_values,
    normalize_qualifiers,
    qualified_values,
    resolve_unit,
    split_qualified_values,
    to_pxc50,
    valid_unit_names,
)

SCHEMA_MODELS = {**_TABLE_MODELS, **_CONFIG_MODELS}

__all__ = [
    "ActivitySource",
    "AssayDefaults",
    "AssaySource",
    "CONFIG_FILE_NAMES",
    "EXPERT_THRESHOLD_COLUMNS",
    "IngestResult",
    "Inspection",
    "MelloddyInputs",
    "PartnerConfig",
    "QUALIFIER_SPELLINGS",
    "REJECTION_REASONS",
    "SCHEMA_MODELS",
    "StructureSource",
    "T0Assay",
    "T0_COLUMNS",
    "T1Activity",
    "T1_COLUMNS",
    "T2Structure",
    "T2_COLUMNS",
    "UNITS",
    "Unit",
    "assign_ids",
    "convert_values",
    "draft_partner_config",
    "find_partner_config",
    "format_sdf_record",
    "infer_format",
    "ingest_partner",
    "inspect_exports",
    "load_partner_config",
    "normalize_qualifiers",
    "parse_partner_config",
    "partner_config_path",
    "qualified_values",
    "read_sdf_table",
    "resolve_unit",
    "smiles_to_molblock",
    "split_qualified_values",
    "to_pxc50",
    "valid_unit_names",
    "write_partner_config",
    "write_sdf",
    "write_standard_tables",
]
