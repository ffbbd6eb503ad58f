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
]
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


# ------------------------------------------------------------------ servers

class Server:
    def __init__(self, kind, root, port, zkrs_bin, java_heap):
        self.kind = kind
        self.dir = os.path.join(root, kind)
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
        ]
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write("\n".join(cfg) + "\n")

    @property
    def title(self):
        return "Java ZK 3.8" if self.kind == "java" else "zkrs"

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=120.0):
        """Starts the server; returns seconds from exec to ready()."""
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
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s/server.out"
                                   % (self.kind, self.proc.returncode, self.dir))
            if ready(self.port):
                return time.monotonic() - t0
            time.sleep(0.02)
        raise RuntimeError("%s did not become ready in %.0fs" % (self.kind, timeout))

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

def loadgen_cmd(loadgen, port, extra, json_path=None):
    cmd = [loadgen, "run", "--hosts", "127.0.0.1:%d" % port, "--keys", str(KEYS),
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
    json_path = os.path.join(raw_dir, "%s-%s.json" % (server.kind, name))
    cmd = loadgen_cmd(loadgen, server.port,
                      flags + ["--no-setup", "--duration", "%ds" % duration,
                               "--warmup", "%ds" % warmup], json_path)
    reset_peak_rss(server.pid)
    t0 = time.monotonic()
    out = open(os.path.join(raw_dir, "%s-%s.txt" % (server.kind, name)), "w")
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    # The loadgen connects (milliseconds), warms up for `warmup`, measures for `duration`.
    # Sample inside that: from warmup+0.2s to warmup+duration (still under load).
    start_at, end_at = t0 + warmup + 0.2, t0 + warmup + duration
    time.sleep(max(0.0, start_at - time.monotonic()))
    a = (time.monotonic(), proc_cpu_s(server.pid), proc_cpu_s(p.pid), system_busy_s())
    time.sleep(max(0.0, end_at - time.monotonic()))
    b = (time.monotonic(), proc_cpu_s(server.pid), proc_cpu_s(p.pid), system_busy_s())
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
        "peak_rss_kb": proc_status_kb(server.pid, "VmHWM"),
        "rss_kb": proc_status_kb(server.pid, "VmRSS"),
    }
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


def bench_server(server, loadgen, args, raw_dir):
    res = {"workloads": {}}
    log("%s: starting on port %d" % (server.kind, server.port))
    res["first_start_s"] = server.start()
    # Warm-up (JIT, caches) and key setup; not measured.
    log("%s: warm-up %ds (creates %d keys)" % (server.kind, args.jit_warmup, KEYS))
    rc = run_loadgen(loadgen_cmd(loadgen, server.port,
                                 ["--mix", "get=50,set=50", "-c", "8", "--outstanding", "32",
                                  "--duration", "%ds" % args.jit_warmup, "--warmup", "0s"]),
                     args.jit_warmup + 120, os.path.join(raw_dir, "%s-warmup.txt" % server.kind))
    if rc not in (0, 1):
        raise RuntimeError("%s warm-up failed (loadgen exit %d)" % (server.kind, rc))
    for name, title, flags in WORKLOADS:
        log("%s: %s" % (server.kind, title))
        res["workloads"][name] = measure_workload(server, loadgen, name, flags, args.duration,
                                                  args.warmup, raw_dir)
        w = res["workloads"][name]
        log("%s:   %.0f ops/s, p99 %.3f ms, server %.2f cores, %.1f us/op"
            % (server.kind, w.get("throughput", 0), w.get("latency_ms", {}).get("p99", -1),
               w["server_cores"], w.get("cpu_us_per_op") or -1))
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
    if zs is not None:
        over = zs * 1000 - fsync["p50_us"]
        goal("single sync writer p50 within 50 us of fdatasync p50",
             "zkrs p50 %.0f us, fdatasync p50 %.0f us (+%.0f us)" % (zs * 1000, fsync["p50_us"],
                                                                     over),
             over <= 50, "" if over <= 50 else "%.0f us over" % (over - 50))
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


def main():
    parser = argparse.ArgumentParser(description="zkrs vs Apache ZooKeeper 3.8, side by side")
    parser.add_argument("--quick", action="store_true", help="1-2 minute version")
    parser.add_argument("--zkrs", required=True, help="zkrs release binary")
    parser.add_argument("--loadgen", required=True, help="zkrs-loadgen release binary")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"),
                        help="parent of the temporary data dir (choose the disk to test)")
    parser.add_argument("--keep-tmp", action="store_true")
    parser.add_argument("--java-heap", default=os.environ.get("JAVA_ZK_HEAP", "2g"))
    parser.add_argument("--only", choices=["java", "zkrs"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.jit_warmup, args.znodes = 3, 1, 2, 100_000
    else:
        args.duration, args.warmup, args.jit_warmup, args.znodes = 10, 2, 5, 1_000_000

    for path in ["/usr/share/java/zookeeper.jar", args.zkrs, args.loadgen]:
        if not os.path.exists(path):
            sys.exit("missing %s" % path)
    started = datetime.datetime.now()
    t_start = time.monotonic()
    host = socket.gethostname().split(".")[0]
    stem = "%s-%s%s" % (started.strftime("%Y-%m-%d"), host, "-quick" if args.quick else "")
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
            server = Server(kind, tmp_root, free_port(port), args.zkrs, args.java_heap)
            servers.append(server)
            res[kind] = bench_server(server, args.loadgen, args, args.raw_dir)
            with open(os.path.join(args.raw_dir, "%s-summary.json" % kind), "w") as f:
                json.dump(res[kind], f, indent=2)
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            out = os.path.join(server.dir, "server.out")
            if os.path.exists(out):
                with open(out, "rb") as src, open(os.path.join(
                        args.raw_dir, "%s-server-log-tail.txt" % server.kind), "wb") as dst:
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
    text, goals = build_report(args, info, fsync, res, " ".join(load_before),
                               " ".join(load_after), started.strftime("%Y-%m-%d %H:%M"), elapsed)
    md = os.path.join(args.out, stem + ".md")
    with open(md, "w") as f:
        f.write(text)
    print(text)
    log("wrote %s" % md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
