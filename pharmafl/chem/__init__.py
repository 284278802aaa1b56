"""Chemistry on the partner side: standardization, scrambled fingerprints, graphs, folds.

MELLODDY-TUNER-compatible (reference notes §1.5–1.8): RDKit standardization, hashed Morgan
fingerprints permuted with the consortium key, keyed scaffold folds, and a consistency hash
over a built-in reference set; plus molecular graphs with a fixed vocabulary. The batch
entry point :func:`describe_structures` does all per-molecule work in one pass, in parallel.
"""

from pharmafl.chem.batch import (
    REJECTION_COLUMNS,
    DescribedBatch,
    describe_chunk,
    describe_structures,
    merge_batches,
)
from pharmafl.chem.cache import (
    CacheReport,
    DescribeCache,
    cache_scope,
    describe_with_cache,
)
from pharmafl.chem.consistency import (
    REFERENCE_SET,
    ReferenceMolecule,
    consistency_components,
    consistency_hash,
)
from pharmafl.chem.errors import REASON_CODES, MoleculeRejectedError
from pharmafl.chem.fingerprints import morgan_bits
from pharmafl.chem.graphs import (
    ATOM_FEATURES,
    BOND_FEATURES,
    DEFAULT_GRAPH_VOCABULARY,
    GraphVocabulary,
    MolGraph,
    PackedGraphs,
    encode_graph,
    mol_to_graph,
)
from pharmafl.chem.pool import chunk_bounds, prestart_workers
from pharmafl.chem.scaffolds import (
    ACYCLIC_FOLD_TEXT,
    FoldAssigner,
    assign_fold,
    fold_scaffold,
    murcko_smiles,
    reduce_scaffold,
)
from pharmafl.chem.scramble import KeyedPermutation
from pharmafl.chem.standardize import (
    Standardizer,
    get_standardizer,
    standardize_mol,
    standardize_smiles,
)

SCHEMA_MODELS = {"graph_vocabulary": GraphVocabulary}

__all__ = [
    "ACYCLIC_FOLD_TEXT",
    "ATOM_FEATURES",
    "BOND_FEATURES",
    "CacheReport",
    "DEFAULT_GRAPH_VOCABULARY",
    "DescribeCache",
    "DescribedBatch",
    "FoldAssigner",
    "GraphVocabulary",
    "KeyedPermutation",
    "MolGraph",
    "MoleculeRejectedError",
    "PackedGraphs",
    "REASON_CODES",
    "REFERENCE_SET",
    "REJECTION_COLUMNS",
    "ReferenceMolecule",
    "SCHEMA_MODELS",
    "Standardizer",
    "assign_fold",
    "cache_scope",
    "chunk_bounds",
    "consistency_components",
    "consistency_hash",
    "describe_chunk",
    "describe_structures",
    "describe_with_cache",
    "encode_graph",
    "fold_scaffold",
    "get_standardizer",
    "merge_batches",
    "mol_to_graph",
    "morgan_bits",
    "murcko_smiles",
    "prestart_workers",
    "reduce_scaffold",
    "standardize_mol",
    "standardize_smiles",
]
