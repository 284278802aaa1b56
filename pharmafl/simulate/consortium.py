"""Simulate a consortium from a public dataset: partner folders, operator folder, key.

Layout written (atomically: built in a temporary sibling, then renamed into place)::

    DIR/
      simulation.json            what was simulated (SimulationManifest; no key, no data)
      operator/
        consortium.json          shared parameters with the published reference hash
        README.txt
      partners/<name>/           alpha, bravo, charlie, delta, echo, …
        raw/…                    the partner's exports, in its own shape
        partner.toml|yaml        maps raw/ onto T0/T1/T2
        consortium.json          the same shared parameters
        key.json                 the consortium key (mode 0600) — never in operator/

Everything except the key is deterministic for a seed: the key is fresh random bytes
(:func:`pharmafl.common.secret.write_new_consortium_key`) unless an existing key file is
given, and the operator never holds it (the scrambling would protect nothing otherwise).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import pharmafl
from pharmafl.common.errors import ConfigError
from pharmafl.common.io import atomic_directory, atomic_write_bytes, atomic_write_text
from pharmafl.common.params import ConsortiumParameters
from pharmafl.common.secret import load_consortium_key, write_new_consortium_key
from pharmafl.common.settings import get_settings
from pharmafl.layout import ConsortiumLayout
from pharmafl.simulate.assign import (
    auxiliary_part,
    shuffle_labels,
    split_by_assay,
    split_by_compound,
)
from pharmafl.simulate.datasets import PublicDataset, load_dataset, read_public_file
from pharmafl.simulate.shapes import SHAPE_ORDER, PartnerExport, write_partner_export

logger = logging.getLogger(__name__)

#: Partner names, in order (NATO alphabet).
PARTNER_NAMES: tuple[str, ...] = (
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
    "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
    "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
)  # fmt: skip
#: The auxiliary public partner's name (``SimulationSpec.auxiliary_compounds``).
AUXILIARY_NAME = "public"

_OPERATOR_README = """\
Operator folder of a simulated pharmafl consortium.

