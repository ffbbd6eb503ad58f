#!/usr/bin/env python3
"""The disk's own durable-write latency: 4 KiB pwrite + fdatasync on a preallocated file.

This is the floor under any fsync-on-commit server's single synchronous writer: a txn log
append is (at least) one small write plus one fdatasync. The file is preallocated and
synced first, so each fdatasync only has data blocks to flush (no size/extent metadata),
which is what a log with preallocated segments (ZooKeeper's preAllocSize, zkrs's segments)
does.

    fsync_probe.py DIR [--seconds S] [--max-samples N] [--json OUT]

Writes a temporary file in DIR (removed afterwards) and prints/writes p50, p90, p99,
p99.9, max and mean in microseconds.
"""

import argparse
import json
import os
import sys
import time

BLOCK = 4096
FILE_LEN = 64 * 1024 * 1024


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("dir")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--max-samples", type=int, default=20000)
    parser.add_argument("--json")
    args = parser.parse_args()

    path = os.path.join(args.dir, ".fsync-probe.%d" % os.getpid())
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        # Preallocate with real zeros (not a hole), then make size and blocks durable.
        zeros = bytes(1024 * 1024)
        for offset in range(0, FILE_LEN, len(zeros)):
            os.pwrite(fd, zeros, offset)
        os.fsync(fd)
        block = b"\xa5" * BLOCK
        samples = []
        offset = 0
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and len(samples) < args.max_samples:
            start = time.perf_counter_ns()
            os.pwrite(fd, block, offset)
            os.fdatasync(fd)
            samples.append((time.perf_counter_ns() - start) / 1000.0)
            offset = (offset + BLOCK) % FILE_LEN
    finally:
        os.close(fd)
        os.unlink(path)

    samples.sort()
    result = {
        "samples": len(samples),
        "block_bytes": BLOCK,
        "p50_us": percentile(samples, 0.50),
        "p90_us": percentile(samples, 0.90),
        "p99_us": percentile(samples, 0.99),
        "p99_9_us": percentile(samples, 0.999),
        "max_us": samples[-1] if samples else float("nan"),
        "mean_us": sum(samples) / len(samples) if samples else float("nan"),
    }
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    print(
        "fdatasync 4 KiB: n=%(samples)d p50=%(p50_us).0fus p99=%(p99_us).0fus "
        "p99.9=%(p99_9_us).0fus max=%(max_us).0fus" % result
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
