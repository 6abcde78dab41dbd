#!/usr/bin/env bash
# `make soak`: the running system over several sensor runs (tests/soak/soak.py drives it).
# SOAK_MINUTES (default 6) of approval waves, then up to SOAK_SETTLE_MINUTES (4) for the last orders.
# SOAK_SHAPE=embedded (default: standalone, SQLite, LocalExecutor) | distributed (Celery + PostgreSQL + Redis).
# The sensor waits ORDERFLOW_EVENT_WAIT_SECONDS=30 per run and sweeps orders Activating > 1 minute, so
# several sensor runs and sweeps fit in the window; everything else is the demo's configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d -t orderflow-soak.XXXXXX)"
keep="${SOAK_KEEP:-0}"
trap '[[ $keep == 1 ]] && echo "soak: kept $work" || rm -rf "$work"' EXIT
shape="${SOAK_SHAPE:-embedded}"
if [[ "$shape" == "distributed" ]]; then port="${SOAK_PORT:-8092}"; smtp=8032; else port="${SOAK_PORT:-8091}"; smtp=8031; fi
export ORDERFLOW_EVENT_WAIT_SECONDS="${ORDERFLOW_EVENT_WAIT_SECONDS:-30}"
export ORDERFLOW_SWEEP_MINUTES="${ORDERFLOW_SWEEP_MINUTES:-1}"
rc=0
DEMO_SOAK=1 DEMO_SHAPE="$shape" DEMO_PG_DB=orderflow_soak DEMO_REDIS_DB=8 AIRFLOW_PORT="$port" DEMO_SMTP_PORT="$smtp" \
  AIRFLOW_HOME="$work/airflow" SANDBOX_DIR="$work/sandbox" bash scripts/demo.sh || rc=$?
if [[ $rc != 0 ]]; then
  echo "soak failed (exit $rc); last lines of the component logs:"
  for log in "$work"/airflow/*.log; do echo "== $log"; tail -n 25 "$log"; done
fi
exit $rc
