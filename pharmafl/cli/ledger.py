"""``pharmafl ledger``: verify the consortium ledger and show it readably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ledger_app = typer.Typer(
    help="Verify the consortium ledger (hash chain and signatures) and show its entries.",
    no_args_is_help=True,
)


@ledger_app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="The ledger file (ledger.jsonl).")],
    roster: Annotated[
        Path | None,
        typer.Option(
            "--roster",
            help="Signed roster (roster.json): check every signature against its keys. "
            "Without it only the chain is checked.",
        ),
    ] = None,
    pin: Annotated[
        str | None, typer.Option("--pin", help="Roster fingerprint you pinned out of band.")
    ] = None,
    known_head: Annotated[
        str | None,
        typer.Option(
            "--head",
            help="An entry hash recorded earlier (e.g. summary.json ledger.head_hash); fails "
            "if it is no longer in the ledger (entries cut from its end).",
        ),
    ] = None,
    heads: Annotated[
        list[Path] | None,
        typer.Option(
            "--heads",
            help="A partner's ledger_heads.jsonl (repeat for several partners): the heads the "
            "operator's signed round specs showed it; fails if the ledger no longer holds one "
            "(entries cut, deleted or rewritten after the partner saw them).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the verification result as JSON.")
    ] = False,
) -> None:
    """Check indices, hash chain, payload digests and signatures; exit 1 naming the first bad
    entry if anything was modified, deleted, inserted, reordered, forged or truncated, or if
    the ledger no longer holds a head a partner recorded."""
    from rich.console import Console

    from pharmafl.contract import read_ledger_heads
    from pharmafl.ledger import verify_ledger
    from pharmafl.secure.identity import load_roster

    doc = load_roster(roster, pinned_fingerprint=pin) if roster is not None else None
    recorded = [h for file in heads or () for h in read_ledger_heads(file)]
    result = verify_ledger(path, doc, known_head=known_head, heads=recorded)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    elif result.ok:
        console = Console(highlight=False)
        console.print(
            f"[bold green]ledger OK[/]: {result.entries} entries, head {result.head_hash}"
        )
        if doc is not None:
            console.print(f"signatures checked against roster {doc.consortium!r} v{doc.version}")
        else:
            console.print("[yellow]signatures NOT checked[/] (pass --roster to check them)")
        if heads:
            console.print(f"all {result.heads_checked} recorded partner heads are in the ledger")
        else:
            console.print(
                "[yellow]no partner heads checked[/]: the operator could have rewritten or cut "
                "its own ledger (pass --heads PARTNER_DIR/ledger_heads.jsonl)"
            )
    else:
        Console(stderr=True, highlight=False).print(
            f"[bold red]ledger INVALID[/]: first bad entry {result.first_bad_index} "
            f"({result.issue}): {result.message}",
            soft_wrap=True,
        )
    if not result.ok:
        raise typer.Exit(1)


@ledger_app.command("show")
def show(
    path: Annotated[Path, typer.Argument(help="The ledger file (ledger.jsonl).")],
    event: Annotated[
        list[str] | None, typer.Option("--event", help="Only these event types (repeat).")
    ] = None,
    actor: Annotated[
        list[str] | None, typer.Option("--actor", help="Only entries by these actors (repeat).")
    ] = None,
    payload: Annotated[
        bool, typer.Option("--payload/--no-payload", help="Show payload details.")
    ] = True,
) -> None:
    """Print the ledger as a table (index, time, actor, event, payload, entry hash)."""
    from rich.console import Console

    from pharmafl.ledger import parse_event, read_entries
    from pharmafl.ledger.display import ledger_table

    entries = read_entries(path)
    head = entries[-1].entry_hash() if entries else None
    wanted = {parse_event(e) for e in event} if event else None
    shown = [
        e
        for e in entries
        if (wanted is None or e.event in wanted) and (not actor or e.actor in actor)
    ]
    console = Console()
    console.print(ledger_table(shown, payload=payload))
    console.print(
        f"{len(shown)} of {len(entries)} entries shown; head {head}",
        highlight=False,
        soft_wrap=True,
    )
    console.print("Run `pharmafl ledger verify PATH --roster ROSTER` to check it.", style="dim")


def register(app: typer.Typer) -> None:
    """Attach the ``ledger`` group to ``app``."""
    app.add_typer(ledger_app, name="ledger")
