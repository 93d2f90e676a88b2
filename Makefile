# Two commands on a fresh clone (Python 3.11+ and make):
#   make run    set up, start the Prefect server + UI, mail sink, served deployments, demo data
#   make test   set up and run the whole test suite (lint, types, unit, integration, browser)
SHELL := /bin/bash
PY ?= python3
UV_VERSION := 0.13.9
BOOT := .recovery/bootstrap
UV := $(BOOT)/bin/uv
VENV := .venv

.PHONY: setup run test test-fast lint bench clean

$(UV):
	@mkdir -p .recovery
	$(PY) -m venv $(BOOT)
	$(BOOT)/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode compiled at setup: every flow run is a new Python process (Prefect starts one per
# run and per resumed sign-off), and without .pyc files each one compiles Prefect first.
setup: $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet --compile-bytecode
	$(VENV)/bin/python -m compileall -q -j 0 models recovery flows tasks deployments devstack

run: setup
	$(VENV)/bin/python -m devstack.demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy models recovery tasks flows deployments devstack

# Two xdist workers, a test file at a time, slowest tiers first; each worker has one shared
# Prefect server (tests/conftest.py); the time per tier is printed at the end.
WORKERS ?= 2
test: lint
	$(VENV)/bin/python -m pytest tests -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=15 $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/python -m pytest tests/unit -q

bench: setup
	$(VENV)/bin/python -m benchmarks.run $(SIZE)

clean:
	rm -rf .recovery $(VENV)
