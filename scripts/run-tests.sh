#!/usr/bin/env bash
# `make test`: the whole pytest suite against a throw-away AIRFLOW_HOME (SQLite).
# Prints pytest's summary line; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

AIRFLOW_HOME="$(mktemp -d -t orderflow-test-airflow.XXXXXX)"
export AIRFLOW_HOME
trap 'rm -rf "$AIRFLOW_HOME"' EXIT
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export ORDERFLOW_SANDBOX_LOG_LEVEL=warning

# The metadata DB is migrated once here, so DAG tests don't each pay for it.
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
bash scripts/setup-airflow.sh

if [[ $# -gt 0 ]]; then exec python -m pytest -p no:cacheprovider "$@"; fi
# The whole suite. The console tests build Airflow's API app (auth manager, plugins) inside the test
# process with their own settings; in one process after the rest of the suite they met an auth manager
# state other tests had left (anonymous requests got 200), so they get a process of their own, with a
# metadata DB of their own (they count an order's runs; the seeds' Order ids repeat across suites).
rc=0
python -m pytest -p no:cacheprovider --ignore=tests/integration/console || rc=$?
bash scripts/run-tests.sh tests/integration/console || rc=$?
exit $rc
