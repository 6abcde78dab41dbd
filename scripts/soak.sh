#!/usr/bin/env bash
# `make soak`: the running system over several sensor runs (tests/soak/soak.py drives it).
# SOAK_MINUTES (default 6) of approval waves, then up to SOAK_SETTLE_MINUTES (4) for the last orders.
# SOAK_SHAPE=embedded (default: standalone, SQLite, LocalExecutor) | distributed (Celery + PostgreSQL + Redis).
# The sensor waits ORDERFLOW_EVENT_WAIT_SECONDS=30 per run and sweeps orders Activating > 1 minute, so
# several sensor runs and sweeps fit in the window; everything else is the demo's configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo-profile.sh
profile_init soak "${SOAK_KEEP:-0}" "${SOAK_SHAPE:-embedded}" 8091 8031 8092 8032 "${SOAK_PORT:-}"
export ORDERFLOW_EVENT_WAIT_SECONDS="${ORDERFLOW_EVENT_WAIT_SECONDS:-30}"
export ORDERFLOW_SWEEP_MINUTES="${ORDERFLOW_SWEEP_MINUTES:-1}"
profile_run DEMO_SOAK=1 DEMO_PG_DB=orderflow_soak DEMO_REDIS_DB=8
