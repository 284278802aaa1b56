"""``pharmafl partner serve`` and the distributed launcher against a real Prefect server.

The round itself (workers, training, secure aggregation) is in ``test_distributed.py``;
these tests cover registration (``--deploy-only``), the checks before it, and how the
launcher treats partners it cannot start or that never pick their run up.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pharmafl import __version__
from pharmafl.cli.partner import register
from pharmafl.common.errors import ConfigError, FederationError

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def _partners(base: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """Partner folders with a signing key, the signed roster and its pin, and prepared/."""
    from pharmafl.layout import PartnerLayout
    from pharmafl.partner.reveals import StartRecord
    from pharmafl.secure import generate_identity
    from pharmafl.secure.identity import create_roster_file, public_key_path

    odir = base / "operator"
    generate_identity(odir / "identity", "operator", role="operator")
    dirs = {n: base / "partners" / n for n in names}
    fingerprints = {}
    for n, pdir in dirs.items():
        fingerprints[n] = generate_identity(pdir / "identity", n).public.fingerprint()
        (pdir / "prepared").mkdir()
    roster = create_roster_file(
        odir / "identity" / "operator.key.json",
        [public_key_path(p / "identity", n) for n, p in dirs.items()],
        odir / "roster.json",
        consortium="serve-test",
    )
    for n, pdir in dirs.items():
        shutil.copyfile(odir / "roster.json", pdir / "roster.json")
        (pdir / "roster.pin").write_text(roster.fingerprint() + "\n")
        StartRecord(PartnerLayout(pdir).aggregated_starts).create(fingerprints[n])
    return dirs


@contextlib.contextmanager
def _client(url: str) -> Iterator[Any]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}), get_client(sync_client=True) as c:
        yield c


def test_deploy_only_registers_the_partners_own_deployment(
    module_prefect_server: Any, tmp_path: Path
) -> None:
    url = module_prefect_server.url
    pdir = _partners(tmp_path, ("alpha", "bravo"))["alpha"]
    args = ["partner", "serve", str(pdir), "--pool", "pool-alpha", "--api-url", url]
    res = CliRunner().invoke(_cli(), [*args, "--deploy-only"])
    assert res.exit_code == 0, res.output
    assert "pharmafl-partner-round/alpha" in res.output
    with _client(url) as client:
        pool = client.read_work_pool("pool-alpha")
        dep = client.read_deployment_by_name("pharmafl-partner-round/alpha")
    assert pool.type == "process"
    assert pool.base_job_template  # the worker's default template, not an empty one
    assert dep.work_pool_name == "pool-alpha"
    assert dep.entrypoint == "flows.partner_round.partner_round_flow"
    assert not dep.pull_steps and dep.path is None
    # Each flow run starts the warm engine's client directly in the partner's interpreter
    # (Prefect's engine where no host runs): no workspace supervisor process (one more
    # Prefect import per round) resolving pull steps.
    client_cmd = [sys.executable, "-m", "pharmafl.partner.warm_engine"]
    assert dep.job_variables == {"command": shlex.join(client_cmd)}
    assert dep.parameters == {"partner_dir": str(pdir.resolve())}
    assert dep.enforce_parameter_schema
    assert dep.version == __version__  # not a git commit of the current folder
    assert "partner_dir" in dep.parameter_openapi_schema["properties"]

    # Registering again (the folder moved) updates the same deployment.
    moved = tmp_path / "moved-alpha"
    shutil.copytree(pdir, moved)
    args = ["partner", "serve", str(moved), "--pool", "pool-alpha", "--api-url", url]
    res = CliRunner().invoke(_cli(), [*args, "--deploy-only"])
    assert res.exit_code == 0, res.output
    with _client(url) as client:
        again = client.read_deployment_by_name("pharmafl-partner-round/alpha")
    assert again.id == dep.id
    assert again.parameters == {"partner_dir": str(moved.resolve())}


def test_serve_checks_before_registering(module_prefect_server: Any, tmp_path: Path) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.partner_round import partner_round_flow
    from pharmafl.partner.serve import PartnerServeConfig, deploy_partner_round

    url = module_prefect_server.url
    dirs = _partners(tmp_path, ("charlie", "delta"))
    cli = _cli()

    # a pool of another type is refused
    with _client(url) as client:
        client.create_work_pool(WorkPoolCreate(name="pool-k8s", type="kubernetes"))
    res = CliRunner().invoke(
        cli, ["partner", "serve", str(dirs["charlie"]), "--pool", "pool-k8s", "--api-url", url]
    )
    assert isinstance(res.exception, ConfigError)
    assert "expected 'process'" in str(res.exception)

    # an unprepared partner, a missing folder, a folder without a pinned roster
    shutil.rmtree(dirs["delta"] / "prepared")
    for bad, what in (
        (dirs["delta"], "not prepared"),
        (tmp_path / "nowhere", "does not exist"),
    ):
        res = CliRunner().invoke(
            cli, ["partner", "serve", str(bad), "--pool", "p", "--api-url", url]
        )
        assert isinstance(res.exception, FederationError), res.output
        assert what in str(res.exception)
    (dirs["charlie"] / "roster.pin").unlink()
    with pytest.raises(FederationError, match="pinned roster"):
        deploy_partner_round(
            PartnerServeConfig(partner_dir=dirs["charlie"], pool="p", api_url=url),
            partner_round_flow,
        )

    # a bad pool name is a clean configuration error
    res = CliRunner().invoke(cli, ["partner", "serve", str(dirs["charlie"]), "--pool", "a b"])
    assert isinstance(res.exception, ConfigError)

    # without any Prefect API there is nothing to register with
    (dirs["delta"] / "prepared").mkdir()
    no_api = temporary_settings(restore_defaults={PREFECT_API_URL})
    with no_api, pytest.raises(ConfigError, match="PREFECT_API_URL"):
        deploy_partner_round(
            PartnerServeConfig(partner_dir=dirs["delta"], pool="p"), partner_round_flow
        )
    with _client(url) as client:
        assert [d.name for d in client.read_deployments()].count("delta") == 0


def test_the_operators_identity_cannot_serve_partner_rounds(tmp_path: Path) -> None:
    """A folder holding the operator's key (listed in the roster, but not as a partner) is
    refused before anything is registered: the operator never takes a partner's seat."""
    from pharmafl.layout import PartnerLayout
    from pharmafl.partner.reveals import StartRecord
    from pharmafl.partner.serve import check_partner_dir
    from pharmafl.secure.identity import load_identity

    dirs = _partners(tmp_path, ("charlie", "delta"))
    seat = tmp_path / "partners" / "operator-seat"
    shutil.copytree(tmp_path / "operator" / "identity", seat / "identity")
    (seat / "prepared").mkdir()
    for name in ("roster.json", "roster.pin"):
        shutil.copyfile(dirs["charlie"] / name, seat / name)
    operator = load_identity(seat / "identity" / "operator.key.json")
    StartRecord(PartnerLayout(seat).aggregated_starts).create(operator.public.fingerprint())
    with pytest.raises(FederationError, match="'operator' is not a partner in the pinned roster"):
        check_partner_dir(seat)


