#!/usr/bin/env python3
"""Benchmark of ``kubectl aicr diff`` on two realistic ~5 MB snapshots.

Generates a base snapshot of a large GPU node (8 GPUs, a 192-CPU sysctl tree with its sched_domain entries,
~120 systemd units with their full D-Bus property sets, a busy cluster's images/ClusterPolicy/topology) and a current
one taken later on the same node (every volatile value moved on, plus some real drift), writes both as YAML and as
JSON, then times:

* in process: parse, schema validation, diff and text rendering, stage by stage (best of ``--repeat``);
* end to end through the CLI entry point (``python -m kubectl_aicr diff BASE CURRENT``), wall clock, per format;
* the startup of ``python -m kubectl_aicr diff --help``, and checks that neither it nor a file diff imports the
  kubernetes client.

Usage: ``python bench/bench_diff.py [--size-mb 5] [--repeat 3] [--keep DIR]``. Prints the figures; exits 1 when
the 1-second target for a 5 MB pair is missed in process (YAML or JSON), so it can run in CI.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

from kubectl_aicr import diff as engine  # noqa: E402
from kubectl_aicr import snapshot_io  # noqa: E402
from kubectl_aicr.diff import render as diff_render  # noqa: E402
from kubectl_aicr.schema import _validator, validate  # noqa: E402

_CLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TARGET_S = 1.0


# ============================================================================ generation


def _sub(name: str, data: dict[str, Any], source: str, status: str = "ok") -> dict[str, Any]:
    return {"subtype": name, "data": dict(sorted(data.items())), "context": {"source": source, "status": status}}


def _unit_props(rng: random.Random, unit: str, pid: int, n_props: int) -> dict[str, Any]:
    props: dict[str, Any] = {
        "ActiveState": "active",
        "SubState": "running",
        "LoadState": "loaded",
        "UnitFileState": "enabled",
        "MainPID": pid,
        "ExecMainPID": pid,
        "ControlPID": 0,
        "NRestarts": 0,
        "Restart": "on-failure",
        "InvocationID": f"{rng.getrandbits(128):032x}",
        "MemoryCurrent": rng.randrange(1 << 20, 1 << 32),
        "CPUUsageNSec": rng.randrange(1 << 30, 1 << 40),
        "TasksCurrent": rng.randrange(1, 200),
        "FragmentPath": f"/usr/lib/systemd/system/{unit}",
        "Description": f"The {unit} daemon",
        "ExecStart": f"[[/usr/bin/{unit.split('.')[0]} [/usr/bin/{unit.split('.')[0]} --config /etc/{unit}.conf] false 0 0]]",  # noqa: E501
    }
    for ts in (
        "ActiveEnter",
        "ActiveExit",
        "InactiveEnter",
        "InactiveExit",
        "StateChange",
        "ExecMainStart",
        "ConditionTimestamp",
        "AssertTimestamp",
    ):
        base = rng.randrange(1_700_000_000_000_000, 1_800_000_000_000_000)
        props[f"{ts}Timestamp" if not ts.endswith("Timestamp") else ts] = base
        props[f"{ts}TimestampMonotonic" if not ts.endswith("Timestamp") else ts + "Monotonic"] = base % 10**9
    i = 0
    while len(props) < n_props:
        props[f"Limit{i:03d}Setting"] = rng.choice([0, 1, 1024, 65536, 1048576, "infinity", True, False, "yes"])
        i += 1
    return props


def make_snapshot(seed: int = 1, size_mb: float = 5.0) -> dict[str, Any]:
    """A base snapshot of about ``size_mb`` MB of YAML."""
    rng = random.Random(seed)
    scale = size_mb / 1.3  # calibrated: size_mb=5 gives about 5 MB of YAML
    gpus = []
    smi = {
        "driver": "570.86.15",
        "cuda-version": "12.8",
        "gpu-count": 8,
        "attached-gpus": 8,
        "gpu.model": "NVIDIA H100 80GB HBM3",
        "gpu.product-architecture": "Hopper",
        "gpu.models-uniform": True,
        "gpu.models": "8x NVIDIA H100 80GB HBM3",
        "gpu.config-uniform": True,
    }
    for g in range(8):
        data: dict[str, Any] = {
            "uuid": f"GPU-{rng.getrandbits(128):032x}",
            "serial": str(1652322000000 + g),
            "minor-number": g,
            "pci-bus-id": f"0000:{0x18 + g * 0x10:02x}:00.0",
            "memory-total-mib": 81559,
            "power-limit-enforced-w": 700.0,
            "pcie-link-gen-current": rng.choice([1, 5]),
            "pcie-link-width-current": "16x",
        }
        for k in range(120):
            data[f"field-{k:03d}"] = rng.choice(["Enabled", "Disabled", 0, 1, 1980, 700.0, None, "N/A"])
        gpus.append(_sub(f"gpu-{g}", data, "nvidia-smi -q -x"))
    sysctl: dict[str, Any] = {
        "/proc/sys/kernel/random/boot_id": f"{rng.getrandbits(128):032x}",
        "/proc/sys/kernel/random/uuid": f"{rng.getrandbits(128):032x}",
        "/proc/sys/kernel/ns_last_pid": str(rng.randrange(1, 4194304)),
        "/proc/sys/fs/file-nr": f"{rng.randrange(9000, 20000)}\t0\t9223372036854775807",
        "/proc/sys/vm/swappiness": "60",
        "/proc/sys/kernel/numa_balancing": "0",
    }
    for cpu in range(192):
        for dom in range(3):
            for f in (
                "busy_factor",
                "cache_nice_tries",
                "flags",
                "imbalance_pct",
                "max_interval",
                "max_newidle_lb_cost",
                "min_interval",
                "name",
                "busy_idx",
                "idle_idx",
                "newidle_idx",
                "wake_idx",
            ):
                sysctl[f"/proc/sys/kernel/sched_domain/cpu{cpu}/domain{dom}/{f}"] = str(rng.randrange(0, 4096))
    units = []
    for u in range(int(120 * scale)):
        name = f"unit-{u:03d}.service" if u >= 3 else ("containerd.service", "kubelet.service", "docker.service")[u]
        units.append(_sub(name, _unit_props(rng, name, rng.randrange(300, 4_000_000), 250), "systemd D-Bus"))
    nodes = [f"ip-10-0-{i // 250}-{i % 250}.ec2.internal" for i in range(600)]
    labels = {
        f"example.com/label-{i:03d}": f"value-{i % 7}|" + ",".join(nodes[: 60 + i % 40])
        for i in range(int(120 * scale))
    }
    doc = {
        "kind": "Snapshot",
        "apiVersion": "aicr.nvidia.com/v1alpha1",
        "metadata": {"source-node": nodes[0], "timestamp": "2026-03-20T18:04:11Z", "version": "0.1.0"},
        "measurements": [
            {"type": "GPU", "subtypes": [_sub("smi", smi, "nvidia-smi -q -x")] + gpus},
            {
                "type": "OS",
                "subtypes": [
                    _sub(
                        "grub",
                        {"BOOT_IMAGE": "/boot/vmlinuz-6.8.0-1015-aws", "ro": "", "console": "ttyS0"},
                        "/proc/cmdline",
                    ),
                    _sub("sysctl", sysctl, "/proc/sys"),
                    _sub("kmod", {f"mod_{i:03d}": True for i in range(200)}, "/proc/modules"),
                    _sub("release", {"ID": "ubuntu", "VERSION_ID": "22.04"}, "/etc/os-release"),
                ],
            },
            {"type": "SystemD", "subtypes": units},
            {
                "type": "K8s",
                "subtypes": [
                    _sub("server", {"version": "v1.33.5-eks-3025e55", "platform": "linux/amd64"}, "GET /version"),
                    _sub(
                        "image",
                        {
                            f"registry.example.com/team-{i % 9}/image-{i:03d}": f"v{i % 5}.{i % 11}.0"
                            for i in range(300)
                        },
                        "GET /api/v1/pods",
                    ),
                    _sub(
                        "policy",
                        {f"spec.section-{i // 20}.key-{i % 20}": str(i) for i in range(400)},
                        "nvidia.com/v1 clusterpolicies",
                    ),
                ],
            },
            {
                "type": "NodeTopology",
                "subtypes": [
                    _sub(
                        "summary",
                        {"node-count": len(nodes), "label-count": len(labels), "taint-count": 2},
                        "GET /api/v1/nodes",
                    ),
                    _sub("label", labels, "GET /api/v1/nodes"),
                ],
            },
        ],
    }
    return doc


def later_run(base: dict[str, Any], seed: int = 2) -> dict[str, Any]:
    """The same node later: volatile values all moved on, plus real drift (~60 keys, a unit gone, a GPU lost)."""
    rng = random.Random(seed)
    cur = copy.deepcopy(base)
    cur["metadata"]["timestamp"] = "2026-03-21T09:30:00Z"
    for m in cur["measurements"]:
        for s in m["subtypes"]:
            d = s["data"]
            for k in list(d):
                if k in ("MainPID", "ExecMainPID", "MemoryCurrent", "CPUUsageNSec", "TasksCurrent") or "Timestamp" in k:
                    d[k] = d[k] + rng.randrange(1, 1000) if isinstance(d[k], int) else d[k]
                elif k == "InvocationID":
                    d[k] = f"{rng.getrandbits(128):032x}"
    by = {(m["type"], s["subtype"]): s for m in cur["measurements"] for s in m["subtypes"]}
    by[("GPU", "smi")]["data"]["driver"] = "575.51.03"
    by[("GPU", "gpu-7")].update(data={}, context={"source": "nvidia-smi -q -x", "status": "error", "reason": "Xid 79"})
    sysctl = by[("OS", "sysctl")]["data"]
    for k in rng.sample(sorted(sysctl), 40):
        sysctl[k] = str(rng.randrange(0, 4096))
    sysctl["/proc/sys/kernel/random/uuid"] = f"{rng.getrandbits(128):032x}"
    by[("SystemD", "kubelet.service")]["data"]["NRestarts"] = 2
    sd = next(m for m in cur["measurements"] if m["type"] == "SystemD")
    sd["subtypes"] = [s for s in sd["subtypes"] if s["subtype"] != "unit-050.service"]
    for i in range(10):
        by[("K8s", "image")]["data"][f"registry.example.com/new/image-{i}"] = "v1.0.0"
    return cur


# ============================================================================ timing


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def run_cli(args: list[str], repeat: int) -> tuple[float, int]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times, rc = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-m", "kubectl_aicr", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        times.append(time.perf_counter() - t0)
        rc = p.returncode
        if rc not in (0, 1):
            raise SystemExit(f"CLI failed ({rc}): {p.stderr.decode()[:500]}")
    return min(times), rc


def kubernetes_imported(args: list[str]) -> bool:
    code = (
        "import sys\nfrom kubectl_aicr.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('KUBERNETES=%d' % ('kubernetes' in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return "KUBERNETES=1" in p.stderr.decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="write the generated snapshots here instead of a temporary dir")
    a = ap.parse_args()

    base = make_snapshot(1, a.size_mb)
    cur = later_run(base)
    if a.keep:
        os.makedirs(a.keep, exist_ok=True)
        return measure(a, base, cur, a.keep)
    with tempfile.TemporaryDirectory(prefix="aicr-bench-") as tmp:
        return measure(a, base, cur, tmp)


def measure(a: argparse.Namespace, base: dict[str, Any], cur: dict[str, Any], out_dir: str) -> int:
    """Write the pair into ``out_dir`` in both formats and print every figure; 1 when a target is missed."""
    paths: dict[str, tuple[str, str]] = {}
    for fmt in ("yaml", "json"):
        pb, pc = os.path.join(out_dir, f"base.{fmt}"), os.path.join(out_dir, f"current.{fmt}")
        for doc, p in ((base, pb), (cur, pc)):
            with open(p, "w", encoding="utf-8") as f:
                f.write(snapshot_io.dumps(doc, fmt))
        paths[fmt] = (pb, pc)
    n_keys = sum(len(s["data"]) for m in base["measurements"] for s in m["subtypes"])
    print(f"python {sys.version.split()[0]} on {os.cpu_count()} CPU(s); snapshots in {out_dir}")
    print(
        f"snapshot: {n_keys:,} keys; yaml {os.path.getsize(paths['yaml'][0]) / 1e6:.2f} MB + "
        f"{os.path.getsize(paths['yaml'][1]) / 1e6:.2f} MB, json {os.path.getsize(paths['json'][0]) / 1e6:.2f} MB + "
        f"{os.path.getsize(paths['json'][1]) / 1e6:.2f} MB"
    )

    failed = False
    validate(base, source="warm-up")  # build the compiled validator once, as the first real call would
    for fmt in ("yaml", "json"):
        pb, pc = paths[fmt]
        raws = [open(p, "rb").read() for p in (pb, pc)]
        t_parse, docs = best(lambda: [snapshot_io.parse_document(r, source=fmt) for r in raws], a.repeat)
        t_valid, _ = best(lambda: [validate(d, source=fmt) for d in docs], a.repeat)
        t_diff, res = best(lambda: engine.diff_snapshots(docs[0], docs[1]), a.repeat)
        t_render, _ = best(lambda: diff_render.render(res, "text"), a.repeat)
        t_json, _ = best(lambda: diff_render.render(res, "json"), a.repeat)
        total = t_parse + t_valid + t_diff + t_render
        if fmt == "yaml":  # what the same work cost before the fast paths (plain CSafeLoader, full jsonschema)
            texts = [r.decode("utf-8") for r in raws]
            t_std_parse, _ = best(lambda: [list(yaml.load_all(t, Loader=_CLoader)) for t in texts], 1)
            t_std_valid, _ = best(lambda: [list(_validator().iter_errors(d)) for d in docs], 1)
        s = res.summary()
        print(f"\n[{fmt}] in process (best of {a.repeat}), both files:")
        print(
            f"  parse     {t_parse * 1000:8.1f} ms"
            + (f"   (plain yaml.CSafeLoader: {t_std_parse * 1000:.0f} ms)" if fmt == "yaml" else "")
        )
        print(
            f"  validate  {t_valid * 1000:8.1f} ms"
            + (f"   (full jsonschema pass: {t_std_valid * 1000:.0f} ms)" if fmt == "yaml" else "")
        )
        print(
            f"  diff      {t_diff * 1000:8.1f} ms   ({s['changed']} changed, {s['added']} added, "
            f"{s['removed']} removed, {s['ignored']} volatile ignored)"
        )
        print(f"  render    {t_render * 1000:8.1f} ms text, {t_json * 1000:.1f} ms json")
        print(
            f"  total     {total * 1000:8.1f} ms   goal < {TARGET_S * 1000:.0f} ms, ratio {total / TARGET_S:.2f}: "
            f"{'ok' if total < TARGET_S else 'MISSED'}"
        )
        failed |= total >= TARGET_S
        t_cli, rc = run_cli(["diff", pb, pc, "-o", "json"], a.repeat)
        print(
            f"  CLI end to end (python -m kubectl_aicr diff, wall, incl. interpreter start): {t_cli * 1000:.0f} ms, exit {rc}"  # noqa: E501
        )

    t_help, _ = run_cli(["diff", "--help"], max(a.repeat, 5))
    t_none, _ = run_cli(["--version"], max(a.repeat, 5))
    print(
        f"\nstartup: 'diff --help' {t_help * 1000:.0f} ms; '--version' {t_none * 1000:.0f} ms (best of {max(a.repeat, 5)})"  # noqa: E501
    )
    k_help = kubernetes_imported(["diff", "--help"])
    k_diff = kubernetes_imported(["diff", *paths["json"]])
    print(f"kubernetes client imported: diff --help {k_help}, diff FILE FILE {k_diff}")
    failed |= k_help or k_diff
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
