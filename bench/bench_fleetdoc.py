#!/usr/bin/env python3
"""The CLI's memory for a fleet's SnapshotList at 1,000 nodes, against issue #16's goal (<= 1 GB peak).

Two ways to turn 1,000 fetched node snapshots into the ``-o`` file, each in a child process of its own (peak RSS
measured by GNU time, so this process's memory is not counted):

* ``list``: the whole-list path the fleet run had: every node parsed and validated, kept in a list,
  ``snapshot_list`` + ``validate``, ``formats.convert`` when ``--api-version`` differs, ``snapshot_io.save``;
* ``stream``: :mod:`kubectl_aicr.fleetdoc`: every node parsed and validated, ``FleetDocument.add`` (a compressed
  copy), ``fleetdoc.deliver`` (checked without the whole list, written one node at a time).

The nodes are :func:`tests.controlplane.simagent.node_document` of a real fixture snapshot (``node-a.yaml``: what
the simulated agents write, one identity per node), padded to ``--node-kb`` (default 300: issue #16's 200-400 KB)
with sysctl-like readings whose values differ per node; each is handed over as the JSON bytes an agent would write.
Printed per format: peak RSS (goal, ratio), time to take the nodes in and time to write, and whether the two
outputs are byte-identical; then what one node costs in the item store at a few zlib levels.

Usage: ``python bench/bench_fleetdoc.py [--nodes 1000] [--node-kb 300] [--formats json,yaml]
[--api-version aicr.nvidia.com/v1alpha1]``. Exits 1 when the streamed path misses the goal or the outputs differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

GOAL_MB = 1024.0
TEMPLATE = Path(ROOT) / "tests" / "fixtures" / "snapshots" / "node-a.yaml"
META = {"timestamp": "2026-03-22T10:00:00Z", "version": "bench", "run-id": "bench", "node-selector": ""}


def template(node_kb: float) -> dict[str, Any]:
    """The fixture snapshot, padded with sysctl-like readings (values filled per node by :func:`node_raw`)."""
    from tests.controlplane.simagent import load_template

    doc = load_template(TEMPLATE)
    size = len(json.dumps(doc))
    pad = {
        f"/proc/sys/net/ipv4/conf/pad{i // 40}/key{i % 40}": "" for i in range(max(0, int(node_kb * 1000) - size) // 50)
    }
    for m in doc["measurements"]:
        if m["type"] == "OS":
            for sub in m["subtypes"]:
                if sub["subtype"] == "sysctl":
                    sub["data"].update(pad)
    return doc


def node_raw(tmpl: dict[str, Any], i: int) -> bytes:
    """Node ``i``'s snapshot as the agent hands it over (JSON bytes): the simulated agent's per-node variation,
    a fixed timestamp (so both paths see the same bytes) and the padding's values varied per node."""
    from tests.controlplane.simagent import node_document

    doc = node_document(tmpl, f"gpu-node-{i:04d}", "bench")
    doc["metadata"]["timestamp"] = META["timestamp"]
    for m in doc["measurements"]:
        if m["type"] == "OS":
            for sub in m["subtypes"]:
                if sub["subtype"] == "sysctl":
                    data = sub["data"]
                    for n, k in enumerate(data):
                        if k.startswith("/proc/sys/net/ipv4/conf/pad"):
                            data[k] = str(zlib.crc32(f"{i}/{n}".encode()) % 1_000_000)
    return json.dumps(doc).encode()


def child(mode: str, nodes: int, node_kb: float, fmt: str, api: str, out: str) -> None:
    """One measured run (in its own process): take the nodes in, then write ``out``; prints its timings as JSON."""
    from kubectl_aicr import fleetdoc, formats, snapshot_io
    from kubectl_aicr.schema import validate

    tmpl = template(node_kb)
    dest = snapshot_io.FilePath(out)
    t_in = 0.0
    docs: list[dict[str, Any]] = []
    fleet = fleetdoc.FleetDocument(api_version=api)
    for i in range(nodes):
        raw = node_raw(tmpl, i)  # generating the node is not counted: the run fetches it
        t0 = time.perf_counter()
        source = f"agent snapshot from gpu-node-{i:04d}"
        doc = validate(snapshot_io.parse_document(raw, source=source), source=source)
        if mode == "list":
            docs.append(doc)
        else:
            fleet.add(raw, doc)
        del doc
        t_in += time.perf_counter() - t0
    t0 = time.perf_counter()
    if mode == "list":
        from collector.model import snapshot_list

        whole: dict[str, Any] = snapshot_list(docs, META)
        validate(whole, source=fleetdoc.LIST_SOURCE)
        if api != formats.detect(whole):
            whole = validate(formats.convert(whole, api), source=f"snapshot written as {api}")
        snapshot_io.save(whole, dest, fmt)
    else:
        fleetdoc.deliver(fleet, META, dest, fmt)
    t_out = time.perf_counter() - t0
    print(json.dumps({"in": t_in, "out": t_out, "held": fleet.held_bytes, "fetched": fleet.fetched_bytes}))


