"""How long ``snapshot --all-nodes`` takes as the node count and --parallelism grow, on the local control plane.

    python bench/bench_fleet.py                 # default matrix
    python bench/bench_fleet.py --nodes 20 --parallelism 1 4 8

Starts the real control plane (tests/controlplane, binaries from build-binaries.sh) and a process kubelet with
fake 8x H100 nodes; every agent pod runs the real collector (``kubectl-aicr agent``) as a local process.
Prints one line per run: nodes, parallelism, wall seconds, seconds per node.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.controlplane.cluster import ControlPlane, locate_binaries  # noqa: E402
from tests.controlplane.handle import ProcessKubelet  # noqa: E402
from tests.controlplane.nodes import H100_XML, gpu_node  # noqa: E402
from tests.controlplane.testkit import LOCAL_AGENT_IMAGE, label_nodes  # noqa: E402


def run(plane: ControlPlane, kubelet: str, parallelism: int, out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    env["KUBECONFIG"] = str(plane.kubeconfig)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "kubectl_aicr", "snapshot", "--all-nodes", "--node-selector",
                        f"aicr.test/kubelet={kubelet}", "--parallelism", str(parallelism), "--image", LOCAL_AGENT_IMAGE,
                        "--timeout", "10m", "-o", str(out)], cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"run failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="*", default=[5, 10, 20, 40])
    ap.add_argument("--parallelism", type=int, nargs="*", default=[8])
    ap.add_argument("--scan-parallelism-at", type=int, default=20,
                    help="also run this node count with parallelism 1, 2, 4, 8, N (0: skip)")
    args = ap.parse_args()
    plane = ControlPlane(bin_dir=locate_binaries()).start()
    print(f"control plane ready in {plane.start_seconds:.1f}s; {os.cpu_count()} CPUs", flush=True)
    rows: list[tuple[int, int, float]] = []
    try:
        matrix = [(n, p) for n in args.nodes for p in args.parallelism]
        s = args.scan_parallelism_at
        if s:
            matrix += [(s, p) for p in (1, 2, 4, 8, s) if (s, p) not in matrix]
        by_nodes: dict[int, list[int]] = {}
        for n, p in matrix:
            by_nodes.setdefault(n, []).append(p)
        with tempfile.TemporaryDirectory() as tmp:
            for n, ps in by_nodes.items():
                name = f"bench{n}"
                nodes = label_nodes([gpu_node(f"{name}-{i:03d}", H100_XML) for i in range(n)], name)
                with ProcessKubelet(plane, nodes, name=name) as _:
                    for p in ps:
                        secs = run(plane, name, p, Path(tmp) / f"f{n}-{p}.yaml")
                        rows.append((n, p, secs))
                        print(f"nodes={n:3d} parallelism={p:3d} wall={secs:6.1f}s per-node={secs / n:5.2f}s", flush=True)
    finally:
        plane.stop()


if __name__ == "__main__":
    main()
