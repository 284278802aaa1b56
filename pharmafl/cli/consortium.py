"""``pharmafl consortium``: create a real consortium, join it, sign and pin its roster; or
simulate one from public data for demos and rehearsals."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from pharmafl.cli import federation as fed
from pharmafl.cli import keys

consortium_app = typer.Typer(
    help="Create a consortium (operator), join it (partner), sign and pin its roster; or "
    "simulate one from public data for demos and rehearsals.",
    no_args_is_help=True,
)


@consortium_app.command("simulate")
def simulate(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder to create (DIR/partners/<name>/, DIR/operator/)."),
    ],
    dataset: Annotated[
        str,
        typer.Option("--dataset", "-d", help="Public dataset: fsmol, tox21, toxcast or adme."),
    ] = "fsmol",
    partners: Annotated[
        int, typer.Option("--partners", "-n", help="Number of partners (2-26).")
    ] = 3,
    max_compounds: Annotated[
        int | None,
        typer.Option("--max-compounds", "-m", help="Cap on each partner's distinct compounds."),
    ] = None,
    auxiliary_compounds: Annotated[
        int | None,
        typer.Option(
            "--auxiliary-compounds",
            help="Add an auxiliary public partner ('public') with the assays no partner kept, "
            "up to this many compounds (FS-Mol-shaped data): it trains the shared trunk; its "
            "heads are not part of the consortium's benefit.",
        ),
    ] = None,
    auxiliary_source: Annotated[
        Path | None,
        typer.Option(
            "--auxiliary-source",
            help="Take the auxiliary partner's assays from this public file (FS-Mol long "
            "shape, e.g. other target families) instead of the assays no partner kept.",
        ),
    ] = None,
    free_rider: Annotated[
        list[str] | None,
        typer.Option(
            "--free-rider",
            help="Rehearse a free rider: this partner's results are shuffled within each "
            "assay (real compounds, meaningless labels). Repeat for several.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed: same seed, same split and raw files.")
    ] = 0,
    strategy: Annotated[
        str,
        typer.Option(
            "--strategy",
            help="Assay assignment for FS-Mol-shaped data: hash (seeded random) or family "
            "(whole protein families per partner).",
        ),
    ] = "hash",
    overlap: Annotated[
        float,
        typer.Option(
            "--overlap", help="Wide data (Tox21/ADME): share of compounds at a 2nd partner."
        ),
    ] = 0.1,
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            help="Any CSV of a supported shape instead of --dataset (FS-Mol long, wide 0/1, "
            "wide numeric with a SMILES column).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a non-empty --out folder.")
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="Processes for writing SDF structures (default: all cores)."
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            help="Existing consortium key file (mode 600) to hand to the partners instead of "
            "a fresh random key, e.g. for a reproducible rehearsal.",
        ),
    ] = None,
) -> None:
    """Split a public dataset into partner folders with realistic exports, a shared key
    (partners only) and consortium parameters (partners and operator)."""
    from pharmafl.simulate import build_spec, simulate_consortium

    spec = build_spec(
        dataset=dataset,
        source=str(source) if source is not None else None,
        partners=partners,
        max_compounds=max_compounds,
        auxiliary_compounds=auxiliary_compounds,
        auxiliary_source=str(auxiliary_source) if auxiliary_source is not None else None,
        free_riders=tuple(free_rider or ()),
        seed=seed,
        strategy=strategy,
        overlap=overlap,
    )
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("reading public data", total=spec.partners + 1)

        def step(message: str) -> None:
            bar.update(task, advance=1, description=message)

        result = simulate_consortium(
            out, spec, force=force, progress=step, workers=workers, key_file=key
        )
    table = Table(title=f"simulated consortium in {result.out_dir}")
    for col in ("partner", "shape", "config", "compounds", "measurements", "assays"):
        table.add_column(col)
    for p in result.manifest.partners:
        table.add_row(
            p.name, p.shape, p.config_file, str(p.compounds), str(p.measurements), str(p.assays)
        )
    Console().print(table)
    typer.echo(
        f"compounds at 2+ partners: {result.manifest.compounds_shared}; "
        f"operator folder (no key): {result.operator_dir}"
    )


@consortium_app.command("create")
def create(
    operator_dir: Annotated[Path, typer.Argument(help="The operator's folder to create.")],
    name: Annotated[str, typer.Option("--name", help="Consortium name (signed in the roster).")],
    parameters: Annotated[
        Path | None,
        typer.Option(
            "--parameters",
            help="Consortium parameters (JSON/TOML/YAML; default: MELLODDY's). Its name is "
            "replaced by --name.",
        ),
    ] = None,
    operator_id: Annotated[str, typer.Option("--operator-id", help="Your party id.")] = "operator",
    rounds: fed.Rounds = 10,
    hidden: fed.Hidden = "2000",
    dropout: fed.Dropout = 0.6,
    local_epochs: fed.LocalEpochs = 1.0,
    lr: fed.Lr = 1e-3,
    batch_size: fed.BatchSize = None,
    batch_ratio: fed.BatchRatio = 0.02,
    min_steps: fed.MinSteps = 10,
    weight_decay: fed.WeightDecay = 0.0,
    prox_mu: fed.ProxMu = 0.0,
    head_finetune_epochs: fed.HeadFinetune = 3,
    keep_optimizer: fed.KeepOptimizer = True,
    weight_cap: fed.WeightCap = None,
    server_optimizer: fed.ServerOpt = "fedavg",
    seed: fed.Seed = 0,
    ring_bits: fed.RingBits = 32,
) -> None:
    """Operator: create the consortium: consortium.json (send it to every partner), your
    signing identity, plan.json and the initial trunk. You never hold the consortium key."""
    from pharmafl.common.params import ConsortiumParameters, load_consortium_parameters
    from pharmafl.layout import OperatorLayout
    from pharmafl.server.create import create_consortium

    params = load_consortium_parameters(parameters) if parameters else ConsortiumParameters()
    params = params.model_copy(update={"consortium_name": name})
    plan = fed.build_plan(
        rounds=rounds,
        hidden=hidden,
        dropout=dropout,
        local=fed.local_spec_of(locals()),
        server_optimizer=server_optimizer,
        seed=seed,
        dp=None,
        ring_bits=ring_bits,
    )
    plan = create_consortium(operator_dir, params, plan, operator_id=operator_id)
    layout = OperatorLayout(operator_dir)
    digest = fed.write_initial_trunk(plan, layout.initial_trunk)
    typer.echo(f"consortium {name!r} created in {operator_dir} (initial trunk sha256 {digest})")
    typer.echo(
        f"next: send {layout.consortium} to every partner; one partner joins with "
        "`pharmafl consortium join DIR --consortium consortium.json --new-key` and "
        "shares the key file out of band, the others join with --key FILE; collect "
        "their identity/<id>.pub.json, then run `pharmafl consortium roster`."
    )


@consortium_app.command("join")
def join(
    partner_dir: Annotated[Path, typer.Argument(help="Your partner folder to create.")],
    consortium_file: Annotated[
        Path, typer.Option("--consortium", help="The operator's consortium.json.")
    ],
    party_id: Annotated[
        str | None, typer.Option("--id", help="Your party id (default: the folder's name).")
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The consortium key file the key holder shared with you."),
    ] = None,
    new_key: Annotated[
        bool, typer.Option("--new-key", help="You are the key holder: create the key.")
    ] = False,
) -> None:
    """Partner: join a consortium: its parameters, the consortium key, your signing identity
    (its public file carries your key check), exports/ and a commented partner.toml.example."""
    from pharmafl.partner.join import CONFIG_TEMPLATE, EXPORTS_DIR, join_consortium

    res = join_consortium(
        partner_dir, consortium_file, party_id=party_id, key_file=key, new_key=new_key
    )
    typer.echo(f"joined as {res.party_id} in {res.folder}")
    if res.new_key:
        typer.echo(
            f"consortium key: {res.folder / 'key.json'} (mode 600). Share it with every "
            "other partner out of band (never through the operator or the exchange store)."
        )
    typer.echo(f"key check: {res.key_check[:16]}… (every partner must show the same)")
    typer.echo(f"send to the operator: {res.public_identity} (fingerprint {res.fingerprint})")
    typer.echo(
        f"next: put your exports in {res.folder / EXPORTS_DIR}, write partner.toml "
        f"(`pharmafl partner inspect` or {CONFIG_TEMPLATE}), then `pharmafl prepare`."
    )


@consortium_app.command("roster")
def roster(
    operator_dir: Annotated[Path, typer.Argument(help="The operator's folder.")],
    members: Annotated[
        list[Path], typer.Option("--member", help="A partner's <id>.pub.json (repeat).")
    ],
    version: Annotated[
        int | None, typer.Option("--version", min=1, help="Roster version (default: next).")
    ] = None,
    collusion_bound: keys.CollusionBound = 0,
    min_participants: keys.MinParticipants = 2,
    valuation_groups: keys.ValuationGroups = None,
    min_ring_bits: keys.MinRingBits = None,
) -> None:
    """Operator: sign the roster (partners' identities and key checks, the security policy,
    the parameters' hash) into OPERATOR_DIR/roster.json; publish its fingerprint out of band."""
    from pharmafl.layout import OperatorLayout
    from pharmafl.server.create import sign_consortium_roster

    policy = keys.build_policy(collusion_bound, min_participants, valuation_groups, min_ring_bits)
    doc = sign_consortium_roster(operator_dir, members, policy, version=version)
    keys.echo_roster(doc, OperatorLayout(operator_dir).roster)


@consortium_app.command("pin")
def pin(
    partner_dir: Annotated[Path, typer.Argument(help="Your partner folder.")],
    roster_file: Annotated[Path, typer.Option("--roster", help="The operator's roster.json.")],
    fingerprint: Annotated[
        str, typer.Option("--fingerprint", help="The fingerprint published out of band.")
    ],
) -> None:
    """Partner: check the operator's roster (signature, fingerprint, your own entry, one
    consortium key, your parameters) and pin it."""
    from pharmafl.partner.join import pin_roster

    doc = pin_roster(partner_dir, roster_file, fingerprint)
    typer.echo(
        f"pinned roster v{doc.version} of {doc.consortium}: {len(doc.partners)} partners, "
        "one consortium key, your parameters"
    )


def register(app: typer.Typer) -> None:
    """Attach the ``consortium`` group to ``app``."""
    app.add_typer(consortium_app, name="consortium")
