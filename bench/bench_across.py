#!/usr/bin/env python3
"""``kubectl aicr diff --across-nodes`` on a 1,000-node SnapshotList, against issue #16's goal (<= 10 s, <= 1 GB).

The fleet is the one bench/bench_check.py builds from ``tests/fixtures/snapshots/fleet-20.yaml`` (1,000 nodes by
default, per-node identities, a few nodes drifted), each node padded with the same extra sysctl readings up to
``--node-kb`` (default 67: the size of an agent's snapshot of a fake 8x H100 node), written as YAML and as JSON.
Each format is compared through the
CLI entry point (``python -m kubectl_aicr diff --across-nodes FILE -o json``): wall clock, CPU and peak memory of
the child (``os.wait4``), best of ``--repeat``, printed with the goal and the ratio.

Usage: ``python bench/bench_across.py [--nodes 1000] [--repeat 3] [--keep DIR]``. Exits 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_check import make_fleet  # noqa: E402

from kubectl_aicr import snapshot_io  # noqa: E402

GOAL_S = 10.0
GOAL_MB = 1024.0


def pad(fleet: dict[str, Any], node_kb: float) -> None:
    """Add the same synthetic sysctl readings to every node until one node's JSON is about ``node_kb`` KB."""
    first = fleet["items"][0]
    missing = int(node_kb * 1000) - len(json.dumps(first))
    extra = {f"/proc/sys/net/ipv4/conf/pad{i // 40}/key{i % 40}": str(i) for i in range(max(missing, 0) // 48)}
    for node in fleet["items"]:
        for m in node["measurements"]:
            if m["type"] == "OS":
                for sub in m["subtypes"]:
                    if sub["subtype"] == "sysctl":
                        sub["data"].update(extra)


def run_once(path: str) -> tuple[float, float, float, int]:
    """(wall s, CPU s, peak RSS MB, exit code) of one CLI run, measured by GNU time: the CLI's own figures (the
    rusage this process could read would count this process's memory, which the child starts as a copy of)."""
    fmt = "%e %U %S %M %x"
    cmd = [
        "/usr/bin/time",
        "-f",
        fmt,
        sys.executable,
        "-m",
        "kubectl_aicr",
        "diff",
        "--across-nodes",
        path,
        "-o",
        "json",
    ]
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=900)
    last = r.stderr.strip().splitlines()[-1].split()
    if r.returncode not in (0, 1):
        print("    " + "\n    ".join(r.stderr.strip().splitlines()[-4:-1]))
    wall, user, system, kb, code = float(last[0]), float(last[1]), float(last[2]), int(last[3]), int(last[4])
    return wall, user + system, kb / 1024, code


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--node-kb", type=float, default=67.0, help="pad each node's snapshot to about this size")
    ap.add_argument("--keep", metavar="DIR", help="write the fleets here and keep them")
    a = ap.parse_args()
    out_dir = a.keep or tempfile.mkdtemp(prefix="bench-across-")
    os.makedirs(out_dir, exist_ok=True)
    fleet = make_fleet(a.nodes)
    pad(fleet, a.node_kb)
    missed = False
    node_kb = len(json.dumps(fleet["items"][0])) / 1000
    print(f"fleet: {a.nodes:,} nodes of {node_kb:.0f} KB; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    for fmt in ("json", "yaml"):
        path = os.path.join(out_dir, f"fleet.{fmt}")
        snapshot_io.write_file_atomic(path, snapshot_io.dumps(fleet, fmt))
        runs = [run_once(path) for _ in range(a.repeat)]
        wall, cpu, rss, code = min(runs)
        size = os.path.getsize(path) / 1e6
        print(
            f"  {fmt:<4} {size:6.1f} MB: wall {wall:5.2f} s (goal {GOAL_S:g} s, ratio {wall / GOAL_S:.2f}), "
            f"CPU {cpu:5.2f} s, peak {rss:6.0f} MB (goal {GOAL_MB:g} MB, ratio {rss / GOAL_MB:.2f}), exit {code}"
        )
        missed |= wall > GOAL_S or rss > GOAL_MB or code not in (0, 1)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
