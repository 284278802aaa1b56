"""``pharmafl partner serve``: a partner serves its federated rounds on its own work pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

partner_app = typer.Typer(
    help="Partner-side commands for distributed federated training.", no_args_is_help=True
)


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
) -> None:
    """Register the partner-round deployment on POOL, then run its process worker here.

    The worker polls the API (outbound only); each round runs as a subprocess on PARTNER_DIR.

    It runs in the foreground; stop it with Ctrl-C.
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
    serve_partner(config, partner_round_flow)


def register(app: typer.Typer) -> None:
    """Attach the ``partner`` group to ``app``."""
    app.add_typer(partner_app, name="partner")
