# promkit: `make demo` (the demo stack) and `make test` (the whole suite) set up
# everything they need on a fresh Debian machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv debs test test-unit lint bench demo clean

help:
	@echo "make demo   - run the demo stack (not yet: lands with the demo issue)"
	@echo "make test   - install what is missing, then run the whole test suite"
	@echo "make lint   - ruff + mypy"
	@echo "make bench  - benchmarks, printed as tables"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)

debs:
	./scripts/ensure-debs.sh

test: venv debs
	$(BIN)/python -m pytest

test-unit: venv
	$(BIN)/python -m pytest -m "not integration"

lint: venv
	$(BIN)/ruff check instrument exporters tests benchmarks
	$(BIN)/mypy

BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	command -v wrk >/dev/null 2>&1 || ./scripts/ensure-debs.sh wrk
	touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

demo:
	@echo "make demo: not yet. The demo stack (API, worker, Redis, Prometheus, Alertmanager)" >&2
	@echo "lands with the demo issue; today, run 'make test' to see the kit work." >&2
	@exit 1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
