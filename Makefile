# The commands people type. Every target creates .venv and installs the project first.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: run test test-fast lint bench sandbox docs conformance clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev,bench]"
	@touch $@

run: $(STAMP)  ## sandbox + Dagster UI on http://127.0.0.1:3000 with the sync running
	$(BIN)/talk-assets run

# three test processes on two cores: a third of the suite's time is waiting (for `dagster dev` and
# subprocess workers, for the sandboxes' answers), which a third process fills (measured 748 -> 668 s)
test: $(STAMP)  ## the whole suite; installs Chromium for the UI test when it can (skips it with a reason otherwise)
	-deploy/install-browser.sh $(VENV)
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --durations=15

test-fast: $(STAMP)  ## everything but the UI/deploy tests
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder --ignore=talk_assets_tests/ui

lint: $(STAMP)
	$(BIN)/ruff check talk_assets talk_assets_tests benchmarks

sandbox: $(STAMP)  ## only the five sandbox APIs
	$(BIN)/talk-assets sandbox

conformance: $(STAMP)  ## contract checks against the TALK_<SYSTEM>_* accounts (a fresh sandbox where unset); ARGS=--allow-writes
	$(BIN)/talk-assets conformance $(ARGS)

docs: $(STAMP)  ## generate the dataflow documents
	$(BIN)/talk-assets docs --out docs/dataflows

bench: $(BENCH_STAMP)  ## benchmarks (quick sizes; BENCH_ARGS=--full for the scaling run)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data/talk.duckdb data/dagster_home data/sandbox
