# orderflow — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SANDBOX_DIR ?= .sandbox
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: venv demo test test-ui lint ci sandbox soak chaos bench-provision lock clean

venv: $(STAMP)

# The venv is built once from the pinned set and reused until requirements.txt or a
# pyproject.toml change. Nothing but packages is fetched. Dev gets both distributions, editable:
# the pipeline (orderflow, ./pyproject.toml) and the emulators (orderflow-sandbox, sandbox/pyproject.toml).
$(STAMP): requirements.txt pyproject.toml sandbox/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c requirements.txt -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# Separately, after the pipeline: a venv made before the split has the orderflow-sandbox script in the old
	# orderflow install, and reinstalling both in one command lets that uninstall delete the new script.
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e ./sandbox
	$(BIN)/python -m pip check
	@touch $(STAMP)

test: venv
	@bash scripts/run-tests.sh

# Browser tests (Playwright + Debian's chromium at /usr/bin/chromium) against a demo on port 8095;
# screenshots in build/ui-screenshots/.
test-ui: venv
	ORDERFLOW_UI_TESTS=1 $(BIN)/python -m pytest -p no:cacheprovider tests/ui -v --timeout 1500

lint: venv
	$(BIN)/ruff check .

demo: venv
	@bash scripts/demo.sh

# The running system over several sensor runs, lost events and an Airflow restart (~8 min).
# SOAK_MINUTES=N to change the window, SOAK_SHAPE=distributed for Celery + PostgreSQL + Redis.
soak: venv
	@bash scripts/soak.sh

chaos: venv
	@bash scripts/chaos.sh

sandbox: venv
	$(BIN)/orderflow-sandbox serve --data-dir $(SANDBOX_DIR)

ci: lint test

bench-provision: venv
	$(BIN)/python bench/provision_bench.py

# Re-resolve the pinned set (needs PyPI). Review the diff before committing.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e ".[dev]" -e ./sandbox
	{ grep '^#' requirements.txt; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^orderflow'; } > requirements.txt.new
	mv requirements.txt.new requirements.txt && rm -rf .lock-venv

clean:
	rm -rf $(VENV) .airflow .sandbox .pytest_cache
