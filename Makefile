# attention-harness: `make demo` and `make test` are the front door (each installs what it needs).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SWEEP ?= score_functions
WORKERS ?= 2
STUDY ?= $(SWEEP)
PAPER ?= bahdanau2015
SCALE ?= small
ARGS ?=
STORAGE ?=

.PHONY: demo test test-fast install system-deps lint format sweep report dashboard bench bench-peers reproduce results clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# System packages that real-component tests use (PostgreSQL for sweep storage, Chromium for the report
# page, SLURM and munge for `harness sweep --slurm`: tests/slurm_cluster.py runs its own daemons from a temporary
# directory). Best effort: without root or network the tests that need them skip with a reason.
system-deps:
	@if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql chromium >/dev/null) \
	      || echo "warning: could not install postgresql/chromium; tests that need them will skip"; \
	  else echo "warning: postgresql/chromium missing and cannot be installed here; tests that need them will skip"; fi; \
	fi
	@if ! { command -v slurmctld || [ -x /usr/sbin/slurmctld ]; } >/dev/null 2>&1 || ! { command -v munged || [ -x /usr/sbin/munged ]; } >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null) \
	      || echo "warning: could not install slurm-wlm/munge; the SLURM tests will skip"; \
	  else echo "warning: slurm-wlm/munge missing and cannot be installed here; the SLURM tests will skip"; fi; \
	fi

demo: $(STAMP)
	$(BIN)/python -m harness.demo $(ARGS)

test: $(STAMP) system-deps lint
	$(BIN)/pytest tests $(ARGS)

test-fast: $(STAMP)
	$(BIN)/pytest tests -m "not slow" $(ARGS)

# ruff, and the layers of harness/ (pyproject.toml [tool.importlinter]: lint-imports names an import that points up)
lint: $(STAMP)
	$(BIN)/ruff check harness tests
	$(BIN)/ruff format --check harness tests
	$(BIN)/lint-imports --no-logo

format: $(STAMP)
	$(BIN)/ruff format harness tests

sweep: $(STAMP)
	$(BIN)/harness sweep sweeps/$(SWEEP).yaml --study $(STUDY) --workers $(WORKERS) $(ARGS)

report: $(STAMP)
	$(BIN)/harness report $(STUDY) --output reports/$(STUDY) $(ARGS)

# STORAGE=postgresql+psycopg2://... for a study on a database server (not echoed: the URL holds its password)
dashboard: $(STAMP)
	$(BIN)/pip install -q optuna-dashboard
	@$(BIN)/optuna-dashboard $(or $(STORAGE),sqlite:///reports/$(STUDY)/study.db)

bench: $(STAMP)
	$(BIN)/harness bench $(ARGS)

bench-peers: $(STAMP)
	$(BIN)/harness bench-peers $(ARGS)

reproduce: $(STAMP)
	$(BIN)/pip install -q -e '.[align]' || echo "warning: eflomal did not install; the alignment baseline falls back to IBM Model 2"
	$(BIN)/harness reproduce $(PAPER) --scale $(SCALE) $(ARGS)

# RESULTS.md from results/ (the committed light artifacts of the reproduction studies); `harness results collect`
# copies finished trials of reports/reproduce-*/ into results/ first
results: $(STAMP)
	$(BIN)/harness results build $(ARGS)

clean:
	rm -rf reports/demo reports/bench .pytest_cache