def measure(mode: str, a: argparse.Namespace, fmt: str, out: str) -> tuple[dict[str, Any], float]:
    """(the child's timings, its peak RSS in MB), measured by GNU time: the CLI-like child's own figure (a child
    forked from this process would start as a copy of it, and its peak would count this process's memory)."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-fleetdoc-time-") as rss_file:
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file.name, sys.executable, __file__, "--child", mode]
        cmd += ["--nodes", str(a.nodes), "--node-kb", str(a.node_kb), "--formats", fmt]
        cmd += ["--api-version", a.api_version, "--out", out]
        r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
        if r.returncode != 0:
            raise SystemExit(f"{mode} child failed with exit {r.returncode}")
        kb = int(rss_file.read().strip().splitlines()[-1])
    return json.loads(r.stdout.strip().splitlines()[-1]), kb / 1024


def digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stores(node_kb: float) -> None:
    """What one node costs in the item store (compact JSON, zlib at a few levels), and 1,000 of them."""
    from kubectl_aicr import fleetdoc

    doc = json.loads(node_raw(template(node_kb), 1))
    for level in (0, 1, 6):
        t0 = time.perf_counter()
        for _ in range(10):
            blob = zlib.compress(fleetdoc._encode(doc), level)
        t1 = time.perf_counter()
        for _ in range(10):
            fleetdoc._decode(zlib.decompress(blob))
        t2 = time.perf_counter()
        print(
            f"  store json zlib {level}: {len(blob) / 1000:6.1f} KB a node ({len(blob) / 1000:5.0f} MB for 1,000), "
            f"add {(t1 - t0) * 100:5.2f} ms, read back {(t2 - t1) * 100:5.2f} ms"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--node-kb", type=float, default=300.0, help="pad each node's snapshot to about this size")
    ap.add_argument("--formats", default="json,yaml", help="comma-separated: json, yaml")
    ap.add_argument("--api-version", default="aicr.nvidia.com/v1alpha1")
    ap.add_argument("--child", choices=("list", "stream"), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child, a.nodes, a.node_kb, a.formats, a.api_version, a.out)
        return 0
    size = len(node_raw(template(a.node_kb), 0)) / 1000
    print(
        f"fleet: {a.nodes:,} nodes of {size:.0f} KB JSON, written as {a.api_version}; {os.cpu_count()} CPUs; "
        f"load {os.getloadavg()[0]:.1f}"
    )
    missed = False
    with tempfile.TemporaryDirectory(prefix="bench-fleetdoc-") as tmp:
        for fmt in a.formats.split(","):
            digests = {}
            for mode in ("list", "stream"):
                out = os.path.join(tmp, f"{mode}.{fmt}")
                t, rss = measure(mode, a, fmt, out)
                digests[mode] = digest(out)
                held = f", items held {t['held'] / 1e6:.0f} MB" if mode == "stream" else ""
                mb = os.path.getsize(out) / 1e6
                print(
                    f"  {fmt:<4} {mode:<6}: peak {rss:6.0f} MB (goal {GOAL_MB:g} MB, ratio {rss / GOAL_MB:.2f}), "
                    f"take in {t['in']:6.2f} s, write {t['out']:6.2f} s{held}, output {mb:.0f} MB"
                )
                if mode == "stream":
                    missed |= rss > GOAL_MB
                os.unlink(out)
            same = digests["list"] == digests["stream"]
            print(f"  {fmt:<4} outputs byte-identical: {'yes' if same else 'NO'}")
            missed |= not same
    stores(a.node_kb)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
