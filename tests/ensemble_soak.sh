#!/usr/bin/env bash
# A longer run of the ensemble failure tests than CI's: kill -9 of the leader under write
# load for ROUNDS rounds per run, RUNS runs, then the partition and catch-up tests once per
# run. Every server log of a failing run is printed by the test.
#
#   tests/ensemble_soak.sh [RUNS] [ROUNDS]      (defaults 5 and 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
rounds=${2:-20}
cargo build --release --tests -q
for run in $(seq 1 "$runs"); do
  echo "soak: run $run/$runs, $rounds leader kills"
  ZKRS_ENSEMBLE_ROUNDS=$rounds cargo test --release -q --test ensemble -- --nocapture \
    killing_the_leader partitioned a_restarted 2>&1 | grep -E "round|test result|FAILED|panicked"
done
echo "soak: $runs runs passed"
