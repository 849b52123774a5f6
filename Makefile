# Every target sets itself up: a fresh clone needs only Python 3.11+ and the package index.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= cpu,dask,dev
# Arguments for the main job, e.g. make run ARGS="--limit 2000 --epochs 1"
ARGS ?=
# Test processes (pytest-xdist; 0: one test at a time, in this process). One at a time, the
# suite keeps about one of 2 cores busy: many tests wait on the servers and processes they start.
TEST_WORKERS ?= 2

.PHONY: install run test lint bench up down clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

run: install
	$(BIN)/digitflow pipeline $(ARGS)

test: install
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/ingest.py

# The whole system locally: prefect server + UI, work pools, deployments, workers.
up: install
	VENV="$(abspath $(VENV))" bash infra/up.sh

down:
	bash infra/down.sh

clean:
	rm -rf $(VENV) .digitflow .pytest_cache .mypy_cache .ruff_cache
