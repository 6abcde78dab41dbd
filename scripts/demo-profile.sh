# What scripts/soak.sh and scripts/chaos.sh share (sourced, not run): a throw-away work folder, the
# shape's ports, scripts/demo.sh with the profile's variables, and the component logs' tails on failure.

# profile_init NAME KEEP SHAPE EMBEDDED_PORT EMBEDDED_SMTP DISTRIBUTED_PORT DISTRIBUTED_SMTP [PORT]
# sets work, keep, shape, port and smtp; the work folder goes when the script exits unless KEEP is 1.
profile_init() {
  profile_name=$1 keep=$2 shape=$3
  work="$(mktemp -d -t "orderflow-$profile_name.XXXXXX")"
  trap '[[ $keep == 1 ]] && echo "$profile_name: kept $work" || rm -rf "$work"' EXIT
  if [[ "$shape" == "distributed" ]]; then port="${8:-$6}" smtp=$7; else port="${8:-$4}" smtp=$5; fi
}

# profile_run VAR=VALUE...: demo.sh in the work folder with the given variables; on failure the last
# lines of every component log, and the demo's exit status.
profile_run() {
  local rc=0
  env "$@" DEMO_SHAPE="$shape" AIRFLOW_PORT="$port" DEMO_SMTP_PORT="$smtp" \
    AIRFLOW_HOME="$work/airflow" SANDBOX_DIR="$work/sandbox" bash scripts/demo.sh || rc=$?
  if [[ $rc != 0 ]]; then
    echo "$profile_name failed (exit $rc); last lines of the component logs:"
    for log in "$work"/airflow/*.log; do echo "== $log"; tail -n 25 "$log"; done
  fi
  return $rc
}
