#!/usr/bin/env bash
# `make demo`: Airflow standalone (SQLite + LocalExecutor) + the sandbox emulators + a local SMTP sink,
# all in project-local folders. Ctrl-C stops every process it started (by process group).
# DEMO_EXIT_WHEN_DONE=1: seed, drive the flow, print the outcome table, stop everything, exit 0 only if
# every order settled as expected (and, unless DEMO_RECONCILE=0, one reconciliation found every category of
# drift injected after provisioning).
# DEMO_SOAK=1: the soak test (tests/soak/soak.py, `make soak`): waves of approvals over SOAK_MINUTES,
# lost events, Airflow stopped and started mid-run; exit 0 only if nothing was lost or duplicated.
# Otherwise (interactive): DEMO_TRAFFIC=off|slow|busy (default slow) keeps approving a few orders a
# minute, with the seed's bad apples and an occasional lost event, until Ctrl-C.
# DEMO_SHAPE=distributed: the production shape run natively instead of standalone: CeleryExecutor with
# PostgreSQL (127.0.0.1:5432, database $DEMO_PG_DB) and Redis (127.0.0.1:6379), each Airflow component
# (api-server, scheduler, dag-processor, triggerer, celery worker) as its own process. CI runs it.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PATH="$ROOT/.venv/bin:$PATH"

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
SANDBOX_DIR="${SANDBOX_DIR:-$ROOT/.sandbox}"
AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
ADMIN_USER=admin
ADMIN_PASSWORD="${DEMO_ADMIN_PASSWORD:-admin}"
mkdir -p "$AIRFLOW_HOME" "$SANDBOX_DIR"

