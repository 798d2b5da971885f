#!/usr/bin/env python3
"""Whole ``kubectl aicr snapshot -o FILE`` on the local control plane, one fake 8x H100 node: wall time, the CLI
process's CPU, the agent pod's lifetime, and the CLI's own overhead (wall minus the pod's lifetime).

    python bench/bench_snapshot.py              # 7 runs
    python bench/bench_snapshot.py --runs 11
    python bench/bench_snapshot.py --trace      # and one more run with every API request of the CLI listed

Starts the real control plane (tests/controlplane, binaries from build-binaries.sh) and a process kubelet with
one fake 8x H100 node, then runs ``python -m kubectl_aicr snapshot -o FILE --image <the tests' agent image>
--node-selector kubernetes.io/hostname=<node>`` ``--runs`` times, one after the other.

Figures, per run and as median (min-max):

* wall: from spawning the CLI to its exit (``os.wait4``), interpreter start-up included.
* CLI CPU: user+sys of the CLI process (``wait4``'s rusage; the agent is a process of the kubelet, not in it).
* pod lifetime: from the moment the agent pod appears (ADDED on a watch this bench keeps on the run's pods) to
  the moment its container is reported terminated (the first watch event with ``state.terminated``). The
  status timestamps (``creationTimestamp``, ``finishedAt``) have one-second resolution, too coarse for a 1 s
  run; they are printed as a cross-check. The watch sees both ends through the same API server, so its delay
  cancels out but for jitter.
* CLI overhead: wall minus pod lifetime - preflight, create, seeing completion, fetch, validate, write, cleanup
  and the interpreter's start-up.
* phases (from the CLI's own ``[aicr]`` progress lines, time-stamped here as they arrive on stderr): before the
  first object is created, from the pod's end to the "written to" line, from there to "cleaned up", and from
  that to the process's exit.

The CLI runs with its compiled bytecode kept in a private ``PYTHONPYCACHEPREFIX`` (filled by a warm-up run that is
not counted), as an installed CLI has it; ``--no-bytecode-cache`` keeps the environment's settings (with
``PYTHONDONTWRITEBYTECODE=1`` every changed module of the checkout is compiled again on each run).

Goals (issue #15): CLI overhead <= 0.5 s; whole run <= 1.3 s (the Go tool's figure on this plane). Also printed:
the ratio of the run to the pod's lifetime (the physical limit is 1). The machine may be shared and loaded;
the bench prints the load average next to the figures.

``--profile FILE`` runs the CLI once more under py-spy (raw collapsed stacks, idle samples included).
``--trace`` runs the CLI once more through ``bench/trace_requests.py`` and prints each API request it sent (start,
duration, method, path, status) and the count per phase; it also prints the API server's
``apiserver_request_total`` delta for that run (every client, the kubelet's heartbeats left out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apimetrics import request_counts  # noqa: E402

from tests.controlplane.cluster import ControlPlane, locate_binaries  # noqa: E402
from tests.controlplane.handle import ProcessKubelet  # noqa: E402
from tests.controlplane.nodes import H100_XML, gpu_node  # noqa: E402
from tests.controlplane.testkit import LOCAL_AGENT_IMAGE, label_nodes  # noqa: E402

RUN_LABEL = "aicr.nvidia.com/run-id"
GOAL_OVERHEAD_S = 0.5
GOAL_WALL_S = 1.3  # NVIDIA aicr v0.11.1 (Go) on this plane, issue #15
NODE = "bench-snap-h100-1"
CLI = [sys.executable, "-m", "kubectl_aicr"]


class PodWatch(threading.Thread):
    """Watches the run pods (run-id label) and records, per pod, when it was first seen and when its
    container was first seen terminated (monotonic seconds), and its status timestamps."""

    def __init__(self, api: Any) -> None:
        super().__init__(daemon=True)
        self.api = api
        self.added: dict[str, float] = {}
        self.terminated: dict[str, float] = {}
        self.stamps: dict[str, tuple[str, str, str]] = {}  # pod -> (created, startedAt, finishedAt)
        self.stop_now = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from kubernetes import watch

        while not self.stop_now.is_set():
            w = watch.Watch()
            try:
                rv = self.api.list_pod_for_all_namespaces(label_selector=RUN_LABEL).metadata.resource_version
                self.ready.set()
                for ev in w.stream(
                    self.api.list_pod_for_all_namespaces,
                    label_selector=RUN_LABEL,
                    resource_version=rv,
                    timeout_seconds=5,
                ):
                    now = time.monotonic()
                    pod = ev["object"]
                    name = pod.metadata.name
                    self.added.setdefault(name, now)
                    for cs in (pod.status.container_statuses or []) if pod.status else []:
                        term = cs.state.terminated if cs.state else None
                        if term is not None:
                            self.terminated.setdefault(name, now)
                            self.stamps.setdefault(
                                name,
                                (
                                    pod.metadata.creation_timestamp.isoformat(),
                                    term.started_at.isoformat() if term.started_at else "",
                                    term.finished_at.isoformat() if term.finished_at else "",
                                ),
                            )
                    if self.stop_now.is_set():
                        break
            except Exception:  # noqa: BLE001 - re-list and watch again
                time.sleep(0.1)
            finally:
                w.stop()


#: Where the CLI's runs keep their compiled bytecode (set by main): an installed CLI has it (pip compiles at install,
#: Python writes it on first use), while a checkout run with PYTHONDONTWRITEBYTECODE=1 would compile every changed
#: module of its own on every run (~30 ms). The warm-up run fills it.
PYCACHE: dict[str, str] = {}


def run_cli(plane: ControlPlane, out: Path, launcher: list[str]) -> dict[str, Any]:
    """One snapshot run: wall, CPU, and the arrival time of each progress line (seconds from the spawn)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBECONFIG", "AICR_")) and (not PYCACHE or k != "PYTHONDONTWRITEBYTECODE")
    }
    env.update(KUBECONFIG=str(plane.kubeconfig), PYTHONUNBUFFERED="1", **PYCACHE)
    argv = [
        *launcher,
        "snapshot",
        "--node-selector",
        f"kubernetes.io/hostname={NODE}",
        "--image",
        LOCAL_AGENT_IMAGE,
        "--timeout",
        "5m",
        "-o",
        str(out),
    ]
    lines: list[tuple[float, str]] = []
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic() - t0, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    reader.join(5)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"snapshot failed ({code}):\n" + "\n".join(text for _, text in lines[-30:]))
    return {
        "t0": t0,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
        "lines": lines,
    }


