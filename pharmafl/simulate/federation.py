"""Setting up federated training for a simulated consortium (rehearsals, demo, tests).

Generates what a real consortium creates by hand (``pharmafl keys generate`` at every party,
``pharmafl keys roster`` at the operator, the roster fingerprint pinned by every partner),
writes the operator's plan, and creates the initial global trunk from the shared trunk
config and seed (on a partner-side machine: it needs torch; the operator never does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from pharmafl.common.errors import FederationError
from pharmafl.common.io import atomic_write_bytes, atomic_write_text
from pharmafl.common.params import load_consortium_parameters
from pharmafl.model import MultiTaskModel, export_trunk, local_model_config
from pharmafl.model.config import GraphTrunkConfig, SparseTrunkConfig
from pharmafl.partner.federated import IDENTITY_DIR, ROSTER_FILE, ROSTER_PIN_FILE
from pharmafl.secure import generate_identity
from pharmafl.secure.identity import create_roster_file, public_key_path
from pharmafl.server.operator import INITIAL_TRUNK_FILE, PLAN_FILE
from pharmafl.server.plan import FederationPlan
from pharmafl.server.trunk import trunk_to_bytes

OPERATOR_ID = "operator"


def initial_trunk(trunk: dict[str, Any], seed: int) -> dict[str, np.ndarray]:
    """The initial global trunk: the shared trunk config built with the shared seed."""
    cfg: SparseTrunkConfig | GraphTrunkConfig
    if trunk.get("kind", "sparse") == "graph":
        cfg = GraphTrunkConfig.model_validate(trunk)
    else:
        cfg = SparseTrunkConfig.model_validate(trunk)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MultiTaskModel.from_config(local_model_config(cfg, 1, 0))
    return {k: v.numpy() for k, v in export_trunk(model).items()}


def setup_federation(consortium_dir: str | Path, plan: FederationPlan) -> Path:
    """Create identities, the signed roster, pins, the plan and the initial trunk.

    Returns the operator folder. Refuses a consortium that already has identities.
    """
    cdir = Path(consortium_dir)
    odir = cdir / "operator"
    partners = sorted(p for p in (cdir / "partners").iterdir() if p.is_dir())
    if (odir / "identity").exists():
        raise FederationError(
            "this consortium already has identities.",
            file=odir / "identity",
            fix="use it as is, or simulate a fresh consortium.",
        )
    params = load_consortium_parameters(odir / "consortium.json")
    trunk = dict(plan.trunk)
    if trunk.get("kind", "sparse") == "sparse":
        trunk["input_size"] = params.fingerprint.fold_size
    plan = plan.model_copy(update={"trunk": trunk})
    generate_identity(odir / IDENTITY_DIR, OPERATOR_ID, role="operator")
    pubs = []
    for p in partners:
        generate_identity(p / IDENTITY_DIR, p.name, role="partner")
        pubs.append(public_key_path(p / IDENTITY_DIR, p.name))
    roster = create_roster_file(
        odir / IDENTITY_DIR / f"{OPERATOR_ID}.key.json",
        pubs,
        odir / ROSTER_FILE,
        consortium=params.consortium_name,
    )
    roster_bytes = (odir / ROSTER_FILE).read_bytes()
    for p in partners:
        atomic_write_bytes(p / ROSTER_FILE, roster_bytes)
        atomic_write_text(p / ROSTER_PIN_FILE, roster.fingerprint() + "\n")
    atomic_write_text(odir / PLAN_FILE, plan.model_dump_json(indent=2) + "\n")
    atomic_write_bytes(odir / INITIAL_TRUNK_FILE, trunk_to_bytes(initial_trunk(trunk, plan.seed)))
    return odir


__all__ = ["OPERATOR_ID", "initial_trunk", "setup_federation"]
