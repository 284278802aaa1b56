"""``pharmafl schemas``: generate or check the JSON Schemas in ``schemas/``."""

from __future__ import annotations

import typer

from pharmafl.common.errors import ConfigError

schemas_app = typer.Typer(help="Generate or check the shared JSON Schemas.", no_args_is_help=True)


@schemas_app.command("generate")
def generate() -> None:
    """Regenerate ``schemas/*.schema.json`` from the pydantic models."""
    from pharmafl.schema_registry import generate_schemas

    for path in generate_schemas():
        typer.echo(str(path))


@schemas_app.command("check")
def check() -> None:
    """Exit non-zero if a committed schema differs from its model."""
    from pharmafl.schema_registry import stale_schemas

    stale = stale_schemas()
    if stale:
        raise ConfigError(
            f"stale schema files: {', '.join(stale)}.", fix="run `pharmafl schemas generate`."
        )
    typer.echo("schemas are fresh")


def register(app: typer.Typer) -> None:
    """Attach the ``schemas`` group to ``app``."""
    app.add_typer(schemas_app, name="schemas")
