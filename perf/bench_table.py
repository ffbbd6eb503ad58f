#!/usr/bin/env python3
"""Prints the last criterion results (median per bench) as a Markdown table.

    perf/bench_table.py [CRITERION_DIR]   (default: $CARGO_TARGET_DIR/criterion or target/criterion)
"""
import glob
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
print("| bench | median |")
print("|---|---:|")
for path in sorted(glob.glob(os.path.join(root, "**", "new", "estimates.json"), recursive=True)):
    folder = os.path.dirname(path)
    try:
        with open(os.path.join(folder, "benchmark.json")) as f:
            name = json.load(f)["full_id"]
        with open(path) as f:
            ns = json.load(f)["median"]["point_estimate"]
    except (OSError, ValueError, KeyError):
        continue
    for unit, scale in (("ms", 1e6), ("us", 1e3), ("ns", 1.0)):
        if ns >= scale or unit == "ns":
            print("| `%s` | %.1f %s |" % (name, ns / scale, unit))
            break
