"""Waiting for API objects without sleeps: list + watch until a predicate holds.

    pod = wait_for(core.list_namespaced_pod, "ns1", "my-pod", lambda p: p.status.phase == "Failed", timeout=30)
    job = wait_for(batch.list_namespaced_job, ns, "agent", job_finished)

``wait_for`` raises :class:`WaitTimeout` with the last version seen (so a failing test says what it got).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

from kubernetes import watch

from .patience import patience

Predicate = Callable[[Any], bool]


class WaitTimeout(AssertionError):
    """The object did not reach the expected state in time (``last`` holds the last version seen)."""

    def __init__(self, message: str, last: Any) -> None:
        super().__init__(message)
        self.last = last


def wait_for(
    list_fn: Callable[..., Any],
    namespace: Optional[str],
    name: str,
    predicate: Predicate,
    timeout: float = patience(8),
    what: str = "",
) -> Any:
    """Return the object named ``name`` once ``predicate(obj)`` is true.

    ``list_fn`` is a namespaced list call such as ``CoreV1Api.list_namespaced_pod`` (or a cluster-scoped one
    like ``list_node`` with ``namespace=None``). Deleted objects do not satisfy the predicate.
    """
    deadline = time.monotonic() + timeout
    args = (namespace,) if namespace is not None else ()
    selector = f"metadata.name={name}"
    last: Any = None
    while True:
        listing = list_fn(*args, field_selector=selector)
        if listing.items:
            last = listing.items[0]
            if predicate(last):
                return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        w = watch.Watch()
        try:
            for event in w.stream(
                list_fn,
                *args,
                field_selector=selector,
                resource_version=listing.metadata.resource_version,
                timeout_seconds=max(1, int(remaining)),
            ):
                if event["type"] in ("ADDED", "MODIFIED"):
                    last = event["object"]
                    if predicate(last):
                        w.stop()
                        return last
                if time.monotonic() > deadline:
                    w.stop()
        except Exception:  # noqa: BLE001 - e.g. 410 Gone: relist
            pass
        if time.monotonic() > deadline:
            break
    raise WaitTimeout(f"{what or name}: condition not met within {timeout:.0f}s; last seen: {_brief(last)}", last)


def wait_gone(read_fn: Callable[..., Any], namespace: Optional[str], name: str, timeout: float = patience(8)) -> None:
    """Poll (0.1 s) until ``read_fn(name[, namespace])`` answers 404."""
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    args = (name, namespace) if namespace is not None else (name,)
    while True:
        try:
            read_fn(*args)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if time.monotonic() > deadline:
            raise WaitTimeout(f"{name} still exists after {timeout:.0f}s", None)
        time.sleep(0.1)


def job_finished(job: Any) -> bool:
    """True once a Job has a Complete or Failed condition with status True."""
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or []))


def _brief(obj: Any) -> str:
    status = getattr(obj, "status", None)
    return str(status)[:3000] if status is not None else repr(obj)[:300]
