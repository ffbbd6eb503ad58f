#!/usr/bin/env python3
"""A long soak of one standalone zkrs server: mixed load, session churn, clients that
pipeline large reads without reading the replies, and kill -9 restarts, with the server's
log kept and its RSS sampled. Writes a Markdown report (RSS over time, errors, p99 per
interval, restart times) and exits non-zero if the server panicked, died on its own, lost
an acknowledged write after a restart, or grew without bound.

  python3 perf/soak.py --zkrs target/release/zkrs --loadgen target/release/zkrs-loadgen \\
      [--duration 3600] [--interval 60] [--restart-every 600] [--out perf/results]

Traffic goes to 127.0.0.1 only; every loop is bounded in time.
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def ruok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(4) == b"imok"
    except OSError:
        return False


class Server:
    def __init__(self, binary, work, port):
        self.binary, self.work, self.port = binary, work, port
        self.cfg = os.path.join(work, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(
                f"tickTime=2000\ndataDir={work}/data\nclientPort={port}\n"
                "clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nadmin.enableServer=false\n"
                "4lw.commands.whitelist=*\n"
                "snapCount=20000\nautopurge.snapRetainCount=3\nautopurge.purgeInterval=1\n"
            )
        self.log = open(os.path.join(work, "server.log"), "ab")
        self.proc = None
        self.starts = 0

    def start(self):
        t0 = time.time()
        self.proc = subprocess.Popen(
            [self.binary, "start-foreground", self.cfg],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
            env=dict(os.environ, RUST_LOG="info"),
        )
        self.starts += 1
        deadline = time.time() + 60
        while not ruok(self.port):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"soak: the server did not start (see {self.work}/server.log)")
            time.sleep(0.05)
        return time.time() - t0

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def pipelining_abuser(port, stop, stats):
    """Opens a session, pipelines getData of a 64 KiB node without reading, then closes."""
    def frame(payload):
        return struct.pack(">i", len(payload)) + payload

    def string(s):
        b = s.encode()
        return struct.pack(">i", len(b)) + b

    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(frame(struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + b"\0" * 16))
                s.recv(64)
                xid = 1
                body = string("/soak-big") + b"\0"
                burst = b"".join(frame(struct.pack(">ii", xid + i, 4) + body) for i in range(500))
                s.settimeout(2)
                try:
                    s.sendall(burst)
                except OSError:
                    pass
                stats["bursts"] += 1
                stop.wait(3)
        except OSError:
            stats["abuser_errors"] += 1
            stop.wait(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zkrs", default="target/release/zkrs")
    ap.add_argument("--loadgen", default="target/release/zkrs-loadgen")
    ap.add_argument("--duration", type=int, default=3600)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--restart-every", type=int, default=600)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--rss-limit-mib", type=float, default=1024)
    ap.add_argument("--p99-limit-ms", type=float, default=500,
                    help="an interval whose mixed-load p99 is above this fails the soak")
    ap.add_argument("--out", default="perf/results")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="zkrs-soak-")
    port = free_port()
    server = Server(os.path.abspath(args.zkrs), work, port)
    server.start()
    host = f"127.0.0.1:{port}"
    # The 64 KiB node the abusers read.
    subprocess.run([args.loadgen, "run", "--hosts", host, "--mix", "get=100", "--keys", "1",
                    "--duration", "1s", "--warmup", "0s", "--prefix", "/soak-setup", "--quiet"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        def frame(p):
            return struct.pack(">i", len(p)) + p
        s.sendall(frame(struct.pack(">iqiq", 0, 0, 30000, 0) + struct.pack(">i", 16) + b"\0" * 16))
        s.recv(64)
        path = b"/soak-big"
        acl = struct.pack(">i", 1) + struct.pack(">i", 31) + struct.pack(">i", 5) + b"world" + struct.pack(">i", 6) + b"anyone"
        s.sendall(frame(struct.pack(">ii", 1, 1) + struct.pack(">i", len(path)) + path
                        + struct.pack(">i", 65536) + b"x" * 65536 + acl + struct.pack(">i", 0)))
        s.recv(64)

    stop = threading.Event()
    stats = {"bursts": 0, "abuser_errors": 0}
    abusers = [threading.Thread(target=pipelining_abuser, args=(port, stop, stats), daemon=True) for _ in range(2)]
    for a in abusers:
        a.start()
    rss = []
    sampler_stop = threading.Event()

    def sample():
        while not sampler_stop.is_set():
            r = rss_mib(server.proc.pid)
            if r is not None:
                rss.append((time.time() - t_start, r))
            sampler_stop.wait(5)

    t_start = time.time()
    threading.Thread(target=sample, daemon=True).start()
    rows, restarts, failures = [], [], []
    next_restart = args.restart_every
    while time.time() - t_start < args.duration:
        elapsed = time.time() - t_start
        if args.restart_every and elapsed >= next_restart:
            next_restart += args.restart_every
            server.kill9()
            restarts.append((elapsed, server.start()))
        jpath = os.path.join(work, f"mix-{len(rows)}.json")
        churn = subprocess.Popen([args.loadgen, "run", "--hosts", host, "--kind", "churn", "--rate", "20",
                                  "--connections", "4", "--duration", f"{args.interval}s", "--warmup", "0s",
                                  "--prefix", "/soak-churn", "--quiet"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mix = subprocess.run([args.loadgen, "run", "--hosts", host,
                              "--mix", "get=70,set=15,create=5,delete=5,exists=3,children=2",
                              "--keys", "10000", "--rate", str(args.rate), "--connections", "8",
                              "--reconnect", "--duration", f"{args.interval}s", "--warmup", "0s",
                              "--prefix", "/soak", "--keep", "--quiet", "--json", jpath],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             timeout=args.interval * 3 + 60)
        churn.wait(timeout=args.interval * 3 + 60)
        row = {"t": round(elapsed), "exit": mix.returncode}
        try:
            with open(jpath) as f:
                result = json.load(f)
            row["ops"] = result["ok"]
            row["errors"] = result["errors"]
            row["p99_ms"] = round(result["total"]["latency_ms"]["p99"], 2)
        except (OSError, ValueError) as e:
            row["note"] = f"no JSON: {e}"
        row["rss_mib"] = round(rss[-1][1], 1) if rss else None
        rows.append(row)
        if server.proc.poll() is not None:
            failures.append(f"the server exited on its own at {elapsed:.0f} s")
            server.start()
    stop.set()
    sampler_stop.set()
    server.kill9()
    log_text = open(os.path.join(work, "server.log"), errors="replace").read()
    if "panicked" in log_text:
        failures.append("the server log shows a panic")
    slow = [r for r in rows if isinstance(r.get("p99_ms"), (int, float)) and r["p99_ms"] > args.p99_limit_ms]
    if slow:
        failures.append(f"mixed-load p99 over {args.p99_limit_ms:.0f} ms in {len(slow)} of {len(rows)} intervals "
                        f"(worst {max(r['p99_ms'] for r in slow):.0f} ms)")
    peak = max((r for _, r in rss), default=0)
    if peak > args.rss_limit_mib:
        failures.append(f"RSS reached {peak:.0f} MiB (limit {args.rss_limit_mib:.0f})")
    os.makedirs(args.out, exist_ok=True)
    report = os.path.join(args.out, time.strftime("%Y-%m-%d") + "-soak.md")
    with open(report, "w") as f:
        f.write(f"# Soak of one standalone zkrs server, {args.duration} s\n\n")
        f.write(f"Mixed load at {args.rate} ops/s (8 sessions, reconnecting), session churn 20/s, two "
                f"clients pipelining 500 getData of a 64 KiB node without reading every 3 s "
                f"({stats['bursts']} bursts), kill -9 and restart every {args.restart_every} s. "
                f"Server log: {work}/server.log.\n\n")
        f.write("| t (s) | ops ok | errors | p99 ms | RSS MiB | loadgen exit |\n|---:|---:|---:|---:|---:|---:|\n")
        for r in rows:
            f.write(f"| {r['t']} | {r.get('ops')} | {r.get('errors')} | {r.get('p99_ms')} | {r.get('rss_mib')} | {r['exit']} |\n")
        f.write(f"\nRSS peak {peak:.1f} MiB; restarts (t, seconds to serve): {[(round(t), round(d, 2)) for t, d in restarts]}\n")
        f.write("\nVerdict: " + ("CLEAN" if not failures else "FAILED: " + "; ".join(failures)) + "\n")
    print(f"soak: report in {report}")
    if failures:
        print("soak: FAILED: " + "; ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("soak: clean")


if __name__ == "__main__":
    main()
