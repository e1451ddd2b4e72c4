# promkit: `make demo` (the demo stack) and `make test` (the whole suite) set up
# everything they need on a fresh Debian machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv debs floors test test-unit test-floors lint bench reliability demo demo-stop clean

help:
	@echo "make demo   - run the demo stack on loopback (DURATION=60: bounded; KEEP_DATA=1: keep"
	@echo "              the previous run's data; make demo-stop)"
	@echo "make test   - install what is missing, then run the whole test suite, then the"
	@echo "              unit tests again on Python 3.10 with every dependency at its floor"
	@echo "make test-floors - only that floors run (.venv-floors)"
	@echo "make lint   - ruff + mypy"
	@echo "make bench  - benchmarks, printed as tables"
	@echo "make reliability - fuzz, cardinality, faults, soak, PII at full size; writes docs/reliability.md"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)

debs:
	./scripts/ensure-debs.sh chromium

# The floors: the unit tests on the oldest Python promkit supports (requires-python)
# with every dependency pinned to its declared floor (scripts/floors.py writes the
# constraints from pyproject.toml; it needs tomllib, so the main venv runs it).
FLOORS       := .venv-floors
FLOORS_STAMP := $(FLOORS)/.installed-stamp
# pyenv's 3.10 first (its python3.10 shim fails unless 3.10 is selected), else a
# python3.10 that really runs; or FLOORS_PYTHON=/path/to/python3.10.
PYENV_310     := $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3.10))
FLOORS_PYTHON ?= $(or $(PYENV_310),$(shell python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && echo python3.10))

$(FLOORS_STAMP): pyproject.toml scripts/floors.py | $(STAMP)
	$(if $(FLOORS_PYTHON),,$(error no Python 3.10 for the floors run: pyenv install 3.10, or set FLOORS_PYTHON))
	rm -rf $(FLOORS)
	$(FLOORS_PYTHON) -m venv $(FLOORS)
	$(BIN)/python scripts/floors.py test > $(FLOORS)/constraints.txt
	$(FLOORS)/bin/pip install -q -c $(FLOORS)/constraints.txt -e '.[test]'
	touch $@

floors: $(FLOORS_STAMP)

# Unit tests only, and not those that run a tool on committed files (the main suite does).
FLOORS_PYTEST := $(FLOORS)/bin/python -m pytest -m "not integration and not tool_only" -q -p no:cacheprovider

# The main suite on two workers, a file per worker at a time (module fixtures such as a
# shared Prometheus stay in one process): most of its time is waiting on real servers.
MAIN_PYTEST := $(BIN)/python -m pytest -n 2 --dist loadfile

test: venv debs floors
	$(MAIN_PYTEST)
	$(FLOORS_PYTEST)

test-unit: venv
	$(BIN)/python -m pytest -m "not integration"

test-floors: floors
	$(FLOORS_PYTEST)

lint: venv
	$(BIN)/ruff check promkit instrument exporters tests benchmarks demo scripts
	./scripts/typecheck.sh

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	command -v wrk >/dev/null 2>&1 || ./scripts/ensure-debs.sh wrk
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

# Full-size reliability suite (about 5 min of soak plus 100k fuzz cases and 1M-path
# attacks); prints the table and writes docs/reliability.md.
reliability: venv debs
	$(BIN)/python tests/reliability/report.py

DEMO_STAMP := $(VENV)/.demo-stamp

$(DEMO_STAMP): $(STAMP) demo/requirements.txt
	$(BIN)/pip install -q -r demo/requirements.txt
	touch $@

# make demo               - run until Ctrl-C (or `make demo-stop` from another shell)
# make demo DURATION=60   - run 60 s, stop everything, exit 0 only if every part came up
#                           and Prometheus scraped every target
# make demo DEMO_ARGS="--alert-for 30s --scrape-interval 5s"   - alerts fire within a minute
# make demo KEEP_DATA=1   - keep the previous run's Prometheus/Alertmanager/Redis data
#                           (default: every run starts fresh)
DURATION ?=
DEMO_ARGS ?=
KEEP_DATA ?=

demo: $(DEMO_STAMP) debs
	$(BIN)/python -m demo.run $(if $(DURATION),--duration $(DURATION)) \
		$(if $(KEEP_DATA),--keep-data) $(DEMO_ARGS)

demo-stop:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m demo.run --stop

clean:
	rm -rf $(VENV) $(FLOORS) build dist .pytest_cache .mypy_cache .ruff_cache *.egg-info
