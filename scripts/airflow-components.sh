#!/usr/bin/env bash
# start | stop | status: the Airflow processes of the demo's shape, each in its own process group, with a
# pid file per component under $AIRFLOW_HOME/run/. Run from scripts/demo.sh (and its drivers, e.g. the
# soak test restarting Airflow mid-run): it relies on the environment demo.sh exports.
#   embedded (default):  airflow standalone, plus an API server for the execution API alone (see demo.sh)
#   DEMO_SHAPE=distributed: api-server, scheduler, dag-processor, triggerer, celery worker
# stop sends TERM to each process group, waits up to 30 s, then KILLs what is left.
set -uo pipefail
: "${AIRFLOW_HOME:?AIRFLOW_HOME must be set (run through scripts/demo.sh)}"
RUN_DIR="$AIRFLOW_HOME/run"
mkdir -p "$RUN_DIR"

components() {
  if [[ "${DEMO_SHAPE:-embedded}" == "distributed" ]]; then
    echo api-server scheduler dag-processor triggerer celery-worker
  else
    echo airflow execution-api
  fi
}

command_for() {
  case "$1" in
    airflow) echo airflow standalone ;;
    api-server) echo airflow api-server --port "${AIRFLOW__API__PORT:-8080}" ;;
    execution-api) echo airflow api-server --apps execution --port "${DEMO_EXECUTION_API_PORT:?}" ;;
    celery-worker) echo airflow celery worker ;;
    *) echo airflow "$1" ;;
  esac
}

alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 -- "-$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start() {
  for name in $(components); do
    if alive "$name"; then continue; fi
    # shellcheck disable=SC2046
    setsid $(command_for "$name") >>"$AIRFLOW_HOME/$name.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/$name.pid"
  done
}

stop() {
  local pids=() name pid
  for name in $(components); do
    [[ -f "$RUN_DIR/$name.pid" ]] && pids+=("$(cat "$RUN_DIR/$name.pid")")
  done
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  for _ in $(seq 1 30); do
    local left=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && left=1; done
    [[ $left == 0 ]] && break
    sleep 1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  for name in $(components); do rm -f "$RUN_DIR/$name.pid"; done
}

status() {
  local rc=0
  for name in $(components); do
    if alive "$name"; then echo "$name: running"; else echo "$name: stopped"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
