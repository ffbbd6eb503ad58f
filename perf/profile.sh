#!/bin/bash
# Where zkrs spends its CPU under one of compare.sh's workloads: perf record of the server
# process while zkrs-loadgen drives it, then a flat `perf report` (self time per symbol).
#
#   perf/profile.sh read|write|mixed|sync [SECONDS] [OUTDIR]
#
# Uses the release binaries in ${CARGO_TARGET_DIR:-target}/release (build them first:
# cargo build --release --workspace). Writes OUTDIR/perf-<workload>.data and
# OUTDIR/perf-<workload>.txt (default OUTDIR: a temp dir, printed). CALL_GRAPH=dwarf adds
# call stacks (bigger files, slower report).
set -euo pipefail
cd "$(dirname "$0")/.."
workload=${1:?usage: perf/profile.sh read|write|mixed|sync [SECONDS] [OUTDIR]}
seconds=${2:-5}
out=${3:-$(mktemp -d /tmp/zkrs-profile.XXXXXX)}
target=${CARGO_TARGET_DIR:-target}
case "$workload" in
  read)  flags=(--mix get=100 -c 8 --outstanding 32);;
  write) flags=(--mix set=100 -c 8 --outstanding 32);;
  mixed) flags=(--mix get=90,set=10 -c 8 --outstanding 32);;
  sync)  flags=(--mix set=100 -c 1 --outstanding 1);;
  *) echo "unknown workload $workload" >&2; exit 2;;
esac
mkdir -p "$out"
dir=$(mktemp -d /tmp/zkrs-profile-data.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'tickTime=2000\ndataDir=%s/data\ndataLogDir=%s/log\nclientPort=%s\nmaxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n' \
  "$dir" "$dir" "$port" > "$dir/zoo.cfg"
RUST_LOG=warn "$target/release/zkrs" start-foreground "$dir/zoo.cfg" > "$dir/server.out" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$port),1); s.sendall(b'srvr'); sys.exit(0 if b'Mode' in s.recv(4096) else 1)" 2>/dev/null && break
  sleep 0.1
done
lg=("$target/release/zkrs-loadgen" run --hosts "127.0.0.1:$port" --quiet --keep "${flags[@]}")
"${lg[@]}" --duration 1s --warmup 0s > /dev/null          # setup + warm-up
"${lg[@]}" --no-setup --duration "$((seconds + 2))s" --warmup 1s > "$out/loadgen-$workload.txt" &
lgpid=$!
sleep 1.5
cg=()
if [ "${CALL_GRAPH:-}" = dwarf ]; then cg=(--call-graph dwarf,32768); fi
perf record -q -F 1999 "${cg[@]}" -p "$pid" -o "$out/perf-$workload.data" -- sleep "$seconds" 2>/dev/null
wait "$lgpid" || true
perf report -i "$out/perf-$workload.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
  | grep -v "^#" | grep -v "^$" | sed -E 's/ +- +- *$//; s/ +$//' | cut -c1-160 \
  | head -60 > "$out/perf-$workload.txt" || true
perf report -i "$out/perf-$workload.data" --no-children --sort comm --stdio 2>/dev/null \
  | grep -v "^#" | grep -v "^$" > "$out/perf-$workload-threads.txt" || true
echo "== $workload: loadgen" && grep -E "^(all|get|set) " "$out/loadgen-$workload.txt" || cat "$out/loadgen-$workload.txt"
echo "== CPU by thread" && cat "$out/perf-$workload-threads.txt"
echo "== top symbols (self)" && sed -n '1,45p' "$out/perf-$workload.txt"
echo "(files in $out)"
