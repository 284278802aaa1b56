#!/usr/bin/env bash
# Every check, in the same order as CI: lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
.venv/bin/ruff check pharmafl flows tests benchmarks scripts
.venv/bin/ruff format --check pharmafl flows tests benchmarks scripts
.venv/bin/mypy
# Two test processes (pytest-xdist), a file per process at a time: the integration tests wait
# on servers and workers much of the time, so the suite's wall time drops by about a fifth.
.venv/bin/python -m pytest -n 2 --dist loadfile --durations=20 "$@"