def test_worker_command_and_environment(tmp_path: Path) -> None:
    from flows.partner_round import partner_round_flow
    from pharmafl.contract import PARTNER_ROUND_FLOW
    from pharmafl.partner.serve import (
        PARTNER_ENTRYPOINT,
        PartnerServeConfig,
        host_command,
        worker_command,
        worker_dir,
        worker_env,
    )

    # both sides name the deployment through the contract, which the flow itself uses
    assert partner_round_flow.name == PARTNER_ROUND_FLOW

    cfg = PartnerServeConfig(partner_dir=tmp_path, pool="pool-x", limit=2, logs_to_api=False)
    cmd = worker_command(cfg, "x")
    assert cmd[1:5] == ["-m", "prefect", "worker", "start"]
    assert cmd[cmd.index("--pool") + 1] == "pool-x"
    assert cmd[cmd.index("--type") + 1] == "process"
    assert cmd[cmd.index("--install-policy") + 1] == "never"
    assert cmd[cmd.index("--limit") + 1] == "2"
    env = worker_env(cfg, "http://127.0.0.1:1/api")
    assert env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "false"
    assert env["PREFECT_LOGGING_TO_API_ENABLED"] == "false"
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:1/api"
    assert env["PREFECT_WORKER_HEARTBEAT_SECONDS"] == "5"  # the operator's sign of life
    assert env["PREFECT_WORKER_QUERY_SECONDS"] == "1"  # a round waits ≤ 1 s for its pick-up
    host = host_command(tmp_path / "s.sock")  # preloads the module the entrypoint names
    module = PARTNER_ENTRYPOINT.rsplit(".", 1)[0]
    sock = str(tmp_path / "s.sock")
    assert host[1:] == ["-m", "pharmafl.partner.warm_engine", "host", sock, module]
    cloud = worker_env(cfg, "https://api.prefect.cloud/api/accounts/a/workspaces/w")
    assert "PREFECT_WORKER_QUERY_SECONDS" not in cloud  # Cloud's rate limits: its default
    wdir = worker_dir("x")
    try:
        assert wdir.is_dir() and not any(wdir.iterdir())  # nothing to copy into flow runs
        assert wdir.stat().st_mode & 0o077 == 0
    finally:
        wdir.rmdir()