def first(lines: list[tuple[float, str]], needle: str) -> float | None:
    return next((t for t, text in lines if needle in text), None)


def measure(plane: ControlPlane, watcher: PodWatch, out: Path, launcher: list[str]) -> dict[str, Any]:
    known = set(watcher.added)
    r = run_cli(plane, out, launcher)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        new = [p for p in watcher.added if p not in known]
        if new and all(p in watcher.terminated for p in new):
            break
        time.sleep(0.02)
    pods = [p for p in watcher.added if p not in known]
    if len(pods) != 1 or pods[0] not in watcher.terminated:
        raise SystemExit(f"expected one agent pod seen from creation to termination, saw {pods}")
    pod = pods[0]
    r["pod"] = pod
    r["pod_added"] = watcher.added[pod] - r["t0"]
    r["pod_done"] = watcher.terminated[pod] - r["t0"]
    r["lifetime"] = r["pod_done"] - r["pod_added"]
    r["overhead"] = r["wall"] - r["lifetime"]
    created, started, finished = watcher.stamps.get(pod, ("", "", ""))
    r["stamp_lifetime"] = (
        (datetime.fromisoformat(finished) - datetime.fromisoformat(created)).total_seconds()
        if created and finished
        else float("nan")
    )
    lines = r["lines"]
    r["preflight"] = first(lines, ": creating ")
    r["written"] = first(lines, " written to ")
    r["cleaned"] = first(lines, "cleaned up")
    return r


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):6.3f}s ({min(values):.3f}-{max(values):.3f})"


