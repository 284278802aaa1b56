# syntax=docker/dockerfile:1
# pharmafl partner image: RDKit + torch (CPU) + Prefect 3, running a Prefect process worker
# that polls this partner's own work pool. The partner's data is mounted read-only, its
# keys arrive as secrets; see docker/README.md.
#
# Build from the repository root (the build context; partner.Dockerfile.dockerignore beside
# this file keeps it to the files copied below):
#   docker build -f docker/partner.Dockerfile -t pharmafl-partner:0.1.0 .
#
# For production, pin the base image by digest as well (python:3.11-slim@sha256:…).
FROM python:3.11-slim

# The container user's uid/gid; match the host owner of the mounted data and key files
# (--build-arg PHARMAFL_UID=$(id -u)).
ARG PHARMAFL_UID=10001
# torch comes from the PyTorch CPU wheel index: the PyPI build of torch 2.13.0 for Linux
# pulls several GB of CUDA libraries that a CPU-only partner node never uses.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# Telemetry off (Prefect client and server), no result persistence by default, no
# bytecode or pip cache in the image, the worker's health endpoint on loopback only.
ENV DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_RESULTS_PERSIST_BY_DEFAULT=false \
    PREFECT_WORKER_WEBSERVER_HOST=127.0.0.1 \
    PREFECT_WORKER_WEBSERVER_PORT=8080 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PHARMAFL_INPUT_DIR=/data/partner \
    PHARMAFL_WORK_DIR=/data/work \
    PHARMAFL_KEYS_DIR=/run/pharmafl/keys

RUN groupadd --system --gid "${PHARMAFL_UID}" pharmafl \
    && useradd --system --uid "${PHARMAFL_UID}" --gid pharmafl --create-home \
        --home-dir /home/pharmafl --shell /usr/sbin/nologin pharmafl \
    && mkdir -p /data/partner /data/work /run/pharmafl/keys \
    && chown pharmafl:pharmafl /data/work /run/pharmafl /run/pharmafl/keys \
    && chmod 700 /run/pharmafl/keys

WORKDIR /opt/pharmafl

# Dependencies first (a layer that survives code changes). torch alone from the CPU index
# and without its dependencies, which then come from PyPI at the versions of constraints.txt.
COPY constraints.txt ./
COPY docker/constraints-docker.txt ./docker/
RUN pip install --no-cache-dir --no-deps --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
    && pip install --no-cache-dir -c constraints.txt -c docker/constraints-docker.txt \
        setuptools==84.2.1 s3fs==2026.9.0

# pharmafl itself (explicit list: nothing else of the checkout enters the image).
COPY pyproject.toml README.md ./
COPY pharmafl ./pharmafl
COPY flows ./flows
RUN pip install --no-cache-dir --no-build-isolation \
        -c constraints.txt -c docker/constraints-docker.txt . \
    && pip check \
    && python -c "import torch, rdkit.Chem, prefect, s3fs, flows, pharmafl.chem, pharmafl.model; \
assert torch.__version__.split('+')[0] == '2.13.0', torch.__version__; \
assert torch.version.cuda is None, 'expected the CPU build of torch'"

COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/pharmafl-entrypoint

# Numeric, so that runtimes can verify it is not root (runAsNonRoot).
USER ${PHARMAFL_UID}:${PHARMAFL_UID}
WORKDIR /home/pharmafl

# The worker's own health endpoint (--with-healthcheck): unhealthy when it stops polling.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)"]

ENTRYPOINT ["/usr/local/bin/pharmafl-entrypoint"]
# A Prefect 3 process worker for this partner's own work pool. Deploy the partner flow with
# a module entrypoint (flows.<module>:<flow>) and no pull steps, so the code that runs is
# the code of this image.
CMD ["sh", "-c", "exec prefect worker start --pool \"${PHARMAFL_PARTNER_POOL:?set PHARMAFL_PARTNER_POOL to this partner's work pool}\" --type process --with-healthcheck --install-policy never"]
