#!/usr/bin/env bash
# Every check, in the same order as CI: lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
.venv/bin/ruff check pharmafl flows tests benchmarks scripts
.venv/bin/ruff format --check pharmafl flows tests benchmarks scripts
.venv/bin/mypy
.venv/bin/python -m pytest --durations=20 "$@"
