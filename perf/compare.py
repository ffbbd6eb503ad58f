#!/usr/bin/env python3
"""Side-by-side benchmark of zkrs and Apache ZooKeeper 3.8 on this machine (see README.md).

Run through perf/compare.sh, which builds the release binaries first:

    perf/compare.sh [--quick] [--out DIR] [--keep-tmp]

One server at a time: Java ZooKeeper first, then zkrs, each on a fresh data directory
under one temporary directory, with the same zoo.cfg settings. For each: a JIT/cache
warm-up, the loadgen workloads, then N znodes (memory), then a restart (recovery time).
Writes <out>/<date>-<host>[-quick].md and the raw JSON into <out>/<date>-<host>[-quick]/.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
JAVA_CP = ":".join(
    "/usr/share/java/" + jar
    for jar in ["zookeeper.jar", "slf4j-simple.jar", "netty-codec.jar", "netty-resolver.jar"]
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# name, title, loadgen flags
WORKLOADS = [
    ("read", "100% reads: get=100, 8 conns x 32 outstanding, 100 B",
     ["--mix", "get=100", "-c", "8", "--outstanding", "32"]),
    ("write", "100% writes: set=100, 8 conns x 32 outstanding, 100 B, fsync on",
     ["--mix", "set=100", "-c", "8", "--outstanding", "32"]),
    ("mixed", "90/10: get=90,set=10, 8 conns x 32 outstanding, 100 B",
     ["--mix", "get=90,set=10", "-c", "8", "--outstanding", "32"]),
    ("sync", "single synchronous writer: set=100, 1 conn x 1 outstanding, 100 B",
     ["--mix", "set=100", "-c", "1", "--outstanding", "1"]),
    ("syncread", "single synchronous reader: get=100, 1 conn x 1 outstanding, 100 B",
     ["--mix", "get=100", "-c", "1", "--outstanding", "1"]),
]
# Fixed-rate runs (loadgen open loop, latency from each request's intended send time) at
# these fractions of Java's own saturation throughput of the same mix (measured first).
FIXED_RATE_MIXES = [("read", "get=100"), ("write", "set=100"), ("mixed", "get=90,set=10")]
FIXED_RATE_FRACTIONS = [0.01, 0.10, 0.50, 0.90]
# Under a noisy neighbour: one CPU-bound process per CPU the benchmark may use, started here,
# while the server takes this moderate fixed-rate load (issue 12's shared-core case).
NOISY_MIX, NOISY_RATE = "get=90,set=10", 2000
KEYS = 1000
VALUE = 100


def log(msg):
    print("[compare %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=20).stdout.strip()
    except Exception as e:  # informational only
        return "(%s)" % e


# ------------------------------------------------------------------ /proc helpers

def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def system_busy_s():
    """Busy CPU time of the whole machine (all cores), in seconds."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def reset_peak_rss(pid):
    """Resets VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ probes

def four_letter(port, word, timeout=2.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(word.encode())
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def zk_session_handshake(port, timeout=2.0):
    """Opens a ZooKeeper session (ConnectRequest -> ConnectResponse), closes it again."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        body = struct.pack(">iqiqi", 0, 0, 10000, 0, 16) + bytes(16) + b"\x00"
        s.sendall(struct.pack(">i", len(body)) + body)
        (length,) = struct.unpack(">i", recv_exact(s, 4))
        reply = recv_exact(s, length)
        _, negotiated, session_id = struct.unpack(">iiq", reply[:16])
        if negotiated <= 0 or session_id == 0:
            raise ConnectionError("session refused")
        close = struct.pack(">ii", 1, -11)  # xid 1, closeSession
        s.sendall(struct.pack(">i", len(close)) + close)
        try:
            recv_exact(s, 4)
        except (OSError, ConnectionError):
            pass
    return True


def ready(port):
    """The server serves: `srvr` shows a mode and a session can be opened."""
    try:
        if "Mode: " not in four_letter(port, "srvr"):
            return False
        return zk_session_handshake(port)
    except (OSError, ConnectionError, struct.error):
        return False


def mntr(port):
    out = {}
    try:
        for line in four_letter(port, "mntr", timeout=10).splitlines():
            parts = line.split("\t")
            if len(parts) == 2:
                out[parts[0]] = parts[1]
    except OSError:
        pass
    return out


def free_port(preferred):
    for port in [preferred] + [0] * 3:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


# ------------------------------------------------------------------ metrics scraper

PROMETHEUS_PROVIDER = "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


class Scraper:
    """--zkrs-metrics: fetches zkrs's Prometheus /metrics every `interval` seconds on a
    thread of its own (a scrape every second, 15x Prometheus's default rate), so the
    runs measure the request path with metrics collected and exported."""

    def __init__(self, port, interval):
        import threading
        self.port, self.interval = port, interval
        self.stop_flag = threading.Event()
        self.scrapes = self.failures = self.bytes = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def start(self):
        self.thread.start()

    def loop(self):
        request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        while not self.stop_flag.wait(self.interval):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.sendall(request)
                    body = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        body += chunk
                if not body.startswith(b"HTTP/1.1 200") or b"znode_count" not in body:
                    raise RuntimeError("unexpected answer %r" % body[:80])
                self.scrapes += 1
                self.bytes += len(body)
            except Exception as e:  # counted and reported, never fatal to the benchmark
                self.failures += 1
                log("metrics scrape failed: %s" % e)

    def finish(self):
        self.stop_flag.set()
        self.thread.join(timeout=10)
        return {"interval_s": self.interval, "scrapes": self.scrapes,
                "failures": self.failures, "bytes": self.bytes}


# ------------------------------------------------------------------ servers