if [[ "${DEMO_FRESH:-1}" == "1" ]]; then
  # Each demo starts from a clean slate (fresh metadata DB and sandbox data).
  rm -rf "$AIRFLOW_HOME"/airflow.db* "$AIRFLOW_HOME"/logs "$SANDBOX_DIR"/*.db* "$SANDBOX_DIR"/endpoints.json "$AIRFLOW_HOME"/.orderflow "$AIRFLOW_HOME"/mail
fi

export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_FOLDER="${DEMO_DAGS_FOLDER:-$ROOT/dags}"  # the latency bench adds a no-op DAG in a copy
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
SHAPE="${DEMO_SHAPE:-embedded}"
if [[ "$SHAPE" == "distributed" ]]; then
  PG_DB="${DEMO_PG_DB:-orderflow_airflow}"
  REDIS_DB="${DEMO_REDIS_DB:-7}"
  psql -h 127.0.0.1 -U postgres -q -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB" >/dev/null \
    || { echo "PostgreSQL on 127.0.0.1:5432 is needed for DEMO_SHAPE=distributed"; exit 1; }
  redis-cli -h 127.0.0.1 -n "$REDIS_DB" flushdb >/dev/null \
    || { echo "Redis on 127.0.0.1:6379 is needed for DEMO_SHAPE=distributed"; exit 1; }
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://postgres@127.0.0.1:5432/$PG_DB"
  export AIRFLOW__CORE__EXECUTOR=CeleryExecutor
  export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:6379/$REDIS_DB"
  export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql://postgres@127.0.0.1:5432/$PG_DB"
  export AIRFLOW__CELERY__WORKER_CONCURRENCY="${AIRFLOW__CORE__PARALLELISM:-6}"
  export ORDERFLOW_LOCK_URL="redis://127.0.0.1:6379/$REDIS_DB"  # per-order mutex shared by all workers
else
  # Not a longer SQLite busy timeout: under a burst the API server's own requests wait on each other for exactly
  # that long (measured: 60 s stalls with ?timeout=60), so the default 5 s is the shorter stall. The embedded
  # default is for a laptop; bursts of hundreds of runs belong on PostgreSQL (DEMO_SHAPE=distributed).
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
  # SQLite has one writer: parallel run-start requests made the scheduler die of "database is locked".
  export ORDERFLOW_RUN_START_CONCURRENCY="${ORDERFLOW_RUN_START_CONCURRENCY:-1}"
  # Task processes talk to an API server of their own (the execution API alone), not to the standalone's. The
  # public API's audit-log dependency commits to SQLite from the event loop: when a sync endpoint of the same
  # process held the write lock, the loop waited out the busy timeout for a commit that needed the loop, every
  # other writer stalled 5 s behind it, and the scheduler died of "database is locked" under 20 run starts.
  # Separate processes wait on each other's locks, never on themselves.
  export DEMO_EXECUTION_API_PORT="${DEMO_EXECUTION_API_PORT:-$((AIRFLOW_PORT + 100))}"
fi
# Task processes fork from workers that executed the DAG files once (orderflow/worker_preload.py): a cold
# task process spends ~0.25 s importing what its DAG file needs. The same module makes the workers' task
# supervisors notice a finished task at once (orderflow/task_exit_wait.py: Airflow 3.3.2 can sleep 5 s there).
# DEMO_PRELOAD=0 leaves the DAG files cold (for the bench's A/B); the exit wait stays.
if [[ "$SHAPE" == "distributed" ]]; then
  export AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=orderflow.celery_config.CELERY_CONFIG
else
  export AIRFLOW__SCHEDULER__MP_START_METHOD=forkserver
  export AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD=orderflow.worker_preload
fi
[[ "${DEMO_PRELOAD:-1}" == "1" ]] || export ORDERFLOW_WORKER_WARM=0
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
export AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL=15
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-6}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=16
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2
# An idle scheduler loop sleeps this long (default 1 s): each task of a run waits up to that for the next
# loop to queue it. 0.25 s takes ~0.4 s off every task-to-task hop for a little idle CPU (bench/latency_bench.py).
export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0.25}"
# Tasks whose process died with a stopped Airflow are failed (and retried) after 60 s, not 5 minutes.
export AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="${AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT:-60}"
export AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="${AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL:-30}"
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://localhost:${DEMO_EXECUTION_API_PORT:-$AIRFLOW_PORT}/execution/"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="$ADMIN_USER:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
export AIRFLOW__API_AUTH__JWT_SECRET="${AIRFLOW__API_AUTH__JWT_SECRET:-orderflow-demo-jwt-secret}"
export AIRFLOW__LOGGING__LOGGING_LEVEL="${AIRFLOW__LOGGING__LOGGING_LEVEL:-INFO}"
export ORDERFLOW_SANDBOX_DIR="$SANDBOX_DIR"
# Airflow's own REST API: the sensor, the sweep and reconciliation start provision_order runs through it.
export AIRFLOW_CONN_ORDERFLOW_AIRFLOW_API="{\"conn_type\": \"airflow_api\", \"host\": \"http://localhost:$AIRFLOW_PORT\", \"login\": \"$ADMIN_USER\", \"password\": \"$ADMIN_PASSWORD\"}"
if [[ "${DEMO_EXIT_WHEN_DONE:-0}" != "1" ]]; then
  # The interactive demo loses an event now and then: sweep after 2 minutes, so a newcomer sees it.
  export ORDERFLOW_SWEEP_MINUTES="${ORDERFLOW_SWEEP_MINUTES:-2}"
fi
printf '{"%s": "%s"}\n' "$ADMIN_USER" "$ADMIN_PASSWORD" > "$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"

PIDS=()
say() { echo "$@" 2>/dev/null || true; }  # never dies of a closed stdout (`make demo | tee log`, then Ctrl-C)
cleanup() {
  trap - INT TERM EXIT
  trap '' PIPE HUP  # whatever happens to our output or terminal, finish stopping everything
  say "demo: stopping..."
  bash scripts/airflow-components.sh stop >/dev/null 2>&1
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; done
  for _ in $(seq 1 30); do
    alive=0
    for pid in "${PIDS[@]}"; do { kill -0 -- "-$pid" || kill -0 "$pid"; } 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 1
  done
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; done
  say "demo: stopped"
}
trap 'cleanup; exit 130' INT TERM HUP
trap cleanup EXIT

start() {  # start NAME CMD... in its own process group, logging to $AIRFLOW_HOME/NAME.log
  local name=$1; shift
  setsid "$@" >"$AIRFLOW_HOME/$name.log" 2>&1 </dev/null &
  PIDS+=("$!")
}

wait_for() {  # wait_for URL SECONDS WHAT LOG: until URL answers 2xx, else show LOG's tail and exit 1
  local url=$1 seconds=$2 what=$3 log=$4
  for _ in $(seq 1 "$seconds"); do curl -fsS "$url" >/dev/null 2>&1 && return 0; sleep 1; done
  curl -fsS "$url" >/dev/null || { echo "$what did not come up ($url)"; tail -50 "$log"; exit 1; }
}

port_free() {  # port_free PORT WHAT: an earlier instance still listening would answer for this one
  if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "demo: port $1 ($2) is already in use: stop what listens there (an earlier make demo?) or set AIRFLOW_PORT"
    exit 1
  fi
}

run_driver() {  # run a driver in the background and wait, so Ctrl-C/TERM reach the cleanup at once
  "$@" &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid"
}

# 1. The sandbox (Salesforce org + Pub/Sub + WHMCS), when it is part of the tree.
if python -c "import orderflow_sandbox.salesforce.org, orderflow_sandbox.whmcs.app" 2>/dev/null; then
  start sandbox orderflow-sandbox --data-dir "$SANDBOX_DIR" serve
  for _ in $(seq 1 60); do [[ -f "$SANDBOX_DIR/endpoints.json" ]] && break; sleep 0.5; done
  [[ -f "$SANDBOX_DIR/endpoints.json" ]] || { echo "sandbox did not start"; cat "$AIRFLOW_HOME/sandbox.log"; exit 1; }
  # Connections and pools for the sandbox, as environment variables the Airflow processes inherit.
  eval "$(python -m orderflow_sandbox.demo env --endpoints "$SANDBOX_DIR/endpoints.json" --smtp-port "${DEMO_SMTP_PORT:-8025}")"
  # The demo mails each activation to the local SMTP sink; DEMO_MAIL=0 leaves it off, as in production by default.
  [[ "${DEMO_MAIL:-1}" == "1" ]] || unset ORDERFLOW_NOTIFY_EMAIL
  start smtp python -m orderflow_sandbox.demo smtp-sink --port "${DEMO_SMTP_PORT:-8025}" --maildir "$AIRFLOW_HOME/mail"
fi

# 2. Airflow: standalone (embedded default), or each component on its own (distributed shape).
port_free "$AIRFLOW_PORT" "Airflow's API server"
[[ -n "${DEMO_EXECUTION_API_PORT:-}" ]] && port_free "$DEMO_EXECUTION_API_PORT" "the execution API server"
airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log"; exit 1; }
bash scripts/setup-airflow.sh
export DEMO_SHAPE="$SHAPE"
rm -f "$AIRFLOW_HOME"/run/*.pid
bash scripts/airflow-components.sh start
if [[ "$SHAPE" == "distributed" ]]; then LOGFILE="$AIRFLOW_HOME/scheduler.log"; else LOGFILE="$AIRFLOW_HOME/airflow.log"; fi
echo "demo: waiting for Airflow on http://localhost:$AIRFLOW_PORT ..."
wait_for "http://localhost:$AIRFLOW_PORT/api/v2/monitor/health" 180 "Airflow" "$LOGFILE"
if [[ -n "${DEMO_EXECUTION_API_PORT:-}" ]]; then
  wait_for "http://localhost:$DEMO_EXECUTION_API_PORT/execution/health" 60 "the execution API server" \
    "$AIRFLOW_HOME/execution-api.log"
fi
cat <<MSG

  Airflow UI: http://localhost:$AIRFLOW_PORT    login: $ADMIN_USER / $ADMIN_PASSWORD    ($SHAPE shape)
  Logs:       $AIRFLOW_HOME/*.log     Sandbox: $SANDBOX_DIR (orderflow-sandbox --data-dir $SANDBOX_DIR ...)

MSG

DRIVER_ARGS=(--airflow "http://localhost:$AIRFLOW_PORT" --user "$ADMIN_USER" --password "$ADMIN_PASSWORD"
             --sandbox "$SANDBOX_DIR")
if [[ "${DEMO_EXIT_WHEN_DONE:-0}" == "1" ]]; then
  run_driver python -m orderflow_sandbox.demo drive "${DRIVER_ARGS[@]}" --orders "${DEMO_ORDERS:-24}" \
    --timeout "${DEMO_TIMEOUT:-600}" --maildir "$AIRFLOW_HOME/mail" --trigger "${DEMO_TRIGGER:-events}" \
    "$([[ "${DEMO_RECONCILE:-1}" == "1" ]] && echo --reconcile || echo --no-reconcile)"
  exit $?
fi
if [[ "${DEMO_SOAK:-0}" == "1" ]]; then
  run_driver python tests/soak/soak.py "${DRIVER_ARGS[@]}" --minutes "${SOAK_MINUTES:-6}" \
    --min-sensor-runs "${SOAK_MIN_SENSOR_RUNS:-5}" --settle-minutes "${SOAK_SETTLE_MINUTES:-4}"
  exit $?
fi
if [[ "${DEMO_CHAOS:-0}" == "1" ]]; then  # `make chaos` (scripts/chaos.sh)
  run_driver python tests/chaos/chaos.py "${DRIVER_ARGS[@]}" --orders "${CHAOS_ORDERS:-200}" --shape "$SHAPE" \
    --reports "${CHAOS_REPORTS:-}" --faults "${CHAOS_FAULTS:-whmcs,salesforce,pubsub,kill,restart}"
  exit $?
fi
say "demo: running. Press Ctrl-C to stop."
if [[ "${DEMO_TRAFFIC:-slow}" != "off" ]]; then
  run_driver python -m orderflow_sandbox.demo traffic "${DRIVER_ARGS[@]}" --pace "${DEMO_TRAFFIC:-slow}"
fi
while true; do sleep 3600 & PIDS+=("$!"); wait $!; done
