"""A partner joins a real consortium: its folder, key, identity, and the roster it pins.

The path (docs/partner-guide.md, docs/operator-guide.md):

1. The operator creates the consortium (:mod:`pharmafl.server.create`) and sends every
   partner ``consortium.json`` (the shared parameters).
2. One partner, the key holder, joins with ``new_key=True``: a fresh 256-bit consortium key.
   It shares the key file with every other partner out of band (its own secure channel;
   never through the operator or the exchange store), and they join with ``key_file``.
3. Each partner sends ``identity/<id>.pub.json`` to the operator: its signing and encryption
   keys and its **key check** (:func:`pharmafl.common.secret.consortium_key_check`: an HMAC
   of its id and public keys under a scrypt of the consortium key — only a key holder can
   compute it, and it is wrong for any other identity).
4. The operator signs the roster (every public identity, the security policy, the parameters'
   hash) and publishes its fingerprint out of band. Each partner pins it
   (:func:`pin_roster`) only after checking the signature, the fingerprint, its own entry,
   every partner's key check recomputed with its own key (so all hold one key, and no
   identity joined with a copied check), and the parameters' hash of its own
   ``consortium.json``; the same checks run before every round. Pinning also creates the
   partner's record of aggregated starting trunks (:class:`~pharmafl.partner.reveals.
   StartRecord`), which must exist from then on.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from pharmafl.common.crypto import constant_time_equal
from pharmafl.common.errors import ConfigError, FederationError
from pharmafl.common.io import atomic_write_bytes, atomic_write_text
from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
from pharmafl.common.secret import (
    check_shareable_key,
    consortium_key_check,
    key_check_key,
    load_consortium_key,
    write_new_consortium_key,
)
from pharmafl.layout import PartnerLayout
from pharmafl.partner.reveals import StartRecord
from pharmafl.secure.identity import (
    Identity,
    PublicIdentity,
    Roster,
    load_identity_dir,
    load_roster,
    public_key_path,
    write_identity,
)

logger = logging.getLogger(__name__)

#: The folder a partner drops its exports into (any other path works in partner.toml).
EXPORTS_DIR = "exports"
#: The commented config template ``join`` writes (``partner.toml`` itself is the user's).
CONFIG_TEMPLATE = "partner.toml.example"

_TEMPLATE = """\
# pharmafl partner config: how YOUR export files map onto the MELLODDY tables.
# Copy this file to partner.toml and edit it, or let pharmafl write one from your files:
#     pharmafl partner inspect {exports}/* --out partner.toml
# Every option is documented in docs/partner-guide.md (schema: schemas/partner_config.schema.json).

name = "{name}"

# Structures: one row per compound, your own compound id and a SMILES (or an SDF file).
[[structures]]
path = "{exports}/compounds.csv"
columns = {{ input_compound_id = "Compound ID", smiles = "SMILES" }}

# Activities: one row per measurement; the unit converts to pXC50 (nM, uM, M, pIC50 ...).
[[activities]]
path = "{exports}/ic50.csv"
unit = "nM"

[activities.columns]
input_compound_id = "Compound ID"
input_assay_id = "Assay"
standard_qualifier = "Relation"   # '<', '>', '=' ... (or qualifiers inside the values)
standard_value = "IC50 (nM)"

