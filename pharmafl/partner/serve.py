"""Serving a partner's federated rounds on its own Prefect work pool (distributed launcher).

``pharmafl partner serve PARTNER_DIR --pool NAME`` runs on the partner's machine, next to its
data. It checks the partner folder (signing key, pinned roster, prepared data), creates the
partner's *process* work pool if needed, registers (or updates) the deployment
``pharmafl-partner-round/<partner id>`` on it, and then becomes a Prefect process worker
polling that pool. The operator's training flow starts the partner's rounds with
``run_deployment`` on that deployment; the flow runs here, as subprocesses of the worker.

What the deployment carries, and why:

- a *module-path* entrypoint (``flows.partner_round.partner_round_flow``) and no pull
  steps: the code that runs is the pharmafl installed on this machine, never code fetched
  from elsewhere;
- the partner folder as a default parameter, set here by the partner (the operator only
  sends the exchange URL, the round id, ``final`` and the timeout);
- the pharmafl version as its version (Prefect's default would read the git remote, branch
  and commit of the current folder and send them to the server).

Without pull steps, a Prefect process worker copies *its current folder* into a fresh
workspace for every flow run, so the worker is started in an empty folder of its own (never
in the partner folder, which would be copied for every round), removed when it stops. The
worker is a child process that SIGTERM or Ctrl-C stops within seconds, flow runs included
(:mod:`pharmafl.partner.worker`); it sends a heartbeat every 5 s, by which the operator
knows it is alive.

Telemetry is switched off for the worker and its flow runs (``DO_NOT_TRACK=1``,
``PREFECT_SERVER_ANALYTICS_ENABLED=false``) and result persistence is kept off.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from pharmafl import __version__
from pharmafl.common.errors import ConfigError, FederationError
from pharmafl.contract import partner_deployment
from pharmafl.layout import PartnerLayout
from pharmafl.partner.warm_engine import SOCKET_VAR
from pharmafl.partner.worker import run_worker

if TYPE_CHECKING:
    from prefect import Flow

log = logging.getLogger(__name__)

#: The partner flow as a Prefect *module-path* entrypoint (dotted, no colon: Prefect reads
#: ``a.b:c`` as a file path); ``flows`` is an installed package.
PARTNER_ENTRYPOINT = "flows.partner_round.partner_round_flow"
#: Seconds between the worker's heartbeats (Prefect's default: 30).
HEARTBEAT_S = 5
#: Seconds between the worker's polls for runs to start (Prefect's default: 10, which a
#: round pays up to twice: its partner round and its final evaluation, each a flow run the
#: operator waits for). One poll a second per partner is no load for a self-hosted API;
#: against Prefect Cloud, whose plans rate-limit an account's calls, Prefect's default stays.
QUERY_S = 1
#: Environment of the worker (and so of every flow run it starts).
WORKER_ENV = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "false",
}


class PartnerServeConfig(BaseModel):
    """How a partner serves its rounds (``pharmafl partner serve``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partner_dir: Path = Field(description="The partner folder (identity/, roster, prepared/).")
    pool: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The partner's own Prefect work pool (process type); created if missing.",
    )
    api_url: str | None = Field(
        None,
        description="Prefect API URL (e.g. http://host:4200/api); default: PREFECT_API_URL.",
    )
    worker_name: str | None = Field(
        None, max_length=100, description="Worker name on the server (default pharmafl-<id>)."
    )
    limit: int | None = Field(None, ge=1, le=64, description="Most flow runs at the same time.")
    logs_to_api: bool = Field(
        True,
        description="Send flow-run logs (counts and timings only) to the server; False keeps "
        "them on this machine.",
    )
    warm_engine: bool = Field(
        True,
        description="Fork each flow run from a process that has imported the flow code once "
        "(Linux); False starts a fresh Python per flow run, as Prefect does.",
    )


@dataclass(frozen=True)
class PartnerDeployment:
    """What :func:`deploy_partner_round` registered."""

    partner: str
    pool: str
    deployment_name: str
    deployment_id: str
    api_url: str


