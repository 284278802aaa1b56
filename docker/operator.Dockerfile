# syntax=docker/dockerfile:1
# pharmafl operator (aggregator) image: Prefect 3 and the numpy-only aggregation side of
# pharmafl (secure, server, ledger, accounting, report, evaluation). No torch, no RDKit:
# the aggregator never holds a model it could run on chemistry, and the image stays small.
# A build step below fails if either is importable or gets imported.
#
# Build from the repository root (operator.Dockerfile.dockerignore beside this file keeps the
# context to the files copied below):
#   docker build -f docker/operator.Dockerfile -t pharmafl-operator:0.1.0 .
#
# For production, pin the base image by digest as well (python:3.11-slim@sha256:…).
FROM python:3.11-slim

ARG PHARMAFL_UID=10001

ENV DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_RESULTS_PERSIST_BY_DEFAULT=false \
    PREFECT_WORKER_WEBSERVER_HOST=127.0.0.1 \
    PREFECT_WORKER_WEBSERVER_PORT=8080 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PHARMAFL_INPUT_DIR=/data/operator \
    PHARMAFL_WORK_DIR=/data/work \
    PHARMAFL_KEYS_DIR=/run/pharmafl/keys

RUN groupadd --system --gid "${PHARMAFL_UID}" pharmafl \
    && useradd --system --uid "${PHARMAFL_UID}" --gid pharmafl --create-home \
        --home-dir /home/pharmafl --shell /usr/sbin/nologin pharmafl \
    && mkdir -p /data/operator /data/work /run/pharmafl/keys \
    && chown pharmafl:pharmafl /data/work /run/pharmafl /run/pharmafl/keys \
    && chmod 700 /run/pharmafl/keys

WORKDIR /opt/pharmafl

# Only the operator's dependencies, at the versions of constraints.txt.
COPY constraints.txt ./
COPY docker/constraints-docker.txt docker/requirements-operator.txt ./docker/
RUN pip install --no-cache-dir -c constraints.txt -c docker/constraints-docker.txt \
        -r docker/requirements-operator.txt

# pharmafl without its partner-side dependencies (--no-deps: pyproject lists torch and RDKit
# for the partner install), then the trust-boundary check.
COPY pyproject.toml README.md ./
COPY pharmafl ./pharmafl
COPY flows ./flows
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && python -c "import pharmafl.secure, pharmafl.server, pharmafl.ledger, pharmafl.accounting, pharmafl.report; import sys; assert 'torch' not in sys.modules and 'rdkit' not in sys.modules" \
    && python -c "import pharmafl.evaluation, pharmafl.cli.main, s3fs, prefect; import sys; assert 'torch' not in sys.modules and 'rdkit' not in sys.modules" \
    && python -c "import importlib.util as u; missing = [m for m in ('torch', 'rdkit', 'torch_geometric') if u.find_spec(m) is None]; assert len(missing) == 3, 'partner-only package installed'"

COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/pharmafl-entrypoint

# Numeric, so that runtimes can verify it is not root (runAsNonRoot).
USER ${PHARMAFL_UID}:${PHARMAFL_UID}
WORKDIR /home/pharmafl

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

ENTRYPOINT ["/usr/local/bin/pharmafl-entrypoint"]
# A Prefect 3 process worker for the operator's work pool: the training flow runs here when
# triggered from the Prefect UI or API.
CMD ["sh", "-c", "exec prefect worker start --pool \"${PHARMAFL_OPERATOR_POOL:?set PHARMAFL_OPERATOR_POOL to the operator's work pool}\" --type process --with-healthcheck --install-policy never"]