# Assays without their own file get these defaults (OTHER, ADME, NON-CATALOG-PANEL, ...).
[assay_defaults]
assay_type = "OTHER"
"""


@dataclass(frozen=True)
class JoinResult:
    """What :func:`join_consortium` wrote."""

    folder: Path
    party_id: str
    public_identity: Path
    fingerprint: str
    key_check: str
    new_key: bool


def _copy_key(source: Path, dest: Path) -> None:
    key = load_consortium_key(source)  # owner-only, well-formed
    check_shareable_key(key, source)
    if source.resolve() != dest.resolve():
        atomic_write_bytes(dest, source.read_bytes(), mode=0o600)


def _check_empty(folder: Path) -> None:
    layout = PartnerLayout(folder)
    taken = [p for p in (layout.identity, layout.key, layout.consortium) if p.exists()]
    if taken:
        raise ConfigError(
            f"{folder} already holds a partner ({', '.join(p.name for p in taken)}).",
            file=taken[0],
            fix="join into a new folder; a partner's identity and key are never replaced.",
        )


def join_consortium(
    partner_dir: str | Path,
    consortium_file: str | Path,
    *,
    party_id: str | None = None,
    key_file: str | Path | None = None,
    new_key: bool = False,
) -> JoinResult:
    """Lay out a partner folder: the consortium's parameters, the consortium key (a copy of
    ``key_file``, or a new one for the key holder), a signing identity whose public file
    carries the key check, an ``exports/`` folder and a commented config template.

    Raises
    ------
    ConfigError
        Neither or both of ``key_file`` and ``new_key``; the folder already holds a partner;
        the parameters are invalid.
    KeyFileError
        The key file is missing, unsafe, malformed or too short to publish a check of.
    """
    folder = Path(partner_dir)
    if (key_file is None) == (not new_key):
        raise ConfigError(
            "give either the consortium key file (--key) or --new-key.",
            fix="one partner, the key holder, joins with --new-key and shares the key file "
            "out of band; every other partner joins with --key FILE.",
        )
    params = load_consortium_parameters(consortium_file)
    _check_empty(folder)
    name = party_id or folder.name
    layout = PartnerLayout(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if new_key:
        write_new_consortium_key(layout.key)
    else:
        assert key_file is not None
        _copy_key(Path(key_file), layout.key)
    try:
        identity, check = write_partner_identity(layout, name, params.consortium_name)
        assert check is not None  # the key file was written above
    except Exception:
        _undo(layout)
        raise
    atomic_write_text(layout.consortium, params.model_dump_json(indent=2) + "\n")
    (folder / EXPORTS_DIR).mkdir(exist_ok=True)
    template = folder / CONFIG_TEMPLATE
    if not template.exists():
        atomic_write_text(template, _TEMPLATE.format(name=name, exports=EXPORTS_DIR))
    logger.debug("partner %s joined %s in %s", name, params.consortium_name, folder)
    return JoinResult(
        folder=folder,
        party_id=name,
        public_identity=public_key_path(layout.identity, name),
        fingerprint=identity.public.fingerprint(),
        key_check=check,
        new_key=new_key,
    )


def write_partner_identity(
    layout: PartnerLayout, name: str, consortium: str
) -> tuple[Identity, str | None]:
    """Generate the partner's signing identity into ``identity/``; its public file carries
    the key check of the consortium key in ``key.json`` (none without a key file). Returns
    the identity and its key check."""
    identity = Identity.generate(name, "partner")
    check = None
    if layout.key.is_file():
        check_key = key_check_key(load_consortium_key(layout.key), consortium)
        check = key_check_of(check_key, identity.public)
    write_identity(identity, layout.identity, key_check=check)
    return identity, check


def key_check_of(check_key: bytes, member: PublicIdentity) -> str:
    """The key check of ``member`` under the consortium key (see
    :func:`pharmafl.common.secret.consortium_key_check`)."""
    return consortium_key_check(check_key, member.id, member.public_key, member.encryption_key)


def _undo(layout: PartnerLayout) -> None:
    """Remove what a failed join wrote (nothing of the partner's existed before)."""
    layout.key.unlink(missing_ok=True)
    shutil.rmtree(layout.identity, ignore_errors=True)


def check_roster_entry(
    roster: Roster, identity: Identity, layout: PartnerLayout, path: Path
) -> None:
    """The roster lists this partner with its own signing and encryption keys, every partner
    with a key check that the consortium key this partner holds gives for its identity (so
    all hold that key), and the hash of this partner's consortium parameters.

    Raises
    ------
    FederationError
        Naming what differs and how to fix it.
    """
    entry = roster.member(identity.id)
    if entry.public_key != identity.public.public_key:
        raise FederationError(
            f"the roster lists another signing key for {identity.id!r}.",
            file=path,
            fix="send the operator this partner's <id>.pub.json and pin the re-signed roster.",
        )
    if entry.encryption_key != identity.public.encryption_key:
        raise FederationError(
            f"the roster lists {'no' if entry.encryption_key is None else 'another'} "
            f"encryption key for {identity.id!r}: the operator's messages could not be opened.",
            file=path,
            fix="export the public identity again (`pharmafl keys export-public "
            "PARTNER_DIR/identity/<id>.key.json --out DIR`), send it to the operator and pin "
            "the re-signed roster.",
        )
    _check_key(roster, layout, path)
    _check_parameters(roster, layout, path)


def _check_key(roster: Roster, layout: PartnerLayout, path: Path) -> None:
    """Every partner of the roster holds the consortium key this partner holds: each one's
    key check is recomputed with it (a check copied from another identity, or made with
    another key, is wrong)."""
    if not layout.key.is_file():
        return  # a partner that keeps its key elsewhere (PHARMAFL_CONSORTIUM_KEY)
    check_key = key_check_key(load_consortium_key(layout.key), roster.consortium)
    members = [m for m in roster.members if m.role == "partner"]
    wrong = [
        m.id
        for m in members
        if m.consortium_key_check is None
        or not constant_time_equal(
            key_check_of(check_key, m).encode(), m.consortium_key_check.encode()
        )
    ]
    if wrong:
        raise FederationError(
            f"partner(s) {', '.join(wrong)} of the roster do not show the consortium key this "
            "partner holds (no key check, or one that this key does not give for their "
            "identity): they hold another key, or are not who they claim.",
            file=path,
            fix="pin no roster until they re-join with the key holder's key file (pharmafl "
            "consortium join --key) and the operator re-signs; if this partner holds the "
            "wrong key, get the key file from the key holder and re-join.",
        )


def _check_parameters(roster: Roster, layout: PartnerLayout, path: Path) -> None:
    if not layout.consortium.is_file():
        return  # a partner whose parameters live elsewhere (partner.toml's consortium_file)
    if roster.parameter_hash is None:
        raise FederationError(
            "the roster binds no consortium parameters: partners could be preparing with "
            "different ones.",
            file=path,
            fix="ask the operator for a roster signed with `pharmafl consortium roster` (it "
            "binds the hash of consortium.json).",
        )
    params: ConsortiumParameters = load_consortium_parameters(layout.consortium)
    if params.parameter_hash() != roster.parameter_hash:
        raise FederationError(
            f"{layout.consortium.name} differs from the consortium parameters the roster "
            "binds: this partner would prepare incompatible data.",
            file=layout.consortium,
            fix="replace it with the operator's consortium.json (compare its parameter hash "
            f"{roster.parameter_hash[:12]}…), then prepare again.",
        )


def pin_roster(partner_dir: str | Path, roster_file: str | Path, fingerprint: str) -> Roster:
    """Check the operator's roster against the fingerprint published out of band and this
    partner's own entry (:func:`check_roster_entry`), then install it with its pin.

    Raises
    ------
    SecureAggregationError
        The signature or the fingerprint does not match.
    FederationError
        The roster lists other keys for this partner, another consortium key, or other
        parameters.
    """
    layout = PartnerLayout(Path(partner_dir))
    identity = load_identity_dir(
        layout.identity, fix="join the consortium first (pharmafl consortium join)."
    )
    roster = load_roster(roster_file, pinned_fingerprint=fingerprint.strip())
    check_roster_entry(roster, identity, layout, Path(roster_file))
    StartRecord(layout.aggregated_starts).create(identity.public.fingerprint())
    atomic_write_bytes(layout.roster, Path(roster_file).read_bytes())
    atomic_write_text(layout.roster_pin, roster.fingerprint() + "\n")
    return roster


__all__ = [
    "CONFIG_TEMPLATE",
    "EXPORTS_DIR",
    "JoinResult",
    "check_roster_entry",
    "join_consortium",
    "key_check_of",
    "write_partner_identity",
    "pin_roster",
]
