# promkit: `make demo` (the demo stack) and `make test` (the whole suite) set up
# everything they need on a fresh Debian machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help venv debs test test-unit lint bench reliability demo demo-stop clean

help:
	@echo "make demo   - run the demo stack on loopback (DURATION=60: bounded; make demo-stop)"
	@echo "make test   - install what is missing, then run the whole test suite"
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

test: venv debs
	$(BIN)/python -m pytest

test-unit: venv
	$(BIN)/python -m pytest -m "not integration"

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
DURATION ?=
DEMO_ARGS ?=

demo: $(DEMO_STAMP) debs
	$(BIN)/python -m demo.run $(if $(DURATION),--duration $(DURATION)) $(DEMO_ARGS)

demo-stop:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -m demo.run --stop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
