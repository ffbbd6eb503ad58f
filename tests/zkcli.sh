#!/usr/bin/env bash
# End-to-end check with Apache ZooKeeper's own command-line client against a running server.
#
#   tests/zkcli.sh HOST:PORT
#
# Uses /usr/share/zookeeper/bin/zkCli.sh (Debian's `zookeeper` package) unless ZKCLI is set.
# Every node lives under a fresh /zkcli-<pid>-<random> path. Exits non-zero on the first
# failed expectation, printing the command output it looked at.
set -euo pipefail

server=${1:?usage: zkcli.sh HOST:PORT}
zkcli=${ZKCLI:-/usr/share/zookeeper/bin/zkCli.sh}
if [ ! -x "$zkcli" ]; then
  echo "zkcli.sh: $zkcli not found; install Debian's zookeeper package (apt-get install zookeeper)" >&2
  exit 2
fi

work=$(mktemp -d)
watch_pid=
cleanup() {
  if [ -n "$watch_pid" ]; then kill "$watch_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

base=/zkcli-$$-$RANDOM
last=
step=

fail() {
  echo "zkcli.sh: FAIL [$step]: $*" >&2
  echo "--- output of the last command:" >&2
  printf '%s\n' "$last" >&2
  exit 1
}

# Runs one zkCli command in its own JVM; its output (minus logging noise) goes to $last.
# Returns the CLI's exit status (0 on success, 1 when the server refused the command).
zk() {
  local rc=0
  last=$(timeout 60 "$zkcli" -server "$server" "$@" 2>&1) || rc=$?
  last=$(printf '%s\n' "$last" | grep -v -e '^SLF4J:' -e '^Connecting to ' -e '^WATCHER::' \
    -e 'type:None path:null' -e '^$' || true)
  return $rc
}
ok() { step="$*"; zk "$@" || fail "command failed"; }
refused() { step="$*"; if zk "$@"; then fail "command should have failed"; fi; }
has() { grep -qxF -- "$1" <<<"$last" || fail "no line '$1'"; }
contains() { grep -qF -- "$1" <<<"$last" || fail "no '$1'"; }

# Waits (bounded) until FILE contains a line with TEXT.
wait_for() {
  local file=$1 text=$2
  for _ in $(seq 1 300); do
    if grep -qF -- "$text" "$file" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  last=$(cat "$file")
  fail "timed out waiting for '$text'"
}

# --- create / get / set / stat / ls -------------------------------------------------------
ok create "$base" top
has "Created $base"
ok create "$base/a" alpha
has "Created $base/a"
ok create "$base/b"
ok create -s "$base/s-" seq
has "Created $base/s-0000000002"
refused create "$base/a" again
contains "Node already exists: $base/a"
refused create "$base/missing/x"
contains "Node does not exist: $base/missing/x"

ok get "$base/a"
has alpha
ok set "$base/a" beta
ok get "$base/a"
has beta
refused set -v 7 "$base/a" gamma
contains "version No is not valid : $base/a"
ok set -v 1 "$base/a" gamma

ok stat "$base/a"
has "dataVersion = 2"
has "dataLength = 5"
has "numChildren = 0"
has "ephemeralOwner = 0x0"
has "cversion = 0"
ok get -s "$base"
has top
has "numChildren = 3"
has "cversion = 3"

ok ls "$base"
has "[a, b, s-0000000002]"
ok getAllChildrenNumber "$base"
has 3
ok getAcl "$base"
has "'world,'anyone"
has ": cdrwa"
ok sync "$base"
has "Sync is OK"
ok whoami
has "ip: 127.0.0.1"

# --- watches: one zkCli session holds the watches, other invocations make the changes -----
ok create "$base/w" w-data-1
fifo=$work/commands
mkfifo "$fifo"
timeout 120 "$zkcli" -server "$server" <"$fifo" >"$work/watch.out" 2>&1 &
watch_pid=$!
exec 3>"$fifo"
echo "get -w $base/w" >&3
step="get -w"
wait_for "$work/watch.out" "w-data-1"
ok set "$base/w" w-data-2
step="data watch"
wait_for "$work/watch.out" "WatchedEvent state:SyncConnected type:NodeDataChanged path:$base/w"

echo "ls -w $base" >&3
step="ls -w"
wait_for "$work/watch.out" "[a, b, s-0000000002, w]"
ok create "$base/c"
step="child watch"
wait_for "$work/watch.out" "WatchedEvent state:SyncConnected type:NodeChildrenChanged path:$base"

# One-shot: a second change is not reported again.
ok set "$base/w" w-data-3
echo "get $base/w" >&3
step="get after second set"
wait_for "$work/watch.out" "w-data-3"
last=$(cat "$work/watch.out")
n=$(grep -c "type:NodeDataChanged path:$base/w" "$work/watch.out" || true)
[ "$n" = 1 ] || fail "expected exactly one NodeDataChanged event, got $n"

echo "stat -w $base/b" >&3
step="stat -w"
wait_for "$work/watch.out" "cZxid = "
ok delete "$base/b"
step="exists watch"
wait_for "$work/watch.out" "WatchedEvent state:SyncConnected type:NodeDeleted path:$base/b"

echo "quit" >&3
exec 3>&-
step="watch session exit"
wait "$watch_pid" || fail "interactive zkCli exited with $?"
watch_pid=

# --- delete / deleteall -------------------------------------------------------------------
refused delete "$base"
contains "Node not empty: $base"
refused delete -v 9 "$base/a"
contains "version No is not valid : $base/a"
ok delete "$base/a"
refused get "$base/a"
contains "Node does not exist: $base/a"
ok create "$base/c/deep"
ok create "$base/c/deep/er"
ok deleteall "$base"
refused stat "$base"
contains "Node does not exist: $base"

echo "zkcli.sh: all checks passed against $server"
