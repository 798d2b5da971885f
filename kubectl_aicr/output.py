"""Deprecated: :func:`kubectl_aicr.snapshot_io.save` delivers a snapshot to ``-o`` (stdout, a file or a ConfigMap),
as :func:`kubectl_aicr.snapshot_io.load` reads one. Kept until its last callers (``commands/snapshot.py``,
``commands/agent.py``) call ``save``; then this module goes."""

from __future__ import annotations

from typing import Any, Callable

from kubectl_aicr import snapshot_io
from kubectl_aicr.kube import Kube
from kubectl_aicr.snapshot_io import Location


def deliver(doc: dict[str, Any], dest: Location, fmt: str, *, kube_factory: Callable[[], Kube] | None = None) -> str:
    """``snapshot_io.save(doc, dest, fmt, connect=kube_factory)``."""
    return snapshot_io.save(doc, dest, fmt, connect=kube_factory)
