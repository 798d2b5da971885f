"""The process kubelet's *simulated agent*: a cheap stand-in for ``kubectl-aicr agent`` to measure fleets.

Running the real collector as one Python process per node costs seconds of CPU per node; at 1,000 nodes on a
small machine that measures the machine, not the plane and the CLI. A node labelled
``aicr.test/agent=simulated`` (:data:`SIMULATED_LABEL`) runs agent containers (argv ``... agent --output cm://...
--run-id ...``) as a thread inside the kubelet instead, which does what the real agent does on the API:

1. polls its staging ConfigMap until the CLI handed over the node facts (``GET`` every 0.25 s, 60 s at most),
2. writes a pre-collected snapshot (the kubelet config's ``simulated_agent_template``: a snapshot file, or a
SnapshotList whose first item is taken) into
   it with one ``PATCH`` (:func:`kubectl_aicr.cmstore.patch_body`, as the agent writes it: the facts key dropped),
   varied per node: ``source-node``, ``run-id``, ``timestamp`` and every string naming the template's node,
3. logs the same two lines the agent logs, the last being the write receipt the CLI verifies
   (:mod:`kubectl_aicr.deploy.verify`), and exits 0 (1 with the error in the log when a step fails).

:class:`SimulatedProcess` looks enough like :class:`subprocess.Popen` (``pid``, ``poll``, ``wait``,
``terminate``) for the pod worker; it has no process group, so nothing is ever signalled on its behalf.
"""

from __future__ import annotations

import copy
import datetime as _dt
import itertools
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Optional

from kubernetes.client import CoreV1Api

from .rawapi import call_json

SIMULATED_LABEL = "aicr.test/agent"
SIMULATED_VALUE = "simulated"
FACTS_KEY = "node-facts.json"
FACTS_WAIT_S = 60.0
POLL_S = 0.25
#: Fake pids for containerID ``proc://N``: far above any real pid, never signalled.
_PIDS = itertools.count(10_000_000)


def is_agent(argv: list[str]) -> bool:
    return "agent" in argv and any(a.startswith("cm://") for a in argv)


def _arg(argv: list[str], *names: str) -> str:
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a[len(n) + 1 :]
    return ""


def load_template(path: Path) -> dict[str, Any]:
    from kubectl_aicr import snapshot_io

    doc = snapshot_io.parse_document(path.read_bytes(), source=str(path))
    if doc.get("kind") == "SnapshotList":  # a fleet run's output: its first node's snapshot
        doc = doc["items"][0]
    return doc


def _replace_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new) if old and old in value else value
    if isinstance(value, dict):
        return {k: _replace_strings(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_strings(v, old, new) for v in value]
    return value


def node_document(template: dict[str, Any], node: str, run_id: str) -> dict[str, Any]:
    """The template as node ``node`` of run ``run_id`` would have written it. Pure but for the timestamp."""
    meta = template.get("metadata") or {}
    doc = _replace_strings(copy.deepcopy(template), str(meta.get("source-node") or ""), node)
    doc["metadata"]["source-node"] = node
    doc["metadata"]["run-id"] = run_id
    doc["metadata"]["mode"] = "agent"
    doc["metadata"]["timestamp"] = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return doc


class SimulatedProcess:
    """One simulated agent container (see the module docstring); its output goes to ``log``."""

    def __init__(self, api: CoreV1Api, argv: list[str], node: str, log: Path, template: dict[str, Any]) -> None:
        self.api, self.argv, self.node, self.log, self.template = api, argv, node, log, template
        self.pid = next(_PIDS)
        self.returncode: Optional[int] = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"simagent-{node}", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- Popen-like
    def poll(self) -> Optional[int]:
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: Optional[float] = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.argv, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        self._stop.set()

    kill = terminate

    # -------------------------------------------------------------- the agent's API work
    def _say(self, line: str) -> None:
        with open(self.log, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _run(self) -> None:
        rc = 1
        try:
            rc = self._agent()
        except Exception as exc:  # noqa: BLE001 - the container's error, in its log
            self._say(f"[agent] simulated agent failed: {exc!r}")
        finally:
            self.returncode = 143 if self._stop.is_set() and rc != 0 else rc
            self._done.set()

    def _agent(self) -> int:
        from kubectl_aicr import snapshot_io
        from kubectl_aicr.cmstore import patch_body
        from kubectl_aicr.deploy import verify

        location = _arg(self.argv, "--output", "-o")
        run_id = _arg(self.argv, "--run-id")
        ns, name = location[len("cm://") :].split("/", 1)
        facts_rv = ""
        end = time.monotonic() + FACTS_WAIT_S
        while not self._stop.is_set():
            cm = call_json(self.api.read_namespaced_config_map, name, ns)
            if FACTS_KEY in (cm.get("data") or {}):
                facts_rv = str(cm["metadata"]["resourceVersion"])
                break
            if time.monotonic() >= end:
                self._say(f"[agent] no node facts in {location} after {FACTS_WAIT_S:g}s; reading the API directly")
                break
            self._stop.wait(POLL_S)
        if self._stop.is_set():
            return 143
        doc = node_document(self.template, self.node, run_id)
        text = snapshot_io.dumps(doc, "yaml")
        cm = call_json(self.api.patch_namespaced_config_map, name, ns, patch_body(text, "yaml", drop=(FACTS_KEY,)))
        self._say(f"[agent] snapshot of {self.node} stored in {location} ({len(text):,} bytes) (simulated)")
        receipt = verify.Receipt(
            uid=str(cm["metadata"]["uid"]),
            resource_version=str(cm["metadata"]["resourceVersion"]),
            sha256=verify.digest(text.encode("utf-8")),
            facts_resource_version=facts_rv,
            node=self.node,
            run_id=run_id,
        )
        self._say(verify.receipt_line(receipt))
        return 0
