"""What ``snapshot --all-nodes`` costs as the node count grows, on the local control plane: wall time, API
requests per node, peak objects alive, CLI peak memory.

    python bench/bench_fleet.py                                   # real agents: 5 10 20 40 nodes
    python bench/bench_fleet.py --nodes 20 --parallelism 1 4 8    # real agents, a parallelism scan
    python bench/bench_fleet.py --simulated --nodes 100 250 1000  # simulated agents (tests/controlplane/simagent)
    python bench/bench_fleet.py --simulated --nodes 100 --cli-args --parallelism 4   # extra snapshot flags

Starts the real control plane (tests/controlplane, binaries from build-binaries.sh) and a process kubelet with
fake 8x H100 nodes. Real agents run the collector (``kubectl-aicr agent``) as one local process per pod;
``--simulated`` nodes (label ``aicr.test/agent=simulated``) write a pre-collected snapshot through the same API
path instead (the template is collected first by one real agent), so the figures are the plane's and the CLI's.

Per run it prints: wall seconds and seconds per node; API requests per node (``apiserver_request_total`` from the
API server's ``/metrics``, after minus before, without the kubelet's Lease and Node-status heartbeats and without
this bench's own polling), the top verbs/resources; the peak number of the run's objects alive at once (pods, Jobs,
ConfigMaps carrying the run-id label, metadata only, polled every 2 s); the CLI's peak RSS (``wait4``). Each against the
goal of issue #16 where it sets one (1,000 nodes in 3 minutes, i.e. 0.18 s per node; 1 GB of CLI memory).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apimetrics import request_counts  # noqa: E402

from tests.controlplane.cluster import ControlPlane, locate_binaries  # noqa: E402
from tests.controlplane.handle import ProcessKubelet  # noqa: E402
from tests.controlplane.nodes import H100_XML, gpu_node  # noqa: E402
from tests.controlplane.simagent import SIMULATED_LABEL, SIMULATED_VALUE  # noqa: E402
from tests.controlplane.testkit import LOCAL_AGENT_IMAGE, label_nodes  # noqa: E402

RUN_LABEL = "aicr.nvidia.com/run-id"
GOAL_SECONDS_PER_NODE = 180.0 / 1000
GOAL_RSS_MB = 1024.0
POLL_S = 2.0
IDLE_SAMPLE_S = 15.0


class ObjectPoller(threading.Thread):
    """Counts the run's pods, Jobs and ConfigMaps (by the run-id label) every POLL_S seconds; keeps the peak."""

    def __init__(self, api: Any, batch: Any) -> None:
        super().__init__(daemon=True)
        self.api, self.batch = api, batch
        self.peak = 0
        self.peak_by: dict[str, int] = {}
        self.requests = 0
        self.stop_now = threading.Event()

    def _count(self, path: str) -> int:
        # Metadata only (a PartialObjectMetadataList): the staging ConfigMaps hold whole snapshots.
        resp = self.api.api_client.call_api(
            path,
            "GET",
            query_params=[("labelSelector", RUN_LABEL)],
            auth_settings=["BearerToken"],
            header_params={"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
            response_type="object",
            _preload_content=False,
        )[0]
        import json

        return len(json.loads(resp.data).get("items") or [])

    def run(self) -> None:
        while not self.stop_now.wait(POLL_S):
            try:
                counts = {
                    "pods": self._count("/api/v1/pods"),
                    "jobs": self._count("/apis/batch/v1/jobs"),
                    "configmaps": self._count("/api/v1/configmaps"),
                }
            except Exception:  # noqa: BLE001 - a failed poll only loses a sample
                continue
            finally:
                self.requests += 3
            if sum(counts.values()) > self.peak:
                self.peak, self.peak_by = sum(counts.values()), counts


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its reaped children so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(plane: ControlPlane, kubelet: ProcessKubelet) -> dict[str, float]:
    """CPU seconds so far of each control-plane component and of the process kubelet (with its pods)."""
    procs = {c.name: c.proc.pid for c in plane.components}
    if kubelet.proc is not None:
        procs["kubelet"] = kubelet.proc.pid
    return {name: cpu_seconds(pid) for name, pid in procs.items()}


def idle_load(plane: ControlPlane, kubelet: ProcessKubelet, seconds: float = IDLE_SAMPLE_S) -> None:
    """Prints the CPU the plane and the kubelet's heartbeats use with no run going (the background load)."""
    before = cpu_by_process(plane, kubelet)
    time.sleep(seconds)
    after = cpu_by_process(plane, kubelet)
    used = {name: after[name] - before.get(name, 0.0) for name in after}
    split = ", ".join(f"{name} {v / seconds:.2f}" for name, v in sorted(used.items(), key=lambda kv: -kv[1]))
    print(f"    idle (no run) CPU: {sum(used.values()) / seconds:.2f} cores ({split})", flush=True)


def run_cli(plane: ControlPlane, kubelet: str, out: Path, extra: list[str]) -> tuple[float, float, str, float]:
    """(wall seconds, peak RSS in MB, stderr, CPU seconds) of one ``snapshot --all-nodes`` over ``kubelet``'s
    nodes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    env["KUBECONFIG"] = str(plane.kubeconfig)
    argv = [
        sys.executable,
        "-m",
        "kubectl_aicr",
        "snapshot",
        "--all-nodes",
        "--node-selector",
        f"aicr.test/kubelet={kubelet}",
        "--image",
        LOCAL_AGENT_IMAGE,
        "--timeout",
        "30m",
        "-o",
        str(out),
        *extra,
    ]
    err_file = out.with_suffix(".stderr")
    t0 = time.monotonic()
    with open(err_file, "wb") as err:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = err_file.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{stderr[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, stderr, usage.ru_utime + usage.ru_stime


def template_snapshot(plane: ControlPlane, tmp: Path) -> Path:
    """One real agent's snapshot, the simulated agents' template."""
    nodes = label_nodes([gpu_node("bench-template-0", H100_XML)], "bench-template")
    out = tmp / "template.yaml"
    with ProcessKubelet(plane, nodes, name="bench-template"):
        run_cli(plane, "bench-template", out, [])
    return out


def measure(
    plane: ControlPlane, kubelet: ProcessKubelet, api: Any, batch: Any, n: int, out: Path, extra: list[str]
) -> None:
    poller = ObjectPoller(api, batch)
    before = request_counts(api)
    cpu_before = cpu_by_process(plane, kubelet)
    poller.start()
    secs, rss, stderr, cli_cpu = run_cli(plane, kubelet.name, out, extra)
    cpu_after = cpu_by_process(plane, kubelet)
    poller.stop_now.set()
    poller.join()
    after = request_counts(api)
    diff = Counter({k: after[k] - before.get(k, 0) for k in after})
    diff[("LIST", "pods", "")] -= poller.requests // 3
    diff[("LIST", "jobs", "")] -= poller.requests // 3
    diff[("LIST", "configmaps", "")] -= poller.requests // 3
    diff[("GET", "", "")] -= 2  # our two /metrics reads (the metric has no resource for non-resource URLs)
    total = sum(v for v in diff.values() if v > 0)
    top = ", ".join(f"{v / n:.1f} {k[0]} {k[1]}{'/' + k[2] if k[2] else ''}" for k, v in diff.most_common(8) if v > 0)
    goal_s = GOAL_SECONDS_PER_NODE * n
    size = out.stat().st_size
    print(
        f"nodes={n:5d} args={' '.join(extra) or '-':<18} wall={secs:7.1f}s ({secs / n:.3f} s/node; goal "
        f"{goal_s:.0f}s at this count, ratio {secs / goal_s:.2f})  requests={total / n:.1f}/node  "
        f"peak objects={poller.peak} {poller.peak_by}  CLI RSS={rss:.0f} MB (goal {GOAL_RSS_MB:.0f}, ratio "
        f"{rss / GOAL_RSS_MB:.2f})  output={size:,} bytes",
        flush=True,
    )
    print(f"    requests per node by kind: {top}", flush=True)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    cpu["CLI"] = cli_cpu
    split = ", ".join(f"{name} {v:.1f}" for name, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    print(
        f"    CPU seconds during the run: {sum(cpu.values()):.1f} of {secs * (os.cpu_count() or 1):.1f} available "
        f"({split})",
        flush=True,
    )
    lines = stderr.count("\n")
    print(
        f"    CLI stderr: {lines} lines; last: {stderr.strip().splitlines()[-1] if stderr.strip() else ''}", flush=True
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="*", default=[5, 10, 20, 40])
    ap.add_argument(
        "--parallelism",
        type=int,
        nargs="*",
        default=[],
        help="--parallelism values to run at each node count (none: the CLI's default)",
    )
    ap.add_argument("--simulated", action="store_true", help="simulated agents (see tests/controlplane/simagent)")
    ap.add_argument(
        "--lease-renew",
        type=float,
        default=10.0,
        help="seconds between two renewals of each node's Lease (10: as a real kubelet; thousands of simulated "
        "nodes renewing every 10 s are hundreds of writes a second on the plane's two cores)",
    )
    ap.add_argument("--cli-args", nargs=argparse.REMAINDER, default=[], help="more snapshot flags (last)")
    args = ap.parse_args()
    from kubernetes import client
    from kubernetes import config as kube_config

    # A node is NotReady once its Lease is this much older than its last renewal (kcm's default is 50 s).
    grace = f"{max(50, int(4 * args.lease_renew))}s"
    plane = ControlPlane(bin_dir=locate_binaries(), node_monitor_grace_period=grace).start()
    print(
        f"control plane ready in {plane.start_seconds:.1f}s; {os.cpu_count()} CPUs; node Leases renewed every "
        f"{args.lease_renew:g}s (node monitor grace period {grace})",
        flush=True,
    )
    conf = client.Configuration()
    kube_config.load_kube_config(config_file=str(plane.kubeconfig), client_configuration=conf)
    api_client = client.ApiClient(conf)
    api, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    try:
        with tempfile.TemporaryDirectory() as tmp_dir:
            tmp = Path(tmp_dir)
            template = template_snapshot(plane, tmp) if args.simulated else None
            for n in args.nodes:
                name = f"bench{n}"
                nodes = label_nodes([gpu_node(f"{name}-{i:04d}", H100_XML) for i in range(n)], name)
                if args.simulated:
                    for node in nodes:
                        node.labels[SIMULATED_LABEL] = SIMULATED_VALUE
                t0 = time.monotonic()
                kubelet = ProcessKubelet(
                    plane, nodes, name=name, simulated_agent_template=template, lease_renew_s=args.lease_renew
                )
                kubelet.start(timeout=60 + 0.5 * n)
                try:
                    print(f"  {n} nodes registered in {time.monotonic() - t0:.1f}s", flush=True)
                    idle_load(plane, kubelet)
                    for p in args.parallelism or [0]:
                        extra = (["--parallelism", str(p)] if p else []) + list(args.cli_args)
                        measure(plane, kubelet, api, batch, n, tmp / f"f{n}-{p}.yaml", extra)
                finally:
                    kubelet.stop(timeout=60)
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
