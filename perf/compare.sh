#!/bin/bash
# zkrs vs Apache ZooKeeper 3.8 on this machine, one server at a time; see perf/README.md.
#
#   perf/compare.sh [--quick] [--skip-build] [--out DIR] [--tmp DIR] [--keep-tmp]
#   perf/compare.sh --ensemble 3 [--quick] [--failover-rate N] [--snap-znodes N] [...]
#
#   --quick       1-2 minute version (3 s runs, 100k znodes) instead of the full one
#                 (10 s runs + 2 s warm-up, 1M znodes; under 10 minutes)
#   --skip-build  use the release binaries already in $CARGO_TARGET_DIR (default target/)
#   --out DIR     where the Markdown report and raw JSON go (default perf/results)
#   --tmp DIR     parent of the temporary data dirs (default $TMPDIR or /tmp): the disk tested
#   --keep-tmp    leave the data dirs behind
#   --zkrs-metrics  zkrs runs with the Prometheus metrics provider on and /metrics scraped
#                 every second (--scrape-interval S) through the workloads (standalone only)
#   --ensemble N  N zkrs servers vs N Java servers on this machine (3 or 5): reads, writes,
#                 90/10 spread over all servers, leader failover under 2000 writes/s
#                 (--failover-rate), follower catch-up of 1M znodes (--quick: 100k;
#                 --snap-znodes)
#
# Needs: cargo, python3, java + Debian's zookeeper package (/usr/share/java/zookeeper.jar).
set -euo pipefail
cd "$(dirname "$0")/.."
build=1
args=()
for a in "$@"; do
  case "$a" in
    --skip-build) build=0;;
    -h|--help) sed -n '2,20p' "$0"; exit 0;;
    *) args+=("$a");;
  esac
done
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
if [ "$build" = 1 ]; then
  cargo build --release --workspace --quiet
fi
if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null; then
  echo "compare.sh: Apache ZooKeeper is not installed (apt-get install zookeeper)" >&2
  exit 2
fi
exec python3 perf/compare.py --zkrs "$target/release/zkrs" \
  --loadgen "$target/release/zkrs-loadgen" ${args[@]+"${args[@]}"}
