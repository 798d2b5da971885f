#!/usr/bin/env python3
"""The agent process's own cost: CPU (user+sys) and peak RSS of ``kubectl-aicr agent`` on a fake 8x H100 node.

    python bench/bench_agent.py              # 5 snapshot runs
    python bench/bench_agent.py --runs 9

Starts the real control plane (tests/controlplane, binaries from build-binaries.sh) and a process kubelet with
one fake 8x H100 node, then runs ``kubectl-aicr snapshot`` against it. The agent pod runs the real
``kubectl-aicr agent`` as a local process; a ``kubectl-aicr`` first on the node's PATH (the node's ``bin``, where
its fake nvidia-smi lives) runs this checkout's under ``/usr/bin/time``, which records the agent's CPU seconds (its
own and those of the commands it runs: the fake nvidia-smi is a Python script) and maximum resident set size; the
agent's own share is noted at its exit. Prints every run, then the medians with the goal (issue #15: 0.4 s, 60 MB)
and the ratio to it. Exits 1 when a median misses its goal. Needs ``/usr/bin/time`` (GNU time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.controlplane.cluster import ControlPlane, locate_binaries  # noqa: E402
from tests.controlplane.files import write_atomic  # noqa: E402
from tests.controlplane.handle import ProcessKubelet  # noqa: E402
from tests.controlplane.nodes import H100_XML, gpu_node  # noqa: E402
from tests.controlplane.testkit import LOCAL_AGENT_IMAGE, label_nodes  # noqa: E402

GOAL_CPU_S = 0.4
GOAL_RSS_MB = 60.0
GNU_TIME = "/usr/bin/time"


#: Run as the agent's ``kubectl-aicr``: the CLI's entry point, and at exit one line of this process's own CPU seconds
#: and those of the child processes it waited for (nvidia-smi, systemctl...), appended to the file in argv[1].
LAUNCHER = """import atexit, resource, sys
record = sys.argv.pop(1)
def note():
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(record, "a") as f:
        f.write(f"{me.ru_utime + me.ru_stime:.3f} {kids.ru_utime + kids.ru_stime:.3f}\\n")
atexit.register(note)
from kubectl_aicr.cli import main
sys.exit(main())
"""


def wrap_agent(kubelet: ProcessKubelet, node: str, record: Path) -> None:
    """Put a ``kubectl-aicr`` on the node's PATH that runs this checkout's (as the console script does) under
    GNU time, appending ``user sys maxrss_kb`` to ``record`` and ``own_cpu children_cpu`` to ``record.split``."""
    launcher = record.with_name("launcher.py")
    write_atomic(launcher, LAUNCHER)
    script = (
        f'#!/bin/sh\nPYTHONPATH={REPO} exec {GNU_TIME} -a -o {record} -f "%U %S %M" {sys.executable} '
        f'{launcher} {record}.split "$@"\n'
    )
    write_atomic(kubelet.workdir / "nodes" / node / "bin" / "kubectl-aicr", script, mode=0o755)


def snapshot(plane: ControlPlane, node: str, out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBECONFIG")}
    env["KUBECONFIG"] = str(plane.kubeconfig)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubectl_aicr",
            "snapshot",
            "--node-selector",
            f"kubernetes.io/hostname={node}",
            "--image",
            LOCAL_AGENT_IMAGE,
            "--timeout",
            "5m",
            "-o",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"snapshot failed ({r.returncode}):\n{r.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} (GNU time) is needed to measure the agent process")
    plane = ControlPlane(bin_dir=locate_binaries()).start()
    print(f"control plane ready in {plane.start_seconds:.1f}s; {os.cpu_count()} CPUs", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="aicr-bench-agent-") as tmp:
            record = Path(tmp) / "agent-time.txt"
            node = "bench-h100-1"
            with ProcessKubelet(
                plane, label_nodes([gpu_node(node, H100_XML)], "benchagent"), name="benchagent"
            ) as kubelet:
                wrap_agent(kubelet, node, record)
                for i in range(args.runs):
                    snapshot(plane, node, Path(tmp) / f"snap-{i}.yaml")
            rows = [
                tuple(float(x) for x in line.split())
                for line in record.read_text().splitlines()
                if line.strip() and not line.startswith("Command")
            ]
            split = [tuple(float(x) for x in line.split()) for line in Path(f"{record}.split").read_text().splitlines()]
    finally:
        plane.stop()
    if len(rows) != args.runs or len(split) != args.runs:
        raise SystemExit(f"expected {args.runs} agent records, found {len(rows)} and {len(split)}")
    cpus = [u + s for u, s, _ in rows]
    rss = [kb / 1024 for _, _, kb in rows]
    for i, ((u, s, kb), (own, kids)) in enumerate(zip(rows, split)):
        print(
            f"run {i + 1}: agent CPU {u + s:.2f}s (user {u:.2f} sys {s:.2f}; the Python process itself {own:.2f}s, "
            f"the commands it ran {kids:.2f}s), max RSS {kb / 1024:.1f} MB"
        )
    cpu, mem = statistics.median(cpus), statistics.median(rss)
    own = statistics.median(o for o, _ in split)
    print(
        f"agent CPU  median {cpu:.2f}s   goal {GOAL_CPU_S:.2f}s   ratio {cpu / GOAL_CPU_S:.2f}"
        f"   (the Python process alone: {own:.2f}s, ratio {own / GOAL_CPU_S:.2f})"
    )
    print(
        f"agent RSS  median {mem:.1f} MB  goal {GOAL_RSS_MB:.0f} MB    ratio {mem / GOAL_RSS_MB:.2f}"
        f"   (largest {max(rss):.1f} MB)"
    )
    return 0 if cpu <= GOAL_CPU_S and mem <= GOAL_RSS_MB else 1


if __name__ == "__main__":
    sys.exit(main())
