"""Reading pod, Job and node state: pure functions that say whether the agent is done, stuck or failed.

They take the API objects as plain dicts (``ApiClient.sanitize_for_serialization`` output or watch event
objects), so unit tests feed them recorded states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kubectl_aicr.deploy.flags import Toleration

#: Container waiting reasons that will not resolve by waiting longer.
FATAL_WAITING = {
    "ErrImagePull": "cannot pull image",
    "ImagePullBackOff": "cannot pull image",
    "InvalidImageName": "invalid image name",
    "ErrImageNeverPull": "image not present and imagePullPolicy is Never",
    "CreateContainerConfigError": "invalid container configuration",
    "CreateContainerError": "container could not be created",
    "RunContainerError": "container could not be started",
    "CrashLoopBackOff": "container keeps crashing",
}


@dataclass(frozen=True)
class PodVerdict:
    """``state`` is a short human description; ``done``/``failure`` say whether waiting is over."""

    state: str
    done: bool = False
    failure: str | None = None
    kind: str = ""  # unschedulable | image | container | pod
    node: str | None = None
    exit_code: int | None = None


def _get(d: Mapping[str, Any] | None, *path: str) -> Any:
    cur: Any = d
    for p in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(p)
    return cur


def pod_verdict(pod: Mapping[str, Any]) -> PodVerdict:
    """Classify one agent pod (camelCase dict)."""
    status = pod.get("status") or {}
    node = _get(pod, "spec", "nodeName")
    phase = status.get("phase") or "Pending"
    statuses = list(status.get("containerStatuses") or []) + list(status.get("initContainerStatuses") or [])
    if phase == "Succeeded":
        return PodVerdict("Succeeded", done=True, node=node, exit_code=0)
    if phase == "Failed":
        for cs in statuses:
            term = _get(cs, "state", "terminated")
            if term and term.get("exitCode", 0) != 0:
                code = term.get("exitCode")
                why = term.get("reason") or "Error"
                msg = (term.get("message") or "").strip()
                text = f"the collector container exited with code {code} ({why})"
                if msg:
                    text += ":\n" + msg
                return PodVerdict("Failed", failure=text, kind="container", node=node, exit_code=code)
        reason = status.get("reason") or "Failed"
        msg = status.get("message") or "the pod failed"
        return PodVerdict("Failed", failure=f"the agent pod failed: {reason}: {msg}", kind="pod", node=node)
    for cs in statuses:
        waiting = _get(cs, "state", "waiting")
        if waiting and waiting.get("reason") in FATAL_WAITING:
            reason = waiting["reason"]
            msg = waiting.get("message") or ""
            image = cs.get("image") or ""
            what = FATAL_WAITING[reason]
            text = f"{reason}: {what} {image!r}" + (f": {msg}" if msg else "")
            return PodVerdict(
                f"Pending ({reason})", failure=text, kind="image" if "mage" in reason else "container", node=node
            )
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return PodVerdict(
                "Pending (Unschedulable)",
                failure=f"the agent pod cannot be scheduled: {cond.get('message') or 'no node fits'}",
                kind="unschedulable",
            )
    if phase == "Running":
        return PodVerdict(f"Running on {node}", node=node)
    if not node:
        return PodVerdict("Pending (waiting for the scheduler)")
    for cs in statuses:
        waiting = _get(cs, "state", "waiting")
        if waiting and waiting.get("reason"):
            return PodVerdict(f"Pending on {node} ({waiting['reason']})", node=node)
    return PodVerdict(f"Pending on {node} (starting)", node=node)


def job_failure(job: Mapping[str, Any]) -> str | None:
    """The reason a Job failed as a whole (deadline, backoff limit), or None."""
    for cond in _get(job, "status", "conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            return f"the agent Job failed: {cond.get('reason') or 'Failed'}: {cond.get('message') or ''}".rstrip(": ")
    return None


def creation_failure(events: Iterable[Mapping[str, Any]]) -> str | None:
    """A ``FailedCreate`` warning on the Job: its pod was refused (quota, Pod Security admission, ...)."""
    newest = None
    for ev in events:
        if ev.get("reason") == "FailedCreate" and ev.get("type") == "Warning":
            newest = ev
    if newest:
        return f"the Job could not create its pod: {newest.get('message')}"
    return None


#: FailedMount messages whose cause waiting cannot fix (the kubelet retries them for ever; other FailedMount
#: events, e.g. a ConfigMap "not registered" yet, clear up by themselves).
PERMANENT_MOUNT_FAILURES = ("hostPath type check failed",)


def start_failure(events: Iterable[Mapping[str, Any]]) -> str | None:
    """A kubelet event on a pod being started that will not clear up: a hostPath that can never be mounted as
    asked (``FailedMount``). The real kubelet reports it only as an event: the pod just stays ContainerCreating."""
    newest = None
    for ev in events:
        msg = ev.get("message") or ""
        if (
            ev.get("reason") == "FailedMount"
            and ev.get("type") == "Warning"
            and any(p in msg for p in PERMANENT_MOUNT_FAILURES)
        ):
            newest = ev
    if newest:
        return f"FailedMount: the agent pod cannot start on this node: {newest.get('message')}"
    return None


def tolerates(tolerations: Iterable[Toleration], taint: Mapping[str, Any]) -> bool:
    effect = taint.get("effect")
    if effect == "PreferNoSchedule":
        return True
    for t in tolerations:
        if t.effect and t.effect != effect:
            continue
        if t.key is None and t.operator == "Exists":
            return True
        if t.key != taint.get("key"):
            continue
        if t.operator == "Exists" or (t.value or "") == (taint.get("value") or ""):
            return True
    return False


@dataclass(frozen=True)
class NodeMatch:
    matching: list[str]
    selected: int  # nodes matching the selector, before taints
    blocked: dict[str, str]  # node -> first taint that blocks it
    total: int


def match_nodes(
    nodes: Iterable[Mapping[str, Any]], selector: Mapping[str, str], tolerations: Iterable[Toleration]
) -> NodeMatch:
    """Which nodes could run the agent, judging by labels, taints and cordoning (not by free resources)."""
    tols = list(tolerations)
    matching: list[str] = []
    blocked: dict[str, str] = {}
    selected = total = 0
    for n in nodes:
        total += 1
        name = _get(n, "metadata", "name")
        labels = _get(n, "metadata", "labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        selected += 1
        taints = list(_get(n, "spec", "taints") or [])
        if _get(n, "spec", "unschedulable"):
            taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
        block = next((t for t in taints if not tolerates(tols, t)), None)
        if block:
            blocked[name] = (
                f"{block.get('key')}{'=' + block['value'] if block.get('value') else ''}:{block.get('effect')}"
            )
        else:
            matching.append(name)
    return NodeMatch(sorted(matching), selected, blocked, total)
