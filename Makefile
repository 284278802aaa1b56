# The README's two commands: `make demo` (main job) and `make test` (all checks + tests).
.PHONY: setup demo test schemas lint
OUT ?= demo-out

setup:
	bash scripts/setup.sh

demo: setup
	DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false .venv/bin/pharmafl demo --out $(OUT)

test:
	bash scripts/check.sh

schemas: setup
	.venv/bin/pharmafl schemas generate

lint: setup
	.venv/bin/ruff check pharmafl flows tests benchmarks scripts && .venv/bin/ruff format --check pharmafl flows tests benchmarks scripts && .venv/bin/mypy