def _api_url(config: PartnerServeConfig) -> str:
    from prefect.settings import PREFECT_API_URL

    url = config.api_url or PREFECT_API_URL.value()
    if not url:
        raise ConfigError(
            "no Prefect API to register the partner's deployment with.",
            fix="pass --api-url http://HOST:4200/api (the consortium's Prefect server) or set "
            "PREFECT_API_URL; for Prefect Cloud also set PREFECT_API_KEY.",
        )
    return str(url).rstrip("/")


@contextmanager
def _prefect_api(url: str) -> Iterator[None]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def check_partner_dir(partner_dir: str | Path) -> str:
    """Check that a partner folder can take part in rounds; return the partner's id.

    Raises
    ------
    FederationError
        When the signing key, the pinned roster or ``prepared/`` is missing, or the partner
        is not in the roster.
    """
    from pharmafl.partner.federated import load_partner_identity

    layout = PartnerLayout(Path(partner_dir))
    pdir = layout.root
    if not pdir.is_dir():
        raise FederationError(
            "the partner folder does not exist.", file=pdir, fix="pass the partner's folder."
        )
    who = load_partner_identity(pdir)
    me = who.identity.id
    if me not in who.roster.partners:
        raise FederationError(
            f"{me!r} is not a partner in the pinned roster.",
            file=layout.roster,
            fix="ask the operator for the roster that lists this partner's public key.",
        )
    if not layout.prepared.is_dir():
        raise FederationError(
            "the partner's data is not prepared.",
            file=layout.prepared,
            fix="run `pharmafl prepare PARTNER_DIR` first.",
        )
    return me


