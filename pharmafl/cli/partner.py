"""``pharmafl partner``: a partner drafts its config from its exports (``inspect``) and
serves its federated rounds on its own work pool (``serve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

partner_app = typer.Typer(
    help="Partner-side commands: draft a config from your exports, serve federated rounds.",
    no_args_is_help=True,
)


@partner_app.command("inspect")
def inspect_exports_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(help="Export files: CSV/TSV/parquet/SDF (also .gz), MELLODDY T0/T1/T2."),
    ],
    out: Annotated[
        Path, typer.Option(help="The partner config to write, e.g. PARTNER_DIR/partner.toml.")
    ],
    name: Annotated[
        str | None, typer.Option(help="Partner name (default: the config's folder name).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing config.")] = False,
    check: Annotated[
        bool, typer.Option(help="Try the drafted config with the real ingest.")
    ] = True,
) -> None:
    """Draft a commented partner config from your export FILES.

    Detects delimiter, encoding, columns, units, qualifiers inside values, long or wide
    layout, SDF tags and MELLODDY T0/T1/T2 files; lines marked CHECK are guesses to confirm.
    Paths in the config are relative to its folder (the partner folder). See
    docs/partner-guide.md.
    """
    from pharmafl.ingest.inspect import inspect_exports

    result = inspect_exports(files, out, name=name, force=force, check=check)
    for line in result.files:
        typer.echo(line)
    typer.echo(f"wrote {result.config_path}: {len(result.checks)} line(s) marked CHECK")
    for line in result.checks:
        typer.echo(f"  CHECK {line}")
    if result.ingest is not None:
        verdict = "ingest check" if result.ingest_ok else "ingest check FAILED"
        typer.echo(f"{verdict}: {result.ingest}")


@partner_app.command("serve")
def serve(
    partner_dir: Annotated[
        Path,
        typer.Argument(help="The partner folder (identity/, roster.json, roster.pin, prepared/)."),
    ],
    pool: Annotated[str, typer.Option(help="This partner's own Prefect work pool (process type).")],
    api_url: Annotated[
        str | None,
        typer.Option(help="Prefect API URL, e.g. http://HOST:4200/api (default: PREFECT_API_URL)."),
    ] = None,
    deploy_only: Annotated[
        bool, typer.Option(help="Register the deployment and exit (start no worker).")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Most flow runs this worker runs at the same time.")
    ] = None,
    logs_to_api: Annotated[
        bool,
        typer.Option(help="Send flow-run logs (counts and timings only) to the Prefect server."),
    ] = True,
    warm_engine: Annotated[
        bool,
        typer.Option(
            help="Fork each round from a process that imported the flow code once (Linux; "
            "saves seconds a round). --no-warm-engine: a fresh Python per round."
        ),
    ] = True,
) -> None:
    """Register the partner-round deployment on POOL, then run its process worker here.

    The worker polls the API (outbound only); each round runs as a subprocess on PARTNER_DIR.

    It runs in the foreground; Ctrl-C or SIGTERM stops it, and its rounds, within seconds.
    """
    from pydantic import ValidationError

    from flows.partner_round import partner_round_flow
    from pharmafl.common.errors import ConfigError
    from pharmafl.partner.serve import PartnerServeConfig, deploy_partner_round, serve_partner

    try:
        config = PartnerServeConfig(
            partner_dir=partner_dir,
            pool=pool,
            api_url=api_url,
            limit=limit,
            logs_to_api=logs_to_api,
            warm_engine=warm_engine,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid {where}: {first['msg']}.", fix="see `pharmafl partner serve --help`."
        ) from None
    if deploy_only:
        dep = deploy_partner_round(config, partner_round_flow)
        typer.echo(f"deployment {dep.deployment_name} registered on work pool {dep.pool}")
        return
    code = serve_partner(config, partner_round_flow)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Attach the ``partner`` group to ``app``."""
    app.add_typer(partner_app, name="partner")