def trace(plane: ControlPlane, api: Any, watcher: PodWatch, tmp: Path) -> None:
    record = tmp / "trace.json"
    before = request_counts(api)
    launcher = [sys.executable, str(REPO / "bench" / "trace_requests.py"), str(record)]
    r = measure(plane, watcher, tmp / "trace.yaml", launcher)
    after = request_counts(api)
    data = json.loads(record.read_text())
    shift = -r["t0"]  # the launcher's times are time.monotonic() readings, as the bench's
    print(
        f"\ntraced run: wall {r['wall']:.3f}s, CPU {r['cpu']:.3f}s, pod {r['pod_added']:.3f}s -> "
        f"{r['pod_done']:.3f}s; the launcher's first line ran at "
        f"{data['launched'] + shift:.3f}s, its atexit at {data['exit'] + shift:.3f}s; times are seconds from the "
        "spawn"
    )
    events = [(t, f"[aicr] line: {text[:110]}") for t, text in r["lines"]]
    events += [(r["pod_added"], "== pod ADDED (bench watch)"), (r["pod_done"], "== container terminated (bench watch)")]
    reqs = data["requests"]
    for start, end, method, url, status in reqs:
        path = url.split("?")[0]
        query = ("?" + url.split("?", 1)[1][:60]) if "?" in url else ""
        events.append((start + shift, f"{method:6s} {path}{query} -> {status} ({(end - start) * 1000:.0f} ms)"))
    for t, text in sorted(events):
        print(f"  {t:7.3f}  {text}")
    phases: Counter[str] = Counter()
    for start, _, _, _, _ in reqs:
        t = start + shift
        phase = "before pod ADDED" if t < r["pod_added"] else "pod alive" if t < r["pod_done"] else "after pod done"
        phases[phase] += 1
    print(f"  CLI requests: {len(reqs)} ({', '.join(f'{k}: {v}' for k, v in phases.items())})")
    diff = Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0})
    diff[("GET", "", "")] -= 1  # the bench's own /metrics read
    print(
        "  apiserver_request_total delta (all clients, kubelet and controllers included, heartbeats out): "
        + ", ".join(f"{v} {k[0]} {k[1]}{'/' + k[2] if k[2] else ''}" for k, v in diff.most_common() if v > 0)
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--trace", action="store_true", help="one more run, listing the CLI's API requests")
    ap.add_argument(
        "--profile",
        metavar="FILE",
        help="one more run under py-spy, its samples (raw, collapsed stacks, idle included) written to FILE",
    )
    ap.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run the CLI with the environment's bytecode settings (by default its compiled modules are kept in a "
        "private PYTHONPYCACHEPREFIX, as an installed CLI has them)",
    )
    args = ap.parse_args()
    from kubernetes import client
    from kubernetes import config as kube_config

    plane = ControlPlane(bin_dir=locate_binaries()).start()
    print(f"control plane ready in {plane.start_seconds:.1f}s; {os.cpu_count()} CPUs", flush=True)
    conf = client.Configuration()
    kube_config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=conf)
    api = client.CoreV1Api(client.ApiClient(conf))
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="aicr-bench-snap-") as tmp_dir:
            tmp = Path(tmp_dir)
            if not args.no_bytecode_cache:
                PYCACHE["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
            with ProcessKubelet(plane, label_nodes([gpu_node(NODE, H100_XML)], "benchsnap"), name="benchsnap"):
                watcher = PodWatch(api)
                watcher.start()
                watcher.ready.wait(10)
                measure(plane, watcher, tmp / "warm.yaml", CLI)  # warm caches (and compile the bytecode); not counted
                for i in range(args.runs):
                    r = measure(plane, watcher, tmp / f"snap-{i}.yaml", CLI)
                    rows.append(r)
                    print(
                        f"run {i + 1}: wall {r['wall']:.3f}s  CLI CPU {r['cpu']:.3f}s (user {r['user']:.2f} sys "
                        f"{r['sys']:.2f}, RSS {r['rss_mb']:.0f} MB)  pod {r['pod_added']:.3f}s -> "
                        f"{r['pod_done']:.3f}s = {r['lifetime']:.3f}s (status stamps: {r['stamp_lifetime']:.0f}s)  "
                        f"overhead {r['overhead']:.3f}s  | created at {r['preflight'] or 0:.3f}s, written "
                        f"{r['written'] or 0:.3f}s, cleaned {r['cleaned'] or 0:.3f}s, exit {r['wall']:.3f}s",
                        flush=True,
                    )
                if args.trace:
                    trace(plane, api, watcher, tmp)
                if args.profile:
                    spy = [
                        str(Path(sys.executable).with_name("py-spy")),
                        "record",
                        "--idle",
                        "--format",
                        "raw",
                        "--rate",
                        "500",
                        "--output",
                        args.profile,
                        "--",
                    ]
                    r = measure(plane, watcher, tmp / "profiled.yaml", [*spy, *CLI])
                    print(f"\nprofiled run (py-spy slows it): wall {r['wall']:.3f}s; samples in {args.profile}")
                watcher.stop_now.set()
    finally:
        plane.stop()
    load = os.getloadavg()
    wall = [r["wall"] for r in rows]
    life = [r["lifetime"] for r in rows]
    over = [r["overhead"] for r in rows]
    ratio = [r["wall"] / r["lifetime"] for r in rows]
    print(
        f"\n{len(rows)} runs, {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        "(a shared machine: other work runs alongside); bytecode "
        + ("as the environment has it" if args.no_bytecode_cache else "cached (PYTHONPYCACHEPREFIX), as installed")
    )
    print(f"whole run      {fmt(wall)}   goal {GOAL_WALL_S:.2f}s   ratio {statistics.median(wall) / GOAL_WALL_S:.2f}")
    print(
        f"CLI overhead   {fmt(over)}   goal {GOAL_OVERHEAD_S:.2f}s   ratio "
        f"{statistics.median(over) / GOAL_OVERHEAD_S:.2f}   (wall - pod lifetime)"
    )
    print(f"pod lifetime   {fmt(life)}   (ADDED -> terminated on the bench's watch)")
    print(f"run / pod      {statistics.median(ratio):6.2f}x  (the physical limit is 1)")
    print(f"CLI CPU        {fmt([r['cpu'] for r in rows])}   (user+sys of the CLI process)")
    print(
        f"  phases: spawn -> creating {fmt([r['preflight'] or 0 for r in rows])}; pod done -> written "
        f"{fmt([(r['written'] or 0) - r['pod_done'] for r in rows])}; written -> cleaned "
        f"{fmt([(r['cleaned'] or 0) - (r['written'] or 0) for r in rows])}; cleaned -> exit "
        f"{fmt([r['wall'] - (r['cleaned'] or 0) for r in rows])}"
    )
    ok = statistics.median(over) <= GOAL_OVERHEAD_S and statistics.median(wall) <= GOAL_WALL_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
