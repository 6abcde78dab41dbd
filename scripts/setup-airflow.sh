#!/usr/bin/env bash
# Objects orderflow needs in an Airflow metadata DB: the pools that bound concurrent calls to each
# external system (sizes in config/pools.json). Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
airflow pools import config/pools.json >/dev/null