consortium.json holds the shared consortium parameters and the published consistency hash
(reference_hash). The operator never receives the consortium key: descriptors are scrambled
and folds hashed with it precisely so that the operator cannot read them.
"""


class SimulationSpec(BaseModel):
    """What to simulate (the CLI builds one of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Literal["fsmol", "tox21", "toxcast", "adme"] = Field(
        "fsmol", description="Built-in public dataset (ignored when source is given)."
    )
    source: str | None = Field(None, description="Any file of a supported shape instead.")
    partners: int = Field(3, ge=2, le=len(PARTNER_NAMES), description="Number of partners.")
    max_compounds: int | None = Field(
        None, ge=10, le=10_000_000, description="Cap on each partner's distinct compounds."
    )
    seed: int = Field(0, ge=0, le=2**63 - 1, description="Seed of every random choice.")
    strategy: Literal["hash", "family"] = Field(
        "hash", description="Assay assignment: seeded hash, or by protein family."
    )
    overlap: float = Field(
        0.1, ge=0.0, le=1.0, description="Wide datasets: share of compounds also at a 2nd partner."
    )
    auxiliary_compounds: int | None = Field(
        None,
        ge=10,
        le=10_000_000,
        description=(
            "Add an auxiliary public partner ('public') holding the assays no partner kept, up "
            "to this many compounds (long datasets). It trains the shared trunk like any "
            "partner; its heads are not part of the consortium's benefit."
        ),
    )
    auxiliary_source: str | None = Field(
        None,
        description=(
            "A public file (FS-Mol long shape) the auxiliary partner's assays come from "
            "instead of the assays no partner kept, e.g. other target families than the "
            "partners'. Assays a partner holds are still left out. Needs auxiliary_compounds."
        ),
    )
    free_riders: tuple[str, ...] = Field(
        (),
        description="Partners (by name) whose results are shuffled within each assay: a "
        "rehearsal of a free rider that joins with real compounds and meaningless labels, "
        "which the contribution study must rank last.",
    )

    @model_validator(mode="after")
    def _known_free_riders(self) -> SimulationSpec:
        members = PARTNER_NAMES[: self.partners]
        unknown = [n for n in self.free_riders if n not in members]
        if unknown or len(set(self.free_riders)) != len(self.free_riders):
            raise ValueError(
                f"free riders {list(self.free_riders)} must be distinct partners of "
                f"{', '.join(members)}"
            )
        if len(self.free_riders) == self.partners:
            raise ValueError("a consortium of free riders only has nothing to learn")
        if self.auxiliary_source is not None and self.auxiliary_compounds is None:
            raise ValueError(
                "auxiliary_source needs auxiliary_compounds (the public partner's size)"
            )
        return self


class PartnerSummary(BaseModel):
    """One simulated partner, as counts (no ids, no structures)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    shape: str = Field(description="Export shape of its raw files.")
    config_file: str = Field(description="Partner config, relative to the partner folder.")
    compounds: int = Field(ge=0)
    measurements: int = Field(ge=0)
    assays: int = Field(ge=0)
    auxiliary: bool = Field(
        False, description="The auxiliary public partner: trains the trunk, not in the benefit."
    )
    free_rider: bool = Field(False, description="Its results were shuffled (a free rider).")


class SimulationManifest(BaseModel):
    """What a simulation produced (``DIR/simulation.json``); no key, no data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pharmafl_version: str
    spec: SimulationSpec
    dataset_name: str
    dataset_kind: Literal["dose_response", "binary", "adme"]
    source_file: str = Field(description="File name of the public data read.")
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    partners: list[PartnerSummary]
    compounds_shared: int = Field(ge=0, description="Distinct compounds at two or more partners.")
    parameter_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    reference_hash: str = Field(pattern=r"^[0-9a-f]{64}$")


@dataclass
class SimulationResult:
    """Where things were written, and the manifest."""

    out_dir: Path
    operator_dir: Path
    partner_dirs: dict[str, Path]
    manifest: SimulationManifest


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(
            "the output path exists and is not a folder.", file=out, fix="choose another --out."
        )
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(
            "the output folder exists and is not empty.",
            file=out,
            fix="choose another --out, or pass --force to replace it.",
        )


def _partner_export(
    name: str, kind: str, meas: pd.DataFrame, seed: int, index: int, workers: int
) -> PartnerExport:
    smiles = sorted(pd.unique(meas["smiles"]))
    rng = np.random.default_rng([seed, index])
    numbers = rng.permutation(len(smiles)) + 1
    number_of = dict(zip(smiles, numbers.tolist(), strict=True))
    frame = meas.assign(compound_number=meas["smiles"].map(number_of).astype(np.int64))
    return PartnerExport(
        name=name,
        kind=kind,  # type: ignore[arg-type]
        measurements=frame,
        workers=workers,
    )


def split_partners(
    data: PublicDataset, spec: SimulationSpec, public: PublicDataset | None = None
) -> list[pd.DataFrame]:
    """Each partner's measurements of ``data``, as ``spec`` splits them; the auxiliary
    partner's last when the spec asks for one (from ``public`` when given: the file of
    ``spec.auxiliary_source``, else the assays of ``data`` no partner kept)."""
    parts = _split_members(data, spec)
    for i, name in enumerate(PARTNER_NAMES[: spec.partners]):
        if name in spec.free_riders:
            parts[i] = shuffle_labels(parts[i], spec.seed + i)
    if spec.auxiliary_compounds is not None:
        pool = data if public is None else _same_kind(public, data)
        parts.append(auxiliary_part(pool, parts, spec.auxiliary_compounds, spec.seed))
    return parts


def _same_kind(public: PublicDataset, data: PublicDataset) -> PublicDataset:
    """``public`` if its values mean what the partners' do (one export kind for all)."""
    if public.kind != data.kind:
        raise ConfigError(
            f"the auxiliary source holds {public.kind} values, the partners' data "
            f"{data.kind} values.",
            file=public.source,
            fix="give an auxiliary source of the same shape as the partners' data "
            "(FS-Mol long potencies for FS-Mol partners).",
        )
    return public


def partner_names(spec: SimulationSpec) -> tuple[str, ...]:
    """The simulated partners' names, in the order of :func:`split_partners`."""
    aux = (AUXILIARY_NAME,) if spec.auxiliary_compounds is not None else ()
    return PARTNER_NAMES[: spec.partners] + aux


def _split_members(data: PublicDataset, spec: SimulationSpec) -> list[pd.DataFrame]:
    if data.layout == "long":
        return split_by_assay(
            data,
            spec.partners,
            strategy=spec.strategy,
            max_compounds=spec.max_compounds,
            seed=spec.seed,
        )
    return split_by_compound(
        data,
        spec.partners,
        strategy=spec.strategy,
        max_compounds=spec.max_compounds,
        seed=spec.seed,
        overlap=spec.overlap,
    )


def simulate_consortium(
    out_dir: str | Path,
    spec: SimulationSpec | None = None,
    *,
    force: bool = False,
    parameters: ConsortiumParameters | None = None,
    progress: Callable[[str], None] | None = None,
    workers: int | None = None,
    key_file: str | Path | None = None,
) -> SimulationResult:
    """Split a public dataset into partner folders with realistic exports (see module doc).

    Parameters
    ----------
    out_dir
        Folder to create (``DIR``); an existing non-empty one is refused unless ``force``.
    spec
        What to simulate (default: FS-Mol, 3 partners, seed 0, hash strategy, no cap).
    force
        Replace an existing ``out_dir`` (only once the new one is complete).
    parameters
        Consortium parameters (default: MELLODDY defaults); ``reference_hash`` is filled in
        with :func:`pharmafl.chem.consistency_hash` under the new key.
    progress
        Called with a short message after each step (for progress display).
    workers
        Processes for depicting SDF structures (default: ``PHARMAFL_WORKERS``, 0 = all
        cores); the files are the same for any number.
    key_file
        Use this existing consortium key (a key file a real consortium already shares, or a
        fixed key for a reproducible rehearsal) instead of fresh random bytes. It is checked
        like any key file (owner-only mode, MELLODDY ``{"key": ...}`` format).

    Raises
    ------
    ConfigError
        For a bad spec, an output folder in the way, or a split that leaves a partner empty.
    DataNotFoundError, IngestError
        If the public data is missing or of no supported shape.
    KeyFileError
        If ``key_file`` is unreadable, malformed or readable by others.
    """
    from pharmafl.chem import consistency_hash  # partner-side chemistry (RDKit)

    spec = spec or SimulationSpec()
    out = Path(out_dir)
    _check_target(out, force)
    given_key = Path(key_file) if key_file is not None else None
    if given_key is not None:
        load_consortium_key(given_key)  # checked (mode, format) before any work
    say = progress or (lambda _msg: None)
    n_workers = get_settings().workers if workers is None else workers
    n_workers = n_workers if n_workers > 0 else (os.cpu_count() or 1)
    data = read_public_file(spec.source) if spec.source else load_dataset(spec.dataset)
    say(f"read {data.name}: {len(data.measurements)} measurements")
    public = read_public_file(spec.auxiliary_source) if spec.auxiliary_source else None
    parts = split_partners(data, spec, public)
    names = partner_names(spec)
    for name, part in zip(names, parts, strict=True):
        if part.empty:
            raise ConfigError(
                f"partner {name!r} would get no measurements.",
                fix="use fewer partners, a larger --max-compounds, or another seed/strategy.",
            )
    params = parameters or ConsortiumParameters(consortium_name=f"simulated-{data.name}")
    summaries: list[PartnerSummary] = []
    with atomic_directory(out) as tmp:
        layout = ConsortiumLayout(tmp)
        key_path = given_key or write_new_consortium_key(layout.partner(names[0]).key)
        key_bytes = key_path.read_bytes()
        reference = consistency_hash(params, load_consortium_key(key_path))
        params = params.model_copy(update={"reference_hash": reference})
        params_text = params.model_dump_json(indent=2) + "\n"
        for i, (name, part) in enumerate(zip(names, parts, strict=True)):
            partner = layout.partner(name)
            pdir = partner.root
            shape = SHAPE_ORDER[i % len(SHAPE_ORDER)]
            export = _partner_export(name, data.kind, part, spec.seed, i, n_workers)
            config_path = write_partner_export(pdir, shape, export)
            atomic_write_text(partner.consortium, params_text)
            atomic_write_bytes(partner.key, key_bytes, mode=0o600)
            summaries.append(
                PartnerSummary(
                    name=name,
                    shape=shape,
                    config_file=config_path.name,
                    compounds=int(part["smiles"].nunique()),
                    measurements=len(part),
                    assays=int(part["assay"].nunique()),
                    auxiliary=name == AUXILIARY_NAME,
                    free_rider=name in spec.free_riders,
                )
            )
            say(f"wrote partner {name} ({shape}): {summaries[-1].compounds} compounds")
        atomic_write_text(layout.operator.consortium, params_text)
        atomic_write_text(layout.operator.root / "README.txt", _OPERATOR_README)
        counts = pd.concat([p["smiles"].drop_duplicates() for p in parts]).value_counts()
        manifest = SimulationManifest(
            pharmafl_version=pharmafl.__version__,
            spec=spec,
            dataset_name=data.name,
            dataset_kind=data.kind,
            source_file=data.source.name,
            source_sha256=data.source_sha256,
            partners=summaries,
            compounds_shared=int((counts >= 2).sum()),
            parameter_hash=params.parameter_hash(),
            reference_hash=reference,
        )
        atomic_write_text(layout.simulation, manifest.model_dump_json(indent=2) + "\n")
    logger.info("simulated %d partners from %s into %s", len(names), data.name, out)
    return SimulationResult(
        out_dir=out,
        operator_dir=ConsortiumLayout(out).operator.root,
        partner_dirs={n: ConsortiumLayout(out).partner(n).root for n in names},
        manifest=manifest,
    )


def build_spec(**fields: object) -> SimulationSpec:
    """Validate simulation settings, raising :class:`ConfigError` with the field and fix."""
    try:
        return SimulationSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"invalid simulation setting {loc!r}: {first['msg']}.",
            fix="see `pharmafl consortium simulate --help`.",
        ) from None


SCHEMA_MODELS = {"consortium_simulation": SimulationManifest}

__all__ = [
    "AUXILIARY_NAME",
    "PARTNER_NAMES",
    "SCHEMA_MODELS",
    "PartnerSummary",
    "SimulationManifest",
    "SimulationResult",
    "SimulationSpec",
    "build_spec",
    "partner_names",
    "simulate_consortium",
    "split_partners",
]