def _ensure_process_pool(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    description="pharmafl partner rounds (one pool per partner).",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            log.info("created process work pool %s", name)
            return
    if pool.type != "process":
        raise ConfigError(
            f"work pool {name!r} exists with type {pool.type!r}, expected 'process'.",
            fix="choose another --pool name, or delete that pool on the Prefect server.",
        )


def deploy_partner_round(config: PartnerServeConfig, flow: Flow[..., Any]) -> PartnerDeployment:
    """Create the partner's process pool if needed and register its round deployment.

    ``flow`` is the partner-round flow (``flows.partner_round.partner_round_flow``), passed in
    by the entry point: the library never imports ``flows``. Idempotent: a second call
    updates the deployment (for example after the partner folder moved). Returns what was
    registered.
    """
    from prefect.client.schemas.objects import VersionInfo
    from prefect.deployments.runner import RunnerDeployment
    from prefect.types.entrypoint import EntrypointType

    partner = check_partner_dir(config.partner_dir)
    url = _api_url(config)
    with _prefect_api(url):
        _ensure_process_pool(config.pool)
        deployment = RunnerDeployment.from_flow(
            flow,
            name=partner,
            parameters={"partner_dir": str(config.partner_dir.resolve())},
            work_pool_name=config.pool,
            entrypoint_type=EntrypointType.MODULE_PATH,
            enforce_parameter_schema=True,
            job_variables={"command": engine_command()},
            description=f"pharmafl partner round of {partner} (code: pharmafl {__version__}).",
            tags=["pharmafl", "partner"],
            version=__version__,
        )
        if deployment.entrypoint != PARTNER_ENTRYPOINT:  # pragma: no cover - Prefect changed
            raise ConfigError(f"unexpected entrypoint {deployment.entrypoint!r}.")
        # An explicit version: Prefect would otherwise infer one from git (no git metadata
        # of this machine goes to the server).
        deployment_id = deployment.apply(
            work_pool_name=config.pool,
            version_info=VersionInfo(version=__version__, type="prefect:simple"),
        )
    log.info("deployment %s registered on pool %s", partner_deployment(partner), config.pool)
    return PartnerDeployment(
        partner=partner,
        pool=config.pool,
        deployment_name=partner_deployment(partner),
        deployment_id=str(deployment_id),
        api_url=url,
    )


def engine_command() -> str:
    """The command the partner's worker starts each flow run with: the warm engine's client
    in this interpreter (:mod:`pharmafl.partner.warm_engine`), which runs the flow run in a
    child of the host ``serve`` started, or Prefect's engine itself where there is none.
    Without a command the process worker first starts a workspace supervisor (one more
    Python process importing Prefect per flow run) to resolve pull steps, which this
    deployment does not have: its code is the installed package."""
    return shlex.join([sys.executable, "-m", "pharmafl.partner.warm_engine"])


def host_command(socket_path: Path) -> list[str]:
    """The warm engine's host: it preloads the partner flow's module and serves on
    ``socket_path``."""
    module = PARTNER_ENTRYPOINT.rsplit(".", 1)[0]
    return [sys.executable, "-m", "pharmafl.partner.warm_engine", "host", str(socket_path), module]


def worker_command(config: PartnerServeConfig, partner: str) -> list[str]:
    """The ``prefect worker start`` command line of the partner's process worker."""
    cmd = [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        config.pool,
        "--type",
        "process",
        "--name",
        config.worker_name or f"pharmafl-{partner}",
        "--install-policy",
        "never",  # the worker never pip-installs anything
    ]
    if config.limit is not None:
        cmd += ["--limit", str(config.limit)]
    return cmd


def worker_env(config: PartnerServeConfig, api_url: str) -> dict[str, str]:
    """The worker's environment: this one, plus the API URL, telemetry off, no results, and
    a heartbeat every :data:`HEARTBEAT_S` and a poll for runs every :data:`QUERY_S` unless
    they are set (the operator counts a worker silent for six heartbeats, at least 30 s,
    as offline)."""
    env = dict(os.environ)
    env.update(WORKER_ENV)
    env.setdefault("PREFECT_WORKER_HEARTBEAT_SECONDS", str(HEARTBEAT_S))
    if "api.prefect.cloud" not in api_url:  # Cloud rate-limits an account's API calls
        env.setdefault("PREFECT_WORKER_QUERY_SECONDS", str(QUERY_S))
    env["PREFECT_API_URL"] = api_url
    if not config.logs_to_api:
        env["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
    return env


def worker_dir(partner: str) -> Path:
    """A new empty, owner-only folder to start the worker in (see the module docstring)."""
    return Path(tempfile.mkdtemp(prefix=f"pharmafl-worker-{partner}-"))


def socket_dir() -> Path:
    """A new owner-only folder for the warm engine's socket, in ``$TMPDIR`` unless the
    socket's path would pass the 108 bytes a Unix socket address holds, then in ``/tmp``."""
    path = Path(tempfile.mkdtemp(prefix="pharmafl-engine-"))
    if len(str(path / "engine.sock")) < 100:
        return path
    path.rmdir()
    return Path(tempfile.mkdtemp(prefix="pharmafl-engine-", dir="/tmp"))


def serve_partner(config: PartnerServeConfig, flow: Flow[..., Any]) -> int:
    """Register the partner's deployment of ``flow``, then run its worker until stopped.

    The worker runs as a child process in its own empty folder, in the foreground, until
    stopped (Ctrl-C or SIGTERM: the worker and its flow runs stop within a few seconds,
    :mod:`pharmafl.partner.worker`) or until it exits; the folder is removed either way. It
    polls the partner's pool outbound, so the partner machine needs no inbound port.
    Returns the exit status (0 after a requested stop).
    """
    dep = deploy_partner_round(config, flow)
    cmd = worker_command(config, dep.partner)
    log.info("starting worker: %s", " ".join(cmd[1:]))
    wdir, sdir = worker_dir(dep.partner), socket_dir()
    env = worker_env(config, dep.api_url)
    sock, host = sdir / "engine.sock", None
    if config.warm_engine and sys.platform.startswith("linux"):
        env[SOCKET_VAR] = str(sock)
        host = host_command(sock)
    try:
        return run_worker(cmd, wdir, env, host, sock)
    finally:
        shutil.rmtree(wdir, ignore_errors=True)
        shutil.rmtree(sdir, ignore_errors=True)


__all__ = [
    "HEARTBEAT_S",
    "PARTNER_ENTRYPOINT",
    "PartnerDeployment",
    "PartnerServeConfig",
    "WORKER_ENV",
    "check_partner_dir",
    "deploy_partner_round",
    "engine_command",
    "host_command",
    "serve_partner",
    "socket_dir",
    "worker_command",
    "worker_dir",
    "worker_env",
]