def test_launcher_counts_unstartable_and_unclaimed_partners_as_failed(
    module_prefect_server: Any, tmp_path: Path
) -> None:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.launchers import DeploymentLauncher
    from flows.partner_round import partner_round_flow
    from pharmafl.partner.serve import PartnerServeConfig, deploy_partner_round

    url = module_prefect_server.url
    pdir = _partners(tmp_path, ("echo", "foxtrot"))["echo"]
    deploy_partner_round(
        PartnerServeConfig(partner_dir=pdir, pool="pool-echo", api_url=url), partner_round_flow
    )
    with temporary_settings(updates={PREFECT_API_URL: url}):
        launcher = DeploymentLauncher("/tmp/exchange", timeout_s=5.0, poll_s=0.2)
        launcher.start("echo", "run-r0000-a0", final=False)
        launcher_first_run = launcher._runs["echo"]
        launcher.start("echo", "run-r0000-a0", final=False)  # a repeated request: same run
        assert launcher._runs["echo"] == launcher_first_run
        launcher.start("ghost", "run-r0000-a0", final=False)  # no such deployment
        failed = launcher.failed()
        assert set(failed) == {"ghost"}
        assert "pharmafl partner serve" in failed["ghost"]
        # No worker polls pool-echo, so the run is never picked up. Once the round is over
        # such a run cannot contribute: no waiting for it, and it is cancelled, so a worker
        # that comes back later never starts a stale round.
        t0 = time.monotonic()
        out = launcher.finish(timeout_s=120.0)
        assert time.monotonic() - t0 < 30
        assert set(out) == {"echo", "ghost"}
        assert out["echo"].startswith("deadline: flow run Scheduled") or out["echo"].startswith(
            "deadline: flow run Pending"
        )
        assert out["ghost"].startswith("not deployed: ")
        assert launcher.failed() == {}
        # The final evaluation is waited for until the deadline, then cancelled too.
        launcher.start("echo", "run-r0001-final", final=True)
        t0 = time.monotonic()
        out = launcher.finish(timeout_s=2.0)
        assert time.monotonic() - t0 >= 2.0
        assert set(out) == {"echo"}
        # The same round id again from another launcher (a plan re-run on this server, with
        # the same run id) gets a new flow run, never the earlier run's.
        again = DeploymentLauncher("/tmp/exchange", timeout_s=5.0, poll_s=0.2)
        again.start("echo", "run-r0000-a0", final=False)
        assert again.failed() == {}
        assert again._runs["echo"] != launcher_first_run
        again.close()  # the operator stops: its runs are cancelled
        # A launcher that clears stale runs (a contribution study's coalitions, always
        # resumed) cancels the unfinished runs of a run it starts (a dead operator's) first.
        dead = DeploymentLauncher("/tmp/exchange", timeout_s=5.0, poll_s=0.2)
        dead.start("echo", "cs-r0000-a0", final=False)  # its operator dies: never finished
        stale_id = dead._runs["echo"]
        back = DeploymentLauncher("/tmp/exchange", timeout_s=5.0, poll_s=0.2, clear_stale=True)
        back.start("echo", "cs-r0000-a1", final=False)
        with _client(url) as client:
            assert client.read_flow_run(stale_id).state.is_cancelled()
            assert not client.read_flow_run(back._runs["echo"]).state.is_final()
        back.close()
        with _client(url) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["echo"])),
                sort=FlowRunSort.NAME_ASC,
            )
    runs = [r for r in runs if r.name.startswith("run-")]
    assert [r.name for r in runs] == ["run-r0000-a0-echo"] * 2 + ["run-r0001-final-echo"]
    assert all(r.state is not None and r.state.is_cancelled() for r in runs)
    assert all("pharmafl-run:run" in r.tags for r in runs)
    assert runs[0].parameters == {
        "partner_dir": str(pdir.resolve()),  # the partner's default; the operator sent none
        "exchange_url": "/tmp/exchange",
        "round_id": "run-r0000-a0",
        "final": False,
        "timeout_s": 5.0,
    }


def test_distributed_training_needs_a_prefect_server(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.train import run_train

    no_api = temporary_settings(restore_defaults={PREFECT_API_URL})
    with no_api, pytest.raises(ConfigError, match="PREFECT_API_URL"):
        run_train(tmp_path, launcher="distributed")
