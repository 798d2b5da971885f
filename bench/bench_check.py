#!/usr/bin/env python3
"""Benchmark of ``kubectl aicr check``: a 1,000-node SnapshotList against a 100-rule policy (goal: 5 s).

The fleet is made from the real fixture ``tests/fixtures/snapshots/fleet-20.yaml``: its 20 nodes repeated, each copy
with its own identity (node name, hostname label and sysctl, GPU uuid/serial, provider id) and volatile values
(PIDs, counters), and some drift (every 50th node has a downgraded driver, every 97th another swappiness). The policy
is what ``policy init`` writes for the fixture fleet (26 rules) plus 74 hand-written rules that use every operator
(version ranges, numeric ranges, one-of, regex, present/absent, same-on-every-node over globs, label selection),
and two waivers.

Prints, per stage (CPU time, best of ``--repeat``, with the cycle collector off as in the command): parse + schema
validation
of the list, the check, each report; then the whole command through the CLI entry point (``python -m kubectl_aicr
check ... -o junit --output-file``): wall clock, its CPU time and the load average (on a shared machine the wall
clock includes waiting for a CPU); and the goal and ratio. Usage: ``python bench/bench_check.py [--nodes 1000]
[--repeat 3] [--keep DIR]``. Exits 1 when the
end-to-end figure misses the goal.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kubectl_aicr import snapshot_io  # noqa: E402
from kubectl_aicr.policy.engine import check  # noqa: E402
from kubectl_aicr.policy.init import build_policy, policy_text  # noqa: E402
from kubectl_aicr.policy.model import parse_policy_text  # noqa: E402
from kubectl_aicr.reports import check_report  # noqa: E402

GOAL_S = 5.0
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "snapshots", "fleet-20.yaml")


def _sub(snap: dict[str, Any], type_: str, subtype: str) -> dict[str, Any]:
    for m in snap["measurements"]:
        if m["type"] == type_:
            for s in m.get("subtypes") or []:
                if s["subtype"] == subtype:
                    data: dict[str, Any] = s["data"]
                    return data
    raise KeyError(f"{type_}/{subtype}")


def make_fleet(nodes: int, seed: int = 7) -> dict[str, Any]:
    src = snapshot_io.load(snapshot_io.FilePath(FIXTURE))
    rng = random.Random(seed)
    items = []
    for i in range(nodes):
        s = copy.deepcopy(src["items"][i % len(src["items"])])
        name = f"gpu-{i // 250:02d}-{i:04d}.ec2.internal"
        s["metadata"]["source-node"] = name
        _sub(s, "K8s", "labels")["kubernetes.io/hostname"] = name
        _sub(s, "K8s", "node")["source-node"] = name
        _sub(s, "K8s", "node")["provider-id"] = f"aws:///us-west-2a/i-{rng.getrandbits(64):016x}"
        sysctl = _sub(s, "OS", "sysctl")
        sysctl["/proc/sys/kernel/hostname"] = name
        sysctl["/proc/sys/kernel/ns_last_pid"] = str(rng.randrange(300, 4_000_000))
        sysctl["/proc/sys/kernel/random/boot_id"] = f"{rng.getrandbits(128):032x}"
        for g in ("gpu-0", "gpu-1"):
            gpu = _sub(s, "GPU", g)
            gpu["uuid"] = f"GPU-{rng.getrandbits(128):032x}"
            gpu["serial"] = str(1652322000000 + 2 * i + int(g[-1]))
        for m in s["measurements"]:
            if m["type"] == "SystemD":
                for u in m.get("subtypes") or []:
                    if "MainPID" in u["data"]:
                        u["data"]["MainPID"] = rng.randrange(300, 4_000_000)
        if i % 50 == 7:
            _sub(s, "GPU", "smi")["driver"] = "550.54.15"
        if i % 97 == 5:
            sysctl["/proc/sys/vm/swappiness"] = "10"
        items.append(s)
    return {"kind": "SnapshotList", "apiVersion": src["apiVersion"], "metadata": dict(src["metadata"]), "items": items}


_TEMPLATES: list[dict[str, Any]] = [
    {"type": "GPU", "subtype": "smi", "key": "driver", "expect": {"version": ">= 570.86, < 580"}},
    {"type": "GPU", "subtype": "gpu-*", "key": "ecc-mode-current", "expect": {"equals": "Enabled"}},
    {"type": "GPU", "subtype": "gpu-*", "key": "memory-total-mib", "expect": {"range": {"min": 80000}}},
    {"type": "GPU", "subtype": "gpu-*", "key": "power-limit-enforced-w", "expect": {"range": {"min": 300, "max": 700}}},
    {"type": "GPU", "subtype": "gpu-*", "key": "*", "expect": {"same-on-every-node": True}},
    {"type": "OS", "subtype": "release", "key": "VERSION_ID", "expect": {"one-of": ["22.04", "24.04"]}},
    {"type": "OS", "subtype": "sysctl", "key": "/proc/sys/kernel/osrelease", "expect": {"regex": r"6\.8\.0-\d+-aws"}},
    {"type": "OS", "subtype": "sysctl", "key": "*", "expect": {"same-on-every-node": True}},
    {"type": "OS", "subtype": "kmod", "key": "nvidia*", "expect": {"present": True}},
    {"type": "OS", "subtype": "kmod", "key": "nouveau", "expect": {"absent": True}},
    {"type": "K8s", "subtype": "labels", "key": "nvidia.com/*", "expect": {"same-on-every-node": True}},
    {"type": "SystemD", "subtype": "*.service", "key": "ActiveState", "expect": {"one-of": ["active", "inactive"]}},
    {
        "type": "SystemD",
        "subtype": "kubelet.service",
        "key": "NRestarts",
        "expect": {"range": {"max": 5}},
        "nodes": {"labels": {"pool": "training"}},
    },
]


def make_policy(fleet: dict[str, Any], rules: int = 100) -> str:
    """``policy init`` of the fixture fleet, then hand-written rules up to ``rules``, and two waivers."""
    doc, notes = build_policy(snapshot_io.load(snapshot_io.FilePath(FIXTURE))["items"], name="bench")
    i = 0
    while len(doc["rules"]) < rules:
        t = copy.deepcopy(_TEMPLATES[i % len(_TEMPLATES)])
        doc["rules"].append({"id": f"hand-{i:03d}", "severity": ("error", "warning")[i % 2], **t})
        i += 1
    doc["waivers"] = [
        {
            "rule": "hand-000",
            "nodes": ["gpu-00-0007.ec2.internal"],
            "reason": "550 pilot",
            "owner": "gpu-platform",
            "expires": "2099-12-31",
        },
        {
            "rule": "hand-001",
            "nodes": ["nowhere-*"],
            "reason": "stale on purpose",
            "owner": "gpu-platform",
            "expires": "2099-12-31",
        },
    ]
    return policy_text(doc, notes, "bench")


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.process_time()  # CPU time: on a shared machine the wall clock also counts waiting for a CPU
        out = fn()
        times.append(time.process_time() - t0)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="write the fleet and the policy here and keep them")
    a = ap.parse_args()
    out_dir = a.keep or tempfile.mkdtemp(prefix="bench-check-")
    os.makedirs(out_dir, exist_ok=True)
    fleet = make_fleet(a.nodes)
    fleet_path, policy_path = os.path.join(out_dir, "fleet.yaml"), os.path.join(out_dir, "policy.yaml")
    snapshot_io.write_file_atomic(fleet_path, snapshot_io.dumps(fleet, "yaml"))
    snapshot_io.write_file_atomic(policy_path, make_policy(fleet, a.rules))
    policy = parse_policy_text(open(policy_path, "rb").read(), policy_path)
    size = os.path.getsize(fleet_path)
    print(
        f"fleet: {a.nodes:,} nodes, {size / 1e6:.1f} MB of YAML; policy: {len(policy.rules)} rules, "
        f"{len(policy.waivers)} waivers; {os.cpu_count()} CPUs"
    )

    gc.disable()  # as the command does (kubectl_aicr/commands/check.py)
    t_load, doc = best(lambda: snapshot_io.load(snapshot_io.FilePath(fleet_path)), a.repeat)
    today = dt.date(2026, 6, 1)
    t_check, result = best(lambda: check(policy, doc["items"], today=today, sources=[fleet_path]), a.repeat)
    print(f"  parse + schema validation  {t_load:6.2f} s CPU")
    print(
        f"  check                      {t_check:6.2f} s CPU   ({len(result.cases):,} rule x node checks, "
        f"{result.summary()['violations']:,} violations, {result.summary()['accepted_deviations']} waived)"
    )
    for fmt in check_report.FORMATS:
        t, text = best(lambda: check_report.render(result, fmt), a.repeat)
        print(f"  render {fmt:<19} {t:6.2f} s CPU   ({len(text.encode()):,} bytes)")

    gc.enable()
    cmd = [
        sys.executable,
        "-m",
        "kubectl_aicr",
        "check",
        "--policy",
        policy_path,
        fleet_path,
        "-o",
        "junit",
        "--output-file",
        os.path.join(out_dir, "check.xml"),
        "--date",
        "2026-06-01",
    ]
    walls, cpus = [], []
    for _ in range(a.repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if p.returncode not in (0, 1):
            print(p.stderr, file=sys.stderr)
            return 2
    wall, cpu = min(walls), min(cpus)
    load = os.getloadavg()[0]
    print(
        f"end to end (python -m kubectl_aicr check ... -o junit --output-file, exit {p.returncode}): "
        f"{wall:.2f} s wall ({cpu:.2f} s CPU; load average {load:.1f} on {os.cpu_count()} CPUs); "
        f"goal {GOAL_S:.1f} s; ratio {wall / GOAL_S:.2f} of the goal"
    )
    if not a.keep:
        for f in os.listdir(out_dir):
            os.unlink(os.path.join(out_dir, f))
        os.rmdir(out_dir)
    return 0 if wall <= GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
