#!/usr/bin/env bash
# `make chaos`: the running system through faults on both systems, real SIGKILLs and restarts, then a
# secret scan (tests/chaos/chaos.py drives it; README "Chaos suite").
# CHAOS_ORDERS (default 200) approved in waves; CHAOS_SHAPE=embedded (default: standalone, SQLite,
# LocalExecutor) | distributed (Celery + PostgreSQL + Redis). CHAOS_KEEP=1 keeps the work folder.
# Settings lowered for the suite, so tasks lost with a killed process are retried within the run:
#   [scheduler] task_instance_heartbeat_timeout=30 (s without a heartbeat before a running task is failed
#   and retried), task_instance_heartbeat_timeout_detection_interval=5, orphaned_tasks_check_interval=15,
#   scheduler_health_check_threshold=15; [triggerer] triggerer_health_check_threshold=15 (triggers of a
#   dead triggerer move on); task retries 5 s apart doubling up to 30 s (ORDERFLOW_RETRY_DELAY_SECONDS,
#   ORDERFLOW_MAX_RETRY_DELAY_SECONDS); the sensor waits 30 s per run and sweeps orders Activating > 1 min.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/demo-profile.sh
profile_init chaos "${CHAOS_KEEP:-0}" "${CHAOS_SHAPE:-embedded}" 8098 8030 8094 8034 "${CHAOS_PORT:-}"
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="${AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT:-30}"
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL=5
export AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="${AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL:-15}"
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD=15
export AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD=15
export ORDERFLOW_RETRY_DELAY_SECONDS="${ORDERFLOW_RETRY_DELAY_SECONDS:-5}"
export ORDERFLOW_MAX_RETRY_DELAY_SECONDS="${ORDERFLOW_MAX_RETRY_DELAY_SECONDS:-30}"
export ORDERFLOW_EVENT_WAIT_SECONDS="${ORDERFLOW_EVENT_WAIT_SECONDS:-30}"
export ORDERFLOW_SWEEP_MINUTES="${ORDERFLOW_SWEEP_MINUTES:-1}"
export ORDERFLOW_REPORTS_URL="file://$work/reports"
export CHAOS_REPORTS="$work/reports"
profile_run DEMO_CHAOS=1 DEMO_PG_DB=orderflow_chaos DEMO_REDIS_DB=10
