#!/usr/bin/env bash
# The distributed shape (CeleryExecutor + PostgreSQL + Redis, each Airflow component its own process)
# provisions a batch of orders end to end through events, exactly like the embedded demo.
# Needs PostgreSQL and Redis on 127.0.0.1 (started by .ci/run when stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d -t orderflow-distributed.XXXXXX)"
trap 'rm -rf "$work"' EXIT
DEMO_SHAPE=distributed DEMO_EXIT_WHEN_DONE=1 DEMO_RECONCILE="${DISTRIBUTED_RECONCILE:-0}" DEMO_ORDERS="${DISTRIBUTED_ORDERS:-12}" DEMO_TIMEOUT=600 \
  AIRFLOW_PORT="${DISTRIBUTED_PORT:-8093}" DEMO_SMTP_PORT=8026 DEMO_PG_DB=orderflow_ci \
  AIRFLOW_HOME="$work/airflow" SANDBOX_DIR="$work/sandbox" \
  bash scripts/demo.sh || { echo "distributed check failed; component logs:"; tail -n 40 "$work"/airflow/*.log; exit 1; }