class Server:
    def __init__(self, kind, root, port, zkrs_bin, java_heap, name=None, extra_cfg=(),
                 myid=None):
        self.kind = kind
        self.name = name or kind
        self.dir = os.path.join(root, self.name)
        self.port = port
        self.zkrs_bin = zkrs_bin
        self.java_heap = java_heap
        self.proc = None
        self.out = None
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        # The same settings for both (the lines of shared/tools/java-zk.sh).
        cfg = [
            "tickTime=2000", "initLimit=10", "syncLimit=5",
            "dataDir=%s/data" % self.dir, "dataLogDir=%s/log" % self.dir,
            "clientPort=%d" % port, "maxClientCnxns=0", "admin.enableServer=false",
            "4lw.commands.whitelist=*",
        ] + list(extra_cfg)
        if myid is not None:
            with open(os.path.join(self.dir, "data", "myid"), "w") as f:
                f.write("%d\n" % myid)
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write("\n".join(cfg) + "\n")

    @property
    def title(self):
        return "Java ZK 3.8" if self.kind == "java" else "zkrs"

    @property
    def pid(self):
        return self.proc.pid

    @property
    def pids(self):
        return [self.proc.pid]

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=120.0):
        """Starts the server; returns seconds from exec to ready()."""
        t0 = self.launch()
        return self.wait_ready(t0, timeout)

    def launch(self):
        """Starts the process without waiting; returns the monotonic time of the exec."""
        if self.kind == "java":
            cmd = ["java", "-Xmx%s" % self.java_heap, "-cp", JAVA_CP,
                   "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg]
            env = dict(os.environ)
        else:
            cmd = [self.zkrs_bin, "start-foreground", self.cfg]
            env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.out = open(os.path.join(self.dir, "server.out"), "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        return t0

    def wait_ready(self, t0, timeout=120.0):
        """Waits until ready(); returns seconds since t0."""
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s/server.out"
                                   % (self.kind, self.proc.returncode, self.dir))
            if ready(self.port):
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError("%s did not become ready in %.0fs" % (self.kind, timeout))

    def mode(self):
        """`Mode:` of srvr (standalone, leader, follower), None while not serving."""
        try:
            m = re.search(r"^Mode: (\w+)", four_letter(self.port, "srvr", timeout=1.0), re.M)
        except OSError:
            return None
        return m.group(1) if m else None

    def kill9(self):
        """SIGKILL, no shutdown of any kind; returns the wall-clock time of the kill."""
        at = time.time()
        self.proc.kill()
        self.proc.wait(30)
        self.proc = None
        if self.out:
            self.out.close()
            self.out = None
        return at

    def stop(self, timeout=60.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        if self.out:
            self.out.close()
            self.out = None


# ------------------------------------------------------------------ loadgen

def loadgen_cmd(loadgen, hosts, extra, json_path=None):
    """`hosts`: a port (standalone) or a connect string."""
    if isinstance(hosts, int):
        hosts = "127.0.0.1:%d" % hosts
    cmd = [loadgen, "run", "--hosts", hosts, "--keys", str(KEYS),
           "--value-size", str(VALUE), "--quiet", "--keep"] + extra
    if json_path:
        cmd += ["--json", json_path]
    return cmd


def run_loadgen(cmd, timeout, stdout_path):
    with open(stdout_path, "w") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode


def measure_workload(server, loadgen, name, flags, duration, warmup, raw_dir):
    """One measured loadgen run; server CPU and system CPU sampled over the measured window."""
    """`server` is a Server or an Ensemble: CPU and RSS are summed over its processes."""
    json_path = os.path.join(raw_dir, "%s-%s.json" % (server.kind, name))
    cmd = loadgen_cmd(loadgen, server.hosts,
                      flags + ["--no-setup", "--duration", "%ds" % duration,
                               "--warmup", "%ds" % warmup], json_path)
    pids = server.pids
    for pid in pids:
        reset_peak_rss(pid)
    t0 = time.monotonic()
    out = open(os.path.join(raw_dir, "%s-%s.txt" % (server.kind, name)), "w")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    # The loadgen connects (milliseconds), warms up for `warmup`, measures for `duration`.
    # Sample inside that: from warmup+0.2s to warmup+duration (still under load).
    start_at, end_at = t0 + warmup + 0.2, t0 + warmup + duration
    time.sleep(max(0.0, start_at - time.monotonic()))
    a = (time.monotonic(), [proc_cpu_s(q) for q in pids], proc_cpu_s(p.pid), system_busy_s())
    time.sleep(max(0.0, end_at - time.monotonic()))
    b = (time.monotonic(), [proc_cpu_s(q) for q in pids], proc_cpu_s(p.pid), system_busy_s())
    per_server = [(y - x) for x, y in zip(a[1], b[1])]
    a = (a[0], sum(a[1]), a[2], a[3])
    b = (b[0], sum(b[1]), b[2], b[3])
    try:
        rc = p.wait(timeout=duration + warmup + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    out.close()
    wall = b[0] - a[0]
    result = {
        "rc": rc,
        "server_cores": (b[1] - a[1]) / wall,
        "loadgen_cores": (b[2] - a[2]) / wall,
        "other_cores": max(0.0, ((b[3] - a[3]) - (b[1] - a[1]) - (b[2] - a[2])) / wall),
        "peak_rss_kb": sum(proc_status_kb(q, "VmHWM") or 0 for q in pids),
        "rss_kb": sum(proc_status_kb(q, "VmRSS") or 0 for q in pids),
    }
    if len(pids) > 1:
        result["per_server_cores"] = [c / wall for c in per_server]
    try:
        with open(json_path) as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        result["error"] = "no JSON (%s), loadgen exit %s" % (e, rc)
        return result
    total = report["total"]
    result["throughput"] = total["throughput"]
    result["latency_ms"] = total["latency_ms"]
    result["ok"] = total["ok"]
    errors = total.get("errors") or {}
    result["errors"] = sum(errors.values()) if isinstance(errors, dict) else errors
    result["cpu_us_per_op"] = (result["server_cores"] / result["throughput"] * 1e6
                               if result["throughput"] else None)
    return result


def load_znodes(server, loadgen, count, raw_dir):
    """Creates `count` keys (~30-byte paths, 100-byte values) with one pipelined session."""
    log_path = os.path.join(raw_dir, "%s-znodes.txt" % server.kind)
    cmd = loadgen_cmd(loadgen, server.port, ["--mix", "get=100", "-c", "1", "--outstanding", "1",
                                              "--duration", "1s", "--warmup", "0s"])
    cmd[cmd.index("--keys") + 1] = str(count)
    t0 = time.monotonic()
    rc = run_loadgen(cmd, 900, log_path)
    wall = time.monotonic() - t0
    with open(log_path) as f:
        text = f.read()
    m = re.search(r"setup: (\d+) nodes created, (\d+) already there.* in ([0-9.]+)s", text)
    created, setup_s = (int(m.group(1)), float(m.group(3))) if m else (None, wall)
    time.sleep(2.0)  # let the server settle (GC, snapshot thread)
    stats = mntr(server.port)
    return {
        "rc": rc,
        "created": created,
        "setup_s": setup_s,
        "create_rate": created / setup_s if created and setup_s else None,
        "rss_kb": proc_status_kb(server.pid, "VmRSS"),
        "peak_rss_kb": proc_status_kb(server.pid, "VmHWM"),
        "znode_count": int(stats.get("zk_znode_count", "0") or 0),
    }


def port_bindable(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            s.listen(1)
            return True
        except OSError:
            return False


def restart(server):
    t0 = time.monotonic()
    server.stop()
    stop_s = time.monotonic() - t0
    # The process has exited, but its listening socket can outlive it by a few ms (zkrs:
    # io_uring tears down asynchronously after exit); wait for the port, not counted.
    t1 = time.monotonic()
    while not port_bindable(server.port) and time.monotonic() - t1 < 10:
        time.sleep(0.001)
    port_free_s = time.monotonic() - t1
    ready_s = server.start(timeout=300)
    stats = mntr(server.port)
    return {
        "stop_s": stop_s,
        "port_free_after_exit_s": port_free_s,
        "start_to_ready_s": ready_s,
        "znode_count": int(stats.get("zk_znode_count", "0") or 0),
        "rss_kb": proc_status_kb(server.pid, "VmRSS"),
    }


def measure_idle(server, seconds):
    """Server CPU with no client connected, as a percentage of one core."""
    time.sleep(1.0)  # the warm-up's sessions close
    before = sum(proc_cpu_s(p) for p in server.pids)
    t0 = time.monotonic()
    time.sleep(seconds)
    used = sum(proc_cpu_s(p) for p in server.pids) - before
    return {"seconds": seconds, "cpu_pct": 100.0 * used / (time.monotonic() - t0)}


def neighbour_count():
    """One neighbour per CPU this process may run on (its affinity mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def measure_beside_neighbours(server, loadgen, args, raw_dir):
    """The fixed-rate NOISY_MIX load while one busy-looping process per CPU runs (at the
    same priority as everything else), stopped right after."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(neighbour_count())]
    try:
        time.sleep(0.5)
        w = measure_workload(server, loadgen, "noisy",
                             ["--mix", NOISY_MIX, "-c", "8", "--rate", str(NOISY_RATE)],
                             args.duration, args.warmup, raw_dir)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
    w["rate"] = NOISY_RATE
    w["neighbours"] = len(hogs)
    return w


def bench_server(server, loadgen, args, raw_dir):
    res = {"workloads": {}}
    log("%s: starting on port %d" % (server.kind, server.port))
    res["first_start_s"] = server.start()
    scraper = None
    if server.kind == "zkrs" and args.zkrs_metrics:
        scraper = Scraper(args.metrics_port, args.scrape_interval)
        scraper.start()
    # Warm-up (JIT, caches) and key setup; not measured.
    log("%s: warm-up %ds (creates %d keys)" % (server.kind, args.jit_warmup, KEYS))
    rc = run_loadgen(loadgen_cmd(loadgen, server.port,
                                 ["--mix", "get=50,set=50", "-c", "8", "--outstanding", "32",
                                  "--duration", "%ds" % args.jit_warmup, "--warmup", "0s"]),
                     args.jit_warmup + 120, os.path.join(raw_dir, "%s-warmup.txt" % server.kind))
    if rc not in (0, 1):
        raise RuntimeError("%s warm-up failed (loadgen exit %d)" % (server.kind, rc))
    log("%s: idle %ds, no client connected" % (server.kind, args.idle))
    res["idle"] = measure_idle(server, args.idle)
    log("%s:   %.2f%% of a core" % (server.kind, res["idle"]["cpu_pct"]))
    for name, title, flags in WORKLOADS:
        log("%s: %s" % (server.kind, title))
        res["workloads"][name] = measure_workload(server, loadgen, name, flags, args.duration,
                                                  args.warmup, raw_dir)
        w = res["workloads"][name]
        log("%s:   %.0f ops/s, p99 %.3f ms, server %.2f cores, %.1f us/op"
            % (server.kind, w.get("throughput", 0), w.get("latency_ms", {}).get("p99", -1),
               w["server_cores"], w.get("cpu_us_per_op") or -1))
    # Java's own saturation when Java runs first (or alone); else the server's own.
    bases = args.fixed_rate_base or {
        name: res["workloads"][name].get("throughput") for name, _ in FIXED_RATE_MIXES}
    if not args.no_fixed_rate:
        res["fixed_rate"] = {}
        for name, mix in FIXED_RATE_MIXES:
            base = bases.get(name)
            if not base:
                continue
            for frac in FIXED_RATE_FRACTIONS:
                rate = max(1, int(base * frac))
                key = "%s@%d%%" % (name, round(frac * 100))
                log("%s: fixed rate %s = %d ops/s" % (server.kind, key, rate))
                w = measure_workload(server, loadgen, "rate-%s-%d" % (name, round(frac * 100)),
                                     ["--mix", mix, "-c", "8", "--rate", str(rate)],
                                     args.duration, args.warmup, raw_dir)
                w["rate"] = rate
                res["fixed_rate"][key] = w
                log("%s:   %.0f ops/s, p99 %.3f ms, %.1f us/op"
                    % (server.kind, w.get("throughput", 0),
                       w.get("latency_ms", {}).get("p99", -1), w.get("cpu_us_per_op") or -1))
    if not args.no_noisy:
        log("%s: %d ops/s (%s) beside %d CPU-bound neighbours"
            % (server.kind, NOISY_RATE, NOISY_MIX, neighbour_count()))
        res["noisy"] = measure_beside_neighbours(server, loadgen, args, raw_dir)
        w = res["noisy"]
        log("%s:   %.0f ops/s, p99 %.3f ms" % (server.kind, w.get("throughput", 0),
                                              w.get("latency_ms", {}).get("p99", -1)))
    if scraper is not None:
        res["metrics_scraper"] = scraper.finish()
        log("%s: /metrics scraped %s" % (server.kind, res["metrics_scraper"]))
    log("%s: creating %d znodes" % (server.kind, args.znodes))
    res["znodes"] = load_znodes(server, loadgen, args.znodes, raw_dir)
    log("%s:   %s" % (server.kind, res["znodes"]))
    log("%s: restart with %d znodes" % (server.kind, args.znodes))
    res["restart"] = restart(server)
    log("%s:   %s" % (server.kind, res["restart"]))
    server.stop()
    res["data_bytes"] = int(sh("du -sb %s | cut -f1" % server.dir) or 0)
    return res


# ------------------------------------------------------------------ report

def machine_info(tmp_root):
    info = {}
    info["host"] = socket.gethostname()
    info["cpu"] = sh("lscpu | sed -n 's/^Model name: *//p' | head -1")
    info["cores"] = sh("nproc")
    info["memory"] = sh("free -h | awk '/^Mem:/{print $2}'")
    info["kernel"] = sh("uname -sr")
    dev = sh("df --output=source %s | tail -1" % tmp_root)
    fs = sh("findmnt -n -o FSTYPE,OPTIONS -T %s" % tmp_root)
    info["disk"] = "%s (%s, rotational=%s, scheduler %s), %s; data dirs under %s" % (
        dev, sh("lsblk -ndo SIZE %s 2>/dev/null" % dev) or "?",
        sh("lsblk -ndo ROTA %s 2>/dev/null" % dev) or "?",
        sh("cat /sys/block/%s/queue/scheduler 2>/dev/null" % os.path.basename(dev)) or "?",
        " ".join(fs.split()), tmp_root)
    info["rustc"] = sh("rustc --version")
    info["java"] = sh("java -version 2>&1 | head -1")
    info["zookeeper_pkg"] = sh("dpkg-query -W -f='${Version}' zookeeper")
    info["zkrs_commit"] = sh("git -C %s rev-parse --short HEAD" % REPO) + (
        " (dirty)" if sh("git -C %s status --porcelain -uno" % REPO) else "")
    return info


def fmt_num(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(v)
    return "{:,.{d}f}".format(v, d=digits)


def ratio(num, den):
    if not num or not den:
        return None
    return num / den


def fmt_ratio(r):
    return "n/a" if r is None else "%.2fx" % r


def mib(kb):
    return None if kb is None else kb / 1024.0


def build_report(args, info, fsync, res, load_before, load_after, started, elapsed):
    j, z = res["java"], res["zkrs"]
    L = []
    mode = "quick" if args.quick else "full"
    L.append("# zkrs vs Apache ZooKeeper 3.8: %s run, %s" % (mode, started))
    L.append("")
    L.append("Produced by `perf/compare.sh%s` in %.0f s. One server at a time, same zoo.cfg "
             "(tickTime=2000, forceSync default = yes, maxClientCnxns=0, 4lw whitelist *), "
             "data and log dirs on the same disk. Loadgen: `zkrs-loadgen` closed loop, "
             "%d keys, %d B values, %d s measured after %d s warm-up per workload (plus a "
             "%d s unmeasured warm-up per server). Java: `-Xmx%s`."
             % (" --quick" if args.quick else "", elapsed, KEYS, VALUE, args.duration,
                args.warmup, args.jit_warmup, args.java_heap))
    if args.zkrs_metrics:
        sc = z.get("metrics_scraper", {})
        L.append("")
        L.append("**Metrics on** (`--zkrs-metrics`): zkrs ran with the Prometheus provider "
                 "(`metricsProvider.className=%s`) and `/metrics` was scraped every %.1f s "
                 "through the workloads and fixed-rate runs (%d scrapes, %d failed, %.1f KiB "
                 "each). Java ran as always: its ServerMetrics are collected in every "
                 "build; Debian's package has no Prometheus provider to export them."
                 % (PROMETHEUS_PROVIDER, args.scrape_interval, sc.get("scrapes", 0),
                    sc.get("failures", 0),
                    sc.get("bytes", 0) / 1024.0 / max(1, sc.get("scrapes", 0))))
    L.append("")
    L.append("## Machine")
    L.append("")
    for key, label in [("host", "host"), ("cpu", "CPU"), ("cores", "cores"),
                       ("memory", "memory"), ("kernel", "kernel"), ("disk", "data disk"),
                       ("rustc", "rustc"), ("java", "java"),
                       ("zookeeper_pkg", "zookeeper package"), ("zkrs_commit", "zkrs commit")]:
        L.append("- %s: %s" % (label, info.get(key, "?")))
    L.append("- load average before: %s; after: %s" % (load_before, load_after))
    L.append("- fdatasync of 4 KiB on a preallocated file in the data dir "
             "(`perf/fsync_probe.py`): p50 %.0f us, p99 %.0f us, p99.9 %.0f us (n=%d)"
             % (fsync["p50_us"], fsync["p99_us"], fsync["p99_9_us"], fsync["samples"]))
    L.append("")
    L.append("## Results")
    L.append("")
    L.append("Ratios are always \"how much better zkrs is\" (> 1 = zkrs better): "
             "throughput zkrs/java; latency, CPU, RSS and restart time java/zkrs.")
    L.append("")
    L.append("| workload | metric | Java ZK 3.8 | zkrs | ratio |")
    L.append("|---|---|---:|---:|---:|")

    def row(wl, metric, jv, zv, r, digits=0):
        L.append("| %s | %s | %s | %s | %s |" % (wl, metric, fmt_num(jv, digits),
                                              fmt_num(zv, digits), fmt_ratio(r)))

    for name, title, _ in WORKLOADS:
        jw, zw = j["workloads"][name], z["workloads"][name]
        label = "**%s**: %s" % (name, title)
        if "error" in jw or "error" in zw:
            L.append("| %s | error | %s | %s | |" % (label, jw.get("error", ""),
                                                     zw.get("error", "")))
            continue
        row(label, "throughput (ops/s)", jw["throughput"], zw["throughput"],
            ratio(zw["throughput"], jw["throughput"]))
        for key, metric in [("p50", "p50 latency (ms)"), ("p99", "p99 latency (ms)"),
                            ("p99_9", "p99.9 latency (ms)")]:
            row("", metric, jw["latency_ms"][key], zw["latency_ms"][key],
                ratio(jw["latency_ms"][key], zw["latency_ms"][key]), 3)
        row("", "server CPU per op (us)", jw["cpu_us_per_op"], zw["cpu_us_per_op"],
            ratio(jw["cpu_us_per_op"], zw["cpu_us_per_op"]), 1)
        row("", "server CPU (cores busy)", jw["server_cores"], zw["server_cores"], None, 2)
        row("", "peak RSS (MiB)", mib(jw["peak_rss_kb"]), mib(zw["peak_rss_kb"]),
            ratio(jw["peak_rss_kb"], zw["peak_rss_kb"]), 1)
        L.append("| | loadgen / other CPU (cores) | %.2f / %.2f | %.2f / %.2f | |"
                 % (jw["loadgen_cores"], jw["other_cores"], zw["loadgen_cores"],
                    zw["other_cores"]))
        if jw.get("errors") or zw.get("errors"):
            L.append("| | errors | %s | %s | |" % (jw.get("errors"), zw.get("errors")))
        if name == "sync":
            L.append("| | p50 minus disk fdatasync p50 (us) | %.0f | %.0f | |"
                     % (jw["latency_ms"]["p50"] * 1000 - fsync["p50_us"],
                        zw["latency_ms"]["p50"] * 1000 - fsync["p50_us"]))
    jf, zf = j.get("fixed_rate") or {}, z.get("fixed_rate") or {}
    for key in [k for k in jf if k in zf]:
        jw, zw = jf[key], zf[key]
        if "error" in jw or "error" in zw or not jw.get("latency_ms") or not zw.get("latency_ms"):
            L.append("| **fixed rate %s** | error | %s | %s | |"
                     % (key, jw.get("error", ""), zw.get("error", "")))
            continue
        label = "**fixed rate %s** of Java's saturation: %d ops/s, 8 conns, open loop" % (
            key, zw["rate"])
        row(label, "achieved (ops/s)", jw["throughput"], zw["throughput"], None)
        for k, metric in [("p50", "p50 latency (ms)"), ("p99", "p99 latency (ms)")]:
            row("", metric, jw["latency_ms"][k], zw["latency_ms"][k],
                ratio(jw["latency_ms"][k], zw["latency_ms"][k]), 3)
        row("", "server CPU per op (us)", jw["cpu_us_per_op"], zw["cpu_us_per_op"],
            ratio(jw["cpu_us_per_op"], zw["cpu_us_per_op"]), 1)
    jq, zq = j.get("noisy"), z.get("noisy")
    if jq and zq and jq.get("latency_ms") and zq.get("latency_ms"):
        label = ("**noisy neighbour**: %d ops/s (%s), 8 conns, open loop, beside %d "
                 "busy-looping processes (one per CPU)" % (zq["rate"], NOISY_MIX,
                                                         zq["neighbours"]))
        row(label, "achieved (ops/s)", jq["throughput"], zq["throughput"], None)
        for k, metric in [("p50", "p50 latency (ms)"), ("p99", "p99 latency (ms)"),
                          ("p99_9", "p99.9 latency (ms)")]:
            if k in jq["latency_ms"] and k in zq["latency_ms"]:
                row("", metric, jq["latency_ms"][k], zq["latency_ms"][k],
                    ratio(jq["latency_ms"][k], zq["latency_ms"][k]), 3)
    ji, zi = j.get("idle"), z.get("idle")
    if ji and zi:
        row("**idle**, no client, %d s" % zi["seconds"], "server CPU (% of a core)",
            ji["cpu_pct"], zi["cpu_pct"], ratio(ji["cpu_pct"], zi["cpu_pct"]), 2)
    jn, zn = j["znodes"], z["znodes"]
    label = "**znodes**: %s znodes (~30 B paths, 100 B values), 1 session pipelined" % (
        fmt_num(args.znodes))
    row(label, "create rate (znodes/s)", jn["create_rate"], zn["create_rate"],
        ratio(zn["create_rate"], jn["create_rate"]))
    row("", "RSS after (MiB)", mib(jn["rss_kb"]), mib(zn["rss_kb"]),
        ratio(jn["rss_kb"], zn["rss_kb"]), 1)
    row("", "peak RSS (MiB)", mib(jn["peak_rss_kb"]), mib(zn["peak_rss_kb"]),
        ratio(jn["peak_rss_kb"], zn["peak_rss_kb"]), 1)
    row("", "zk_znode_count (mntr)", jn["znode_count"], zn["znode_count"], None)
    jr, zr = j["restart"], z["restart"]
    label = "**restart** with %s znodes" % fmt_num(args.znodes)
    row(label, "stop (s)", jr["stop_s"], zr["stop_s"], ratio(jr["stop_s"], zr["stop_s"]), 2)
    row("", "start until srvr + session (s)", jr["start_to_ready_s"], zr["start_to_ready_s"],
        ratio(jr["start_to_ready_s"], zr["start_to_ready_s"]), 2)
    row("", "RSS after restart (MiB)", mib(jr["rss_kb"]), mib(zr["rss_kb"]),
        ratio(jr["rss_kb"], zr["rss_kb"]), 1)
    row("", "zk_znode_count after restart", jr["znode_count"], zr["znode_count"], None)
    L.append("")

    # Goals.
    goals = []

    def goal(text, measured_text, ok, gap_text):
        goals.append((text, measured_text, "PASS" if ok else "MISS", gap_text))

    def wl(side, name):
        return side["workloads"][name]

    def cpu_ratio(name):
        return ratio(wl(j, name).get("cpu_us_per_op"), wl(z, name).get("cpu_us_per_op"))

    ji, zi = j.get("idle"), z.get("idle")
    if ji and zi:
        goal("idle server CPU no higher than Java's",
             "%.2f%% vs %.2f%% of a core" % (zi["cpu_pct"], ji["cpu_pct"]),
             zi["cpu_pct"] <= ji["cpu_pct"],
             "" if zi["cpu_pct"] <= ji["cpu_pct"] else "%.2f points over"
             % (zi["cpu_pct"] - ji["cpu_pct"]))
    r = cpu_ratio("read")
    goal("server CPU per read >= 8x lower", fmt_ratio(r), r is not None and r >= 8,
         "" if r is None or r >= 8 else "needs %.1fx more" % (8 / r))
    r = cpu_ratio("write")
    goal("server CPU per write >= 4x lower", fmt_ratio(r), r is not None and r >= 4,
         "" if r is None or r >= 4 else "needs %.1fx more" % (4 / r))
    jw, zw = wl(j, "read"), wl(z, "read")
    rt = ratio(zw.get("throughput"), jw.get("throughput"))
    rp = ratio(jw.get("latency_ms", {}).get("p99"), zw.get("latency_ms", {}).get("p99"))
    ok = rt is not None and rp is not None and rt >= 3 and rp >= 3
    gap = []
    if rt is not None and rt < 3:
        gap.append("throughput needs %.1fx more" % (3 / rt))
    if rp is not None and rp < 3:
        gap.append("p99 needs %.1fx lower" % (3 / rp))
    goal("read throughput >= 3x with p99 <= 1/3",
         "throughput %s, p99 %s" % (fmt_ratio(rt), fmt_ratio(rp)), ok, "; ".join(gap))
    jw, zw = wl(j, "write"), wl(z, "write")
    rt = ratio(zw.get("throughput"), jw.get("throughput"))
    rp = ratio(jw.get("latency_ms", {}).get("p99"), zw.get("latency_ms", {}).get("p99"))
    ok = rt is not None and rp is not None and rt >= 3 and rp > 1
    gap = []
    if rt is not None and rt < 3:
        gap.append("throughput needs %.1fx more" % (3 / rt))
    if rp is not None and rp <= 1:
        gap.append("p99 %.3f ms vs java %.3f ms" % (zw["latency_ms"]["p99"],
                                                     jw["latency_ms"]["p99"]))
    goal("write throughput (8x32, 100 B, fsync) >= 3x with lower p99",
         "throughput %s, p99 %s" % (fmt_ratio(rt), fmt_ratio(rp)), ok, "; ".join(gap))
    zs = wl(z, "sync").get("latency_ms", {}).get("p50")
    js = wl(j, "sync").get("latency_ms", {}).get("p50")
    if zs is not None and js is not None:
        over = zs * 1000 - fsync["p50_us"]
        ok = over <= 30 and zs < js
        gap = []
        if over > 30:
            gap.append("%.0f us over fdatasync + 30 us" % (over - 30))
        if zs >= js:
            gap.append("not below Java's %.0f us" % (js * 1000))
        goal("single sync writer p50 below Java's and within 30 us of fdatasync p50",
             "zkrs p50 %.0f us, Java %.0f us, fdatasync p50 %.0f us (+%.0f us)"
             % (zs * 1000, js * 1000, fsync["p50_us"], over), ok, "; ".join(gap))
    zr_, jr_ = (wl(z, "syncread").get("latency_ms", {}).get("p50"),
                wl(j, "syncread").get("latency_ms", {}).get("p50"))
    if zr_ is not None and jr_ is not None:
        r = ratio(jr_, zr_)
        goal("single sync reader p50 <= 1/3 of Java's", "%s (%.0f vs %.0f us)"
             % (fmt_ratio(r), zr_ * 1000, jr_ * 1000), r is not None and r >= 3,
             "" if r is None or r >= 3 else "needs %.1fx lower" % (3 / r))
    jf, zf = j.get("fixed_rate") or {}, z.get("fixed_rate") or {}
    both = [k for k in jf if k in zf and jf[k].get("latency_ms") and zf[k].get("latency_ms")]
    if both:
        cpu_miss = [k for k in both if (ratio(jf[k].get("cpu_us_per_op"),
                                              zf[k].get("cpu_us_per_op")) or 0) < 4]
        p99_miss = [k for k in both if (ratio(jf[k]["latency_ms"]["p99"],
                                              zf[k]["latency_ms"]["p99"]) or 0) < 2]
        goal("fixed rates (1/10/50/90% of Java's saturation): CPU per op <= 1/4 of Java's",
             "%d of %d rates" % (len(both) - len(cpu_miss), len(both)), not cpu_miss,
             ", ".join(cpu_miss))
        goal("fixed rates: p99 <= 1/2 of Java's",
             "%d of %d rates" % (len(both) - len(p99_miss), len(both)), not p99_miss,
             ", ".join(p99_miss))
    jq, zq = j.get("noisy"), z.get("noisy")
    if jq and zq and jq.get("latency_ms") and zq.get("latency_ms"):
        jp, zp = jq["latency_ms"]["p99"], zq["latency_ms"]["p99"]
        goal("beside a CPU-bound neighbour per CPU: p99 at %d ops/s no higher than Java's"
             % NOISY_RATE, "zkrs %.3f ms, Java %.3f ms" % (zp, jp), zp <= jp,
             "" if zp <= jp else "needs %.1fx lower" % (zp / jp))
    r = ratio(jn["rss_kb"], zn["rss_kb"])
    goal("RSS with %s znodes <= 1/5 of Java's" % fmt_num(args.znodes),
         "%s (%.0f vs %.0f MiB)" % (fmt_ratio(r), mib(jn["rss_kb"]) or 0, mib(zn["rss_kb"]) or 0),
         r is not None and r >= 5, "" if r is None or r >= 5 else "needs %.1fx less" % (5 / r))
    L.append("## Goals")
    L.append("")
    L.append("| goal | measured (ratio vs Java) | verdict | gap |")
    L.append("|---|---|---|---|")
    for g in goals:
        L.append("| %s | %s | **%s** | %s |" % g)
    L.append("")
    L.append("Raw loadgen output and JSON: `%s/`." % os.path.basename(args.raw_dir))
    L.append("")
    return "\n".join(L), goals


# ------------------------------------------------------------------ ensemble mode

ENSEMBLE_WORKLOADS = [w for w in WORKLOADS if w[0] in ("read", "write", "mixed")]


def ports_free(ports):
    return all(port_bindable(p) for p in ports)


class Ensemble:
    """N servers of one kind on loopback: client port BASE+10*i, quorum BASE+10*i+1,
    election BASE+10*i+2 (i = 1..N, as shared/tools/java-zk.sh lays them out)."""

    def __init__(self, kind, root, base, n, zkrs_bin, java_heap):
        for _ in range(20):
            ports = [base + 10 * i + k for i in range(1, n + 1) for k in range(3)]
            if ports_free(ports):
                break
            base += 100
        else:
            raise RuntimeError("no free port range for the %s ensemble" % kind)
        self.kind = kind
        self.dir = os.path.join(root, kind)
        lines = ["server.%d=127.0.0.1:%d:%d" % (i, base + 10 * i + 1, base + 10 * i + 2)
                 for i in range(1, n + 1)]
        self.members = [Server(kind, root, base + 10 * i, zkrs_bin, java_heap,
                               name="%s/s%d" % (kind, i), extra_cfg=lines, myid=i)
                        for i in range(1, n + 1)]

    @property
    def title(self):
        return self.members[0].title

    @property
    def pids(self):
        return [m.pid for m in self.members if m.proc is not None]

    @property
    def hosts(self):
        return ",".join(m.hosts for m in self.members)

    def hosts_without(self, member):
        return ",".join(m.hosts for m in self.members if m is not member)

    def start(self, timeout=120.0):
        """Starts every member; returns seconds until one leads and all others follow."""
        t0 = time.monotonic()
        for m in self.members:
            m.launch()
        self.wait_serving(len(self.members), t0, timeout)
        return time.monotonic() - t0

    def modes(self):
        return [m.mode() if m.proc is not None else None for m in self.members]

    def wait_serving(self, count, t0, timeout=120.0):
        """Until one leader and count-1 followers serve (srvr + a session); the leader."""
        while time.monotonic() - t0 < timeout:
            for m in self.members:
                if m.proc is not None and m.proc.poll() is not None:
                    raise RuntimeError("%s exited with %s; see %s/server.out"
                                       % (m.name, m.proc.returncode, m.dir))
            modes = self.modes()
            leaders = [m for m, mode in zip(self.members, modes) if mode == "leader"]
            followers = sum(1 for mode in modes if mode == "follower")
            if len(leaders) == 1 and 1 + followers >= count and all(
                    ready(m.port) for m, mode in zip(self.members, modes) if mode):
                return leaders[0]
            time.sleep(0.05)
        raise RuntimeError("%s ensemble: no leader with %d serving in %.0fs (modes %s)"
                           % (self.kind, count, timeout, self.modes()))

    def leader(self):
        return self.wait_serving(1, time.monotonic(), 60)

    def stop(self):
        for m in self.members:
            m.stop()


def read_timeline(path):
    events = []
    with open(path) as f:
        next(f, None)
        for line in f:
            parts = line.rstrip("\n").split(",")
            if len(parts) == 5:
                events.append((int(parts[0]) / 1e6, parts[1], parts[2], int(parts[3]),
                               int(parts[4])))
    return events


def failover(ens, loadgen, args, raw_dir, tag=""):
    """Open-loop writes over all members; kill -9 the leader mid-run; write unavailability
    from the loadgen's own timeline (completion times of acknowledged writes). `tag` goes
    into the raw file names (a second failover of the same run)."""
    kind = ens.kind + tag
    leader = ens.leader()
    before, after_kill = args.failover_before, args.failover_after
    timeline = os.path.join(raw_dir, "%s-failover-timeline.csv" % kind)
    json_path = os.path.join(raw_dir, "%s-failover.json" % kind)
    cmd = loadgen_cmd(loadgen, ens.hosts,
                      ["--mix", "set=100", "-c", "8", "--rate", str(args.failover_rate),
                       "--no-setup", "--reconnect", "--session-timeout", "10s",
                       "--duration", "%ds" % (before + after_kill), "--warmup", "1s",
                       "--drain-timeout", "15s", "--timeline", timeline], json_path)
    out = open(os.path.join(raw_dir, "%s-failover.txt" % kind), "w")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    time.sleep(max(0.0, t0 + 1 + before - time.monotonic()))
    killed = leader.name
    kill_at = leader.kill9()
    # When do the survivors show a new leader on srvr (polled every 20 ms)?
    new_leader, new_leader_s = None, None
    while time.time() - kill_at < 60:
        for m in ens.members:
            if m.proc is not None and m.mode() == "leader":
                new_leader, new_leader_s = m.name, time.time() - kill_at
                break
        if new_leader:
            break
        time.sleep(0.02)
    try:
        rc = p.wait(timeout=before + after_kill + 90)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    out.close()
    res = {"rc": rc, "killed": killed, "new_leader": new_leader,
           "new_leader_srvr_s": new_leader_s, "rate": args.failover_rate}
    try:
        events = read_timeline(timeline)
    except OSError as e:
        res["error"] = "no timeline (%s), loadgen exit %s" % (e, rc)
        return res
    oks = [e[0] for e in events if e[1] == "set" and e[2] == "ok"]
    last_before = max((t for t in oks if t <= kill_at), default=None)
    # For scale: the longest gap between acks in the second before the kill (a machine
    # shared with others stalls now and then; at 2000/s acks are ~0.5 ms apart).
    window = [t for t in oks if kill_at - 1.0 <= t <= kill_at]
    baseline = max((b - a for a, b in zip(window, window[1:])), default=None)
    first_after = None
    # The first acknowledged write after the longest silence that follows the kill (acks
    # already on their way when the leader died arrive a few ms after kill_at).
    after = [t for t in oks if t > kill_at]
    prev, gap = last_before, None
    for t in after:
        if prev is not None and (gap is None or t - prev > gap[1] - gap[0]):
            gap = (prev, t)
        prev = t
    if gap is not None:
        last_before, first_after = gap
    errors = {}
    for e in events:
        if e[1] != "reconnect" and e[2] != "ok":
            errors[e[2]] = errors.get(e[2], 0) + 1
    reconnects = [e for e in events if e[1] == "reconnect"]
    res.update({
        "writes_ok": len(oks),
        "errors": errors,
        "reconnects": len(reconnects),
        "reconnect_ms_max": max((e[3] / 1000 for e in reconnects), default=None),
        "gap_s": (first_after - last_before) if gap else None,
        "kill_to_first_ack_s": (first_after - kill_at) if first_after else None,
        "gap_start_after_kill_s": (last_before - kill_at) if last_before else None,
        "baseline_gap_s": baseline,
        "max_latency_ms": max((e[3] / 1000 for e in events if e[1] == "set"), default=None),
    })
    # Bring the killed member back, so the next step has the full ensemble again.
    member = next(m for m in ens.members if m.name == killed)
    member.launch()
    ens.wait_serving(len(ens.members), time.monotonic(), 120)
    return res


def sync_kind(member, since_bytes):
    """How the member's last sync went, from its log after `since_bytes`."""
    try:
        with open(os.path.join(member.dir, "server.out"), "rb") as f:
            f.seek(since_bytes)
            text = f.read().decode(errors="replace")
    except OSError:
        return "?"
    found = []
    for pattern, name in [(r"by SNAP", "SNAP"), (r"by DIFF", "DIFF"),
                          (r"[Gg]etting a snapshot from leader", "SNAP"),
                          (r"[Gg]etting a diff from the leader", "DIFF"),
                          (r"[Gg]etting updates from leader", "DIFF")]:
        if re.search(pattern, text) and name not in found:
            found.append(name)
    return "+".join(found) or "?"


def snap_catchup(ens, loadgen, args, raw_dir):
    """Stop a follower, create the znodes through the others, restart it: time until it
    follows and its znode count matches the leader's."""
    kind = ens.kind
    leader = ens.leader()
    follower = next(m for m in ens.members if m is not leader)
    follower.stop()
    log_path = os.path.join(raw_dir, "%s-snap-znodes.txt" % kind)
    cmd = loadgen_cmd(loadgen, ens.hosts_without(follower),
                      ["--mix", "get=100", "-c", "1", "--outstanding", "1",
                       "--duration", "1s", "--warmup", "0s"])
    cmd[cmd.index("--keys") + 1] = str(args.snap_znodes)
    t0 = time.monotonic()
    rc = run_loadgen(cmd, 1800, log_path)
    wall = time.monotonic() - t0
    with open(log_path) as f:
        text = f.read()
    m = re.search(r"setup: (\d+) nodes created, (\d+) already there.* in ([0-9.]+)s", text)
    created, setup_s = (int(m.group(1)), float(m.group(3))) if m else (None, wall)
    want = int(mntr(leader.port).get("zk_znode_count", "0") or 0)
    log_size = os.path.getsize(os.path.join(follower.dir, "server.out"))
    t_start = follower.launch()
    follow_s, match_s, count = None, None, None
    while time.monotonic() - t_start < 600:
        if follower.proc.poll() is not None:
            raise RuntimeError("%s exited during catch-up" % follower.name)
        if follow_s is None and follower.mode() == "follower":
            follow_s = time.monotonic() - t_start
        if follow_s is not None:
            count = int(mntr(follower.port).get("zk_znode_count", "0") or 0)
            if count == want:
                match_s = time.monotonic() - t_start
                break
        time.sleep(0.02)
    return {"rc": rc, "follower": follower.name, "created": created, "setup_s": setup_s,
            "create_rate": created / setup_s if created and setup_s else None,
            "leader_znode_count": want, "follower_znode_count": count,
            "start_to_follower_s": follow_s, "start_to_count_match_s": match_s,
            "sync": sync_kind(follower, log_size),
            "follower_rss_kb": proc_status_kb(follower.pid, "VmRSS")}


def bench_ensemble(ens, loadgen, args, raw_dir):
    res = {"workloads": {}}
    log("%s: starting an ensemble of %d (client ports %s)"
        % (ens.kind, len(ens.members), ens.hosts))
    res["first_start_s"] = ens.start()
    res["first_leader"] = ens.leader().name
    log("%s: warm-up %ds (creates %d keys)" % (ens.kind, args.jit_warmup, KEYS))
    rc = run_loadgen(loadgen_cmd(loadgen, ens.hosts,
                                 ["--mix", "get=50,set=50", "-c", "8", "--outstanding", "32",
                                  "--duration", "%ds" % args.jit_warmup, "--warmup", "0s"]),
                     args.jit_warmup + 120, os.path.join(raw_dir, "%s-warmup.txt" % ens.kind))
    if rc not in (0, 1):
        raise RuntimeError("%s warm-up failed (loadgen exit %d)" % (ens.kind, rc))
    for name, title, flags in ENSEMBLE_WORKLOADS:
        log("%s: %s" % (ens.kind, title))
        res["workloads"][name] = w = measure_workload(ens, loadgen, name, flags, args.duration,
                                                      args.warmup, raw_dir)
        log("%s:   %.0f ops/s, p99 %.3f ms, servers %.2f cores, %.1f us/op"
            % (ens.kind, w.get("throughput", 0), w.get("latency_ms", {}).get("p99", -1),
               w["server_cores"], w.get("cpu_us_per_op") or -1))
    log("%s: failover: %d writes/s, kill -9 of the leader after %ds"
        % (ens.kind, args.failover_rate, args.failover_before))
    res["failover"] = failover(ens, loadgen, args, raw_dir)
    log("%s:   %s" % (ens.kind, res["failover"]))
    log("%s: follower catch-up of %d znodes" % (ens.kind, args.snap_znodes))
    res["snap"] = snap_catchup(ens, loadgen, args, raw_dir)
    log("%s:   %s" % (ens.kind, res["snap"]))
    # The same failover again, now that the ensemble holds the catch-up's znodes: what a
    # leader's death costs with a database of that size (every survivor's state is larger).
    log("%s: failover with %d znodes" % (ens.kind, args.snap_znodes))
    ens.wait_serving(len(ens.members), time.monotonic(), 120)
    res["failover_large"] = failover(ens, loadgen, args, raw_dir, tag="-large")
    log("%s:   %s" % (ens.kind, res["failover_large"]))
    ens.stop()
    return res


def build_ensemble_report(args, info, fsync, res, load_before, load_after, started, elapsed):
    j, z = res["java"], res["zkrs"]
    n = args.ensemble
    L = []
    mode = "quick" if args.quick else "full"
    L.append("# zkrs vs Apache ZooKeeper 3.8, ensembles of %d: %s run, %s" % (n, mode, started))
    L.append("")
    L.append("Produced by `perf/compare.sh --ensemble %d%s` in %.0f s. One ensemble at a "
             "time, all %d servers on this machine (loopback, distinct ports, data dirs "
             "under one temporary dir on the same disk), the same zoo.cfg for both "
             "(tickTime=2000, initLimit=10, syncLimit=5, forceSync default = yes, "
             "maxClientCnxns=0, 4lw whitelist *, `server.N=127.0.0.1:quorum:election`). "
             "Loadgen sessions spread over all %d servers (session i -> server i mod %d); "
             "closed loop, %d keys, %d B values, %d s measured after %d s warm-up per "
             "workload (plus a %d s unmeasured warm-up per ensemble). Java: `-Xmx%s` each."
             % (n, " --quick" if args.quick else "", elapsed, n, n, n, KEYS, VALUE,
                args.duration, args.warmup, args.jit_warmup, args.java_heap))
    L.append("")
    L.append("## Machine")
    L.append("")
    for key, label in [("host", "host"), ("cpu", "CPU"), ("cores", "cores"),
                       ("memory", "memory"), ("kernel", "kernel"), ("disk", "data disk"),
                       ("rustc", "rustc"), ("java", "java"),
                       ("zookeeper_pkg", "zookeeper package"), ("zkrs_commit", "zkrs commit")]:
        L.append("- %s: %s" % (label, info.get(key, "?")))
    L.append("- load average before: %s; after: %s" % (load_before, load_after))
    L.append("- fdatasync of 4 KiB on a preallocated file in the data dir "
             "(`perf/fsync_probe.py`): p50 %.0f us, p99 %.0f us, p99.9 %.0f us (n=%d)"
             % (fsync["p50_us"], fsync["p99_us"], fsync["p99_9_us"], fsync["samples"]))
    L.append("")
    L.append("## Workloads")
    L.append("")
    L.append("Ratios are \"how much better zkrs is\" (> 1 = zkrs better). Server CPU is "
             "utime+stime from `/proc/<pid>/stat` of all %d servers, summed." % n)
    L.append("")
    L.append("| workload | metric | Java ZK 3.8 | zkrs | ratio |")
    L.append("|---|---|---:|---:|---:|")

    def row(wl, metric, jv, zv, r, digits=0):
        L.append("| %s | %s | %s | %s | %s |" % (wl, metric, fmt_num(jv, digits),
                                              fmt_num(zv, digits), fmt_ratio(r)))

    def cores_list(w):
        return " + ".join("%.2f" % c for c in w.get("per_server_cores", []))

    for name, title, _ in ENSEMBLE_WORKLOADS:
        jw, zw = j["workloads"][name], z["workloads"][name]
        label = "**%s**: %s" % (name, title)
        if "error" in jw or "error" in zw:
            L.append("| %s | error | %s | %s | |" % (label, jw.get("error", ""),
                                                     zw.get("error", "")))
            continue
        row(label, "throughput (ops/s)", jw["throughput"], zw["throughput"],
            ratio(zw["throughput"], jw["throughput"]))
        for key, metric in [("p50", "p50 latency (ms)"), ("p99", "p99 latency (ms)"),
                            ("p99_9", "p99.9 latency (ms)")]:
            row("", metric, jw["latency_ms"][key], zw["latency_ms"][key],
                ratio(jw["latency_ms"][key], zw["latency_ms"][key]), 3)
        row("", "server CPU per op, %d servers (us)" % n, jw["cpu_us_per_op"],
            zw["cpu_us_per_op"], ratio(jw["cpu_us_per_op"], zw["cpu_us_per_op"]), 1)
        L.append("| | server CPU (cores busy; s1 + s2 + ...) | %.2f (%s) | %.2f (%s) | |"
                 % (jw["server_cores"], cores_list(jw), zw["server_cores"], cores_list(zw)))
        row("", "peak RSS, %d servers (MiB)" % n, mib(jw["peak_rss_kb"]),
            mib(zw["peak_rss_kb"]), ratio(jw["peak_rss_kb"], zw["peak_rss_kb"]), 1)
        L.append("| | loadgen / other CPU (cores) | %.2f / %.2f | %.2f / %.2f | |"
                 % (jw["loadgen_cores"], jw["other_cores"], zw["loadgen_cores"],
                    zw["other_cores"]))
        if jw.get("errors") or zw.get("errors"):
            L.append("| | errors | %s | %s | |" % (jw.get("errors"), zw.get("errors")))
    L.append("| | first leader | %s | %s | |" % (j.get("first_leader"), z.get("first_leader")))
    L.append("")

    jf, zf = j["failover"], z["failover"]
    L.append("## Leader failover")
    L.append("")
    L.append("Open loop, %d writes/s (set=100) over 8 sessions spread over the servers, "
             "`--reconnect` (a broken or silent session opens a new one on the next server); "
             "after %d s the leader (srvr `Mode: leader`) gets `kill -9`. Unavailability is "
             "the longest gap between two acknowledged writes around the kill, from the "
             "loadgen's timeline (completion times)."
             % (args.failover_rate, args.failover_before))
    L.append("")
    L.append("| metric | Java ZK 3.8 | zkrs |")
    L.append("|---|---:|---:|")

    def frow(metric, key, scale=1.0, digits=0, sides=(jf, zf)):
        def v(side):
            x = side.get(key)
            if x is None:
                return "n/a"
            if isinstance(x, (int, float)):
                return fmt_num(x * scale, digits)
            return str(x)
        L.append("| %s | %s | %s |" % (metric, v(sides[0]), v(sides[1])))

    frow("**writes unavailable** (gap between acks, ms)", "gap_s", 1000)
    frow("kill -> first acknowledged write (ms)", "kill_to_first_ack_s", 1000)
    frow("gap starts, ms after the kill (< 0: before it)", "gap_start_after_kill_s", 1000, 1)
    frow("longest gap in the second before the kill (ms)", "baseline_gap_s", 1000, 1)
    frow("kill -> a survivor's srvr says leader (ms)", "new_leader_srvr_s", 1000)
    frow("killed leader", "killed")
    frow("new leader", "new_leader")
    frow("writes acknowledged", "writes_ok")
    frow("reconnects (sessions replaced)", "reconnects")
    frow("slowest reconnect (ms)", "reconnect_ms_max", 1, 0)
    frow("max write latency from intended send (ms)", "max_latency_ms", 1, 0)
    L.append("| errors | %s | %s |" % (
        ", ".join("%s %d" % kv for kv in sorted(jf.get("errors", {}).items())) or "0",
        ", ".join("%s %d" % kv for kv in sorted(zf.get("errors", {}).items())) or "0"))
    L.append("")
    jl, zl = j.get("failover_large"), z.get("failover_large")
    if jl and zl:
        L.append("The same failover once more at the end of the run, when the ensemble holds "
                 "the catch-up's %s znodes (below):" % fmt_num(args.snap_znodes))
        L.append("")
        L.append("| metric | Java ZK 3.8 | zkrs |")
        L.append("|---|---:|---:|")
        large = (jl, zl)
        frow("**writes unavailable** (gap between acks, ms)", "gap_s", 1000, sides=large)
        frow("kill -> a survivor's srvr says leader (ms)", "new_leader_srvr_s", 1000, sides=large)
        frow("longest gap in the second before the kill (ms)", "baseline_gap_s", 1000, 1,
             sides=large)
        frow("writes acknowledged", "writes_ok", sides=large)
        L.append("")

    js, zs = j["snap"], z["snap"]
    L.append("## Follower catch-up")
    L.append("")
    L.append("A follower is stopped (SIGTERM); %s znodes (~30 B paths, 100 B values) are "
             "created through the other servers (one session, pipelined); the follower is "
             "started again and timed until its srvr says `Mode: follower` and its mntr "
             "`zk_znode_count` equals the leader's." % fmt_num(args.snap_znodes))
    L.append("")
    L.append("| metric | Java ZK 3.8 | zkrs | ratio |")
    L.append("|---|---:|---:|---:|")

    def srow(metric, jv, zv, r, digits=0):
        L.append("| %s | %s | %s | %s |" % (metric, fmt_num(jv, digits), fmt_num(zv, digits),
                                           fmt_ratio(r)))

    srow("znodes created while it was down", js["created"], zs["created"], None)
    srow("create rate, %d of %d up (znodes/s)" % (n - 1, n), js["create_rate"],
         zs["create_rate"], ratio(zs["create_rate"], js["create_rate"]))
    srow("start -> Mode: follower (s)", js["start_to_follower_s"], zs["start_to_follower_s"],
         ratio(js["start_to_follower_s"], zs["start_to_follower_s"]), 2)
    srow("**start -> znode count matches** (s)", js["start_to_count_match_s"],
         zs["start_to_count_match_s"],
         ratio(js["start_to_count_match_s"], zs["start_to_count_match_s"]), 2)
    srow("zk_znode_count of the leader", js["leader_znode_count"], zs["leader_znode_count"],
         None)
    srow("zk_znode_count of the follower", js["follower_znode_count"],
         zs["follower_znode_count"], None)
    L.append("| sync (from the follower's log) | %s | %s | |" % (js["sync"], zs["sync"]))
    srow("follower RSS after (MiB)", mib(js["follower_rss_kb"]), mib(zs["follower_rss_kb"]),
         ratio(js["follower_rss_kb"], zs["follower_rss_kb"]), 1)
    L.append("")

    goals = []

    def goal(text, measured_text, ok, gap_text):
        goals.append((text, measured_text, "PASS" if ok else "MISS", gap_text))

    def wl(side, name):
        return side["workloads"][name]

    for name, need in [("write", 3), ("read", 5)]:
        r = ratio(wl(z, name).get("throughput"), wl(j, name).get("throughput"))
        goal("%s throughput >= %dx" % (name, need), fmt_ratio(r), r is not None and r >= need,
             "" if r is None or r >= need else "needs %.1fx more" % (need / r))
    for name, _, _ in ENSEMBLE_WORKLOADS:
        r = ratio(wl(j, name).get("latency_ms", {}).get("p99"),
                  wl(z, name).get("latency_ms", {}).get("p99"))
        goal("%s p99 <= 1/2" % name, fmt_ratio(r), r is not None and r >= 2,
             "" if r is None or r >= 2 else "needs %.1fx lower" % (2 / r))
    for name, _, _ in ENSEMBLE_WORKLOADS:
        r = ratio(wl(j, name).get("cpu_us_per_op"), wl(z, name).get("cpu_us_per_op"))
        goal("%s server CPU per op (%d servers) <= 1/4" % (name, n), fmt_ratio(r),
             r is not None and r >= 4,
             "" if r is None or r >= 4 else "needs %.1fx less" % (4 / r))
    def failover_goal(text, java_side, zkrs_side):
        g, jg = zkrs_side.get("gap_s"), java_side.get("gap_s")
        goal(text, "zkrs %s ms, Java %s ms" % (fmt_num(g * 1000 if g is not None else None),
                                               fmt_num(jg * 1000 if jg is not None else None)),
             g is not None and g <= 1.0,
             "" if g is None or g <= 1.0 else "%.0f ms over" % ((g - 1.0) * 1000))

    failover_goal("leader failover: writes unavailable <= 1 s", jf, zf)
    if z.get("failover_large"):
        failover_goal("leader failover with %s znodes: writes unavailable <= 1 s"
                      % fmt_num(args.snap_znodes), j.get("failover_large") or {},
                      z["failover_large"])
    L.append("## Goals")
    L.append("")
    L.append("| goal | measured (ratio vs Java) | verdict | gap |")
    L.append("|---|---|---|---|")
    for gl in goals:
        L.append("| %s | %s | **%s** | %s |" % gl)
    L.append("")
    L.append("Raw loadgen output, JSON and failover timelines: `%s/`." %
             os.path.basename(args.raw_dir))
    L.append("")
    return "\n".join(L), goals


def main():
    parser = argparse.ArgumentParser(description="zkrs vs Apache ZooKeeper 3.8, side by side")
    parser.add_argument("--quick", action="store_true", help="1-2 minute version")
    parser.add_argument("--no-fixed-rate", action="store_true",
                        help="skip the fixed-rate runs at 1/10/50/90%% of Java's saturation")
    parser.add_argument("--no-noisy", action="store_true",
                        help="skip the fixed-rate run beside one busy-looping process per CPU")
    parser.add_argument("--zkrs", required=True, help="zkrs release binary")
    parser.add_argument("--loadgen", required=True, help="zkrs-loadgen release binary")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"),
                        help="parent of the temporary data dir (choose the disk to test)")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--java-heap", default=os.environ.get("JAVA_ZK_HEAP", "2g"))
    parser.add_argument("--only", choices=["java", "zkrs"], help=argparse.SUPPRESS)
    parser.add_argument("--ensemble", type=int, choices=[3, 5], metavar="N",
                        help="ensemble mode: N zkrs servers vs N Java servers on this machine "
                        "(reads, writes, 90/10, leader failover, follower catch-up) instead "
                        "of the standalone comparison")
    parser.add_argument("--failover-rate", type=int, default=2000,
                        help="ensemble mode: writes/s offered during the failover (default "
                        "2000)")
    parser.add_argument("--snap-znodes", type=int,
                        help="ensemble mode: znodes a stopped follower must catch up on "
                        "(default 1000000, --quick 100000)")
    parser.add_argument("--zkrs-metrics", action="store_true",
                        help="standalone mode: run zkrs with the Prometheus metrics provider "
                        "and scrape /metrics every --scrape-interval seconds during the runs")
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    args = parser.parse_args()
    args.fixed_rate_base = None
    if args.zkrs_metrics and args.ensemble:
        parser.error("--zkrs-metrics is for the standalone comparison")
    if args.quick:
        args.duration, args.warmup, args.jit_warmup, args.znodes = 3, 1, 2, 100_000
        args.idle = 5
        args.failover_before, args.failover_after = 3, 10
    else:
        args.duration, args.warmup, args.jit_warmup, args.znodes = 10, 2, 5, 1_000_000
        args.idle = 20
        args.failover_before, args.failover_after = 5, 15
    if args.snap_znodes is None:
        args.snap_znodes = args.znodes
    if args.snap_znodes < KEYS or args.snap_znodes > 10_000_000:
        parser.error("--snap-znodes must be from %d to 10000000" % KEYS)

    args.zkrs, args.loadgen = os.path.abspath(args.zkrs), os.path.abspath(args.loadgen)
    for path in ["/usr/share/java/zookeeper.jar", args.zkrs, args.loadgen]:
        if not os.path.exists(path):
            sys.exit("missing %s" % path)
    started = datetime.datetime.now()
    t_start = time.monotonic()
    host = socket.gethostname().split(".")[0]
    stem = "%s-%s%s%s%s" % (started.strftime("%Y-%m-%d"), host,
                            "-ensemble%d" % args.ensemble if args.ensemble else "",
                            "-metrics" if args.zkrs_metrics else "",
                            "-quick" if args.quick else "")
    os.makedirs(args.out, exist_ok=True)
    args.raw_dir = os.path.join(args.out, stem)
    shutil.rmtree(args.raw_dir, ignore_errors=True)
    os.makedirs(args.raw_dir)
    tmp_root = tempfile.mkdtemp(prefix="zkrs-compare.", dir=args.tmp)
    load_before = open("/proc/loadavg").read().split()[:3]
    info = machine_info(tmp_root)
    log("data under %s; load average %s" % (tmp_root, " ".join(load_before)))

    fsync_json = os.path.join(args.raw_dir, "fsync_probe.json")
    subprocess.run([sys.executable, os.path.join(HERE, "fsync_probe.py"), tmp_root,
                    "--seconds", "3" if args.quick else "5", "--json", fsync_json],
                   check=True, timeout=120)
    with open(fsync_json) as f:
        fsync = json.load(f)

    res = {}
    servers = []
    try:
        for kind, port in [("java", 23181), ("zkrs", 24181)]:
            if args.only and kind != args.only:
                continue
            if args.ensemble:
                server = Ensemble(kind, tmp_root, port - 181 + 200, args.ensemble, args.zkrs,
                                  args.java_heap)
                servers.append(server)
                res[kind] = bench_ensemble(server, args.loadgen, args, args.raw_dir)
            else:
                extra = []
                if kind == "zkrs" and args.zkrs_metrics:
                    args.metrics_port = free_port(27000)
                    extra = ["metricsProvider.className=%s" % PROMETHEUS_PROVIDER,
                             "metricsProvider.httpHost=127.0.0.1",
                             "metricsProvider.httpPort=%d" % args.metrics_port]
                server = Server(kind, tmp_root, free_port(port), args.zkrs, args.java_heap,
                                extra_cfg=extra)
                servers.append(server)
                res[kind] = bench_server(server, args.loadgen, args, args.raw_dir)
                if kind == "java":
                    # zkrs's fixed-rate runs use Java's saturation throughputs, as Java's did.
                    args.fixed_rate_base = {
                        name: res[kind]["workloads"][name].get("throughput")
                        for name, _ in FIXED_RATE_MIXES}
            with open(os.path.join(args.raw_dir, "%s-summary.json" % kind), "w") as f:
                json.dump(res[kind], f, indent=2)
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            for member in getattr(server, "members", [server]):
                out = os.path.join(member.dir, "server.out")
                if os.path.exists(out):
                    with open(out, "rb") as src, open(os.path.join(
                            args.raw_dir, "%s-server-log-tail.txt"
                            % member.name.replace("/", "-")), "wb") as dst:
                        src.seek(max(0, os.path.getsize(out) - 20000))
                        dst.write(src.read())
        if args.keep_tmp:
            log("kept %s" % tmp_root)
        else:
            shutil.rmtree(tmp_root, ignore_errors=True)
    if args.only:
        return 0
    load_after = open("/proc/loadavg").read().split()[:3]
    elapsed = time.monotonic() - t_start
    report = build_ensemble_report if args.ensemble else build_report
    text, goals = report(args, info, fsync, res, " ".join(load_before),
                         " ".join(load_after), started.strftime("%Y-%m-%d %H:%M"), elapsed)
    md = os.path.join(args.out, stem + ".md")
    with open(md, "w") as f:
        f.write(text)
    print(text)
    log("wrote %s" % md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
