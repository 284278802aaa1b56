"""``pharmafl keys``: signing identities and the consortium roster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from pharmafl.secure.identity import Roster
    from pharmafl.secure.policy import SecurityPolicy

keys_app = typer.Typer(
    help="Create Ed25519 signing keys and the operator-signed consortium roster.",
    no_args_is_help=True,
)


@keys_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for <id>.key.json and <id>.pub.json.")],
    party_id: Annotated[
        str, typer.Option("--id", help="Party id (letters, digits, '_', '.', '-').")
    ],
    role: Annotated[
        str, typer.Option("--role", help="'partner' (sends updates) or 'operator' (aggregates).")
    ] = "partner",
) -> None:
    """Generate an Ed25519 signing key (private file owner-only; never overwritten)."""
    from pharmafl.common.errors import ConfigError
    from pharmafl.secure.identity import generate_identity, private_key_path, public_key_path

    if role not in ("partner", "operator"):
        raise ConfigError(f"unknown role {role!r}.", fix="use --role partner or --role operator.")
    identity = generate_identity(out, party_id, "operator" if role == "operator" else "partner")
    typer.echo(f"private key: {private_key_path(out, party_id)} (mode 600, keep it secret)")
    typer.echo(f"public identity: {public_key_path(out, party_id)} (send it to the operator)")
    typer.echo(f"public key fingerprint: {identity.public.fingerprint()}")


@keys_app.command("export-public")
def export_public(
    key_file: Annotated[Path, typer.Argument(help="A private <id>.key.json.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <id>.pub.json.")],
) -> None:
    """Write the public identity of an existing key, encryption key included (for public
    files made before encryption keys existed); send it to the operator."""
    from pharmafl.secure.identity import export_public_identity

    path = export_public_identity(key_file, out)
    typer.echo(f"public identity: {path} (send it to the operator)")


CollusionBound = Annotated[
    int,
    typer.Option(
        "--collusion-bound", min=0, help="Partners that may collude with the operator (c)."
    ),
]
MinParticipants = Annotated[
    int, typer.Option("--min-participants", min=2, help="Fewest partners in any round.")
]
ValuationGroups = Annotated[
    list[str] | None,
    typer.Option(
        "--valuation-group",
        help="Partner ids always aggregated together, comma-separated (repeat; together "
        "every partner once, each group at least max(3, c + 2)): the contribution "
        "study's players. Without groups there is no contribution study.",
    ),
]
MinRingBits = Annotated[
    int | None,
    typer.Option(
        "--min-ring-bits",
        help="Narrowest ring a round may use: 32 forbids compressed updates (8/16 bits, "
        "which weight partners equally). Default: any.",
    ),
]


def build_policy(
    collusion_bound: int,
    min_participants: int,
    valuation_groups: list[str] | None,
    min_ring_bits: int | None = None,
) -> SecurityPolicy:
    """The security policy from the command-line options (one clear error when invalid)."""
    from pydantic import ValidationError

    from pharmafl.common.errors import ConfigError, validation_summary
    from pharmafl.secure.policy import SecurityPolicy

    groups = [tuple(p.strip() for p in g.split(",") if p.strip()) for g in valuation_groups or []]
    try:
        return SecurityPolicy(
            collusion_bound=collusion_bound,
            min_participants=min_participants,
            valuation_groups=tuple(groups) or None,
            min_ring_bits=min_ring_bits,
        )
    except ValidationError as exc:
        raise ConfigError(
            f"invalid security policy: {validation_summary(exc)}.",
            fix="list each partner in exactly one --valuation-group, each group large enough; "
            "--min-ring-bits is 8, 16, 32 or 64.",
        ) from None


def echo_roster(doc: Roster, out: Path) -> None:
    """Print what was signed and the fingerprint to publish."""
    policy = doc.security_policy
    typer.echo(
        f"roster: {out} (v{doc.version}, {len(doc.members)} members; policy: collusion bound "
        f"{policy.collusion_bound}, at least {policy.fewest_participants()} partners a round)"
    )
    typer.echo(f"fingerprint (publish out of band; partners pin it): {doc.fingerprint()}")


@keys_app.command("roster")
def roster(
    operator_key: Annotated[
        Path, typer.Option("--operator-key", help="The operator's <id>.key.json.")
    ],
    members: Annotated[
        list[Path], typer.Option("--member", help="A member's <id>.pub.json (repeat).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Roster file to write (must not exist).")],
    consortium: Annotated[
        str, typer.Option("--consortium", help="Consortium name.")
    ] = "pharmafl-consortium",
    version: Annotated[
        int, typer.Option("--version", min=1, help="Roster version (bump on every change).")
    ] = 1,
    collusion_bound: CollusionBound = 0,
    min_participants: MinParticipants = 2,
    valuation_groups: ValuationGroups = None,
    min_ring_bits: MinRingBits = None,
) -> None:
    """Sign the consortium roster and its security policy; print the fingerprint every
    partner must pin (`pharmafl consortium roster` does the same from an operator folder,
    binding the consortium parameters too)."""
    from pharmafl.secure.identity import create_roster_file

    policy = build_policy(collusion_bound, min_participants, valuation_groups, min_ring_bits)
    doc = create_roster_file(
        operator_key, members, out, consortium=consortium, version=version, policy=policy
    )
    echo_roster(doc, out)


@keys_app.command("verify-roster")
def verify_roster(
    path: Annotated[Path, typer.Argument(help="Roster file.")],
    pin: Annotated[str | None, typer.Option("--pin", help="The fingerprint you pinned.")] = None,
) -> None:
    """Check a roster's operator signature (and the pinned fingerprint)."""
    from pharmafl.secure.identity import load_roster

    doc = load_roster(path, pinned_fingerprint=pin)
    typer.echo(f"roster OK: {doc.consortium} v{doc.version}, operator {doc.operator}")
    for m in doc.members:
        typer.echo(f"  {m.id:<24} {m.role:<8} {m.fingerprint()[:16]}")
    typer.echo(f"fingerprint: {doc.fingerprint()}")


def register(app: typer.Typer) -> None:
    """Attach the ``keys`` group to ``app``."""
    app.add_typer(keys_app, name="keys")
