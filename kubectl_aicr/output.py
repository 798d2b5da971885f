"""Delivering a finished snapshot to ``-o``: stdout, a file (atomically) or a ConfigMap."""

from __future__ import annotations

import sys
from typing import Any, Callable

from kubectl_aicr import snapshot_io
from kubectl_aicr.kube import Kube
from kubectl_aicr.snapshot_io import ConfigMapRef, FilePath, Location, Stdio


def deliver(doc: dict[str, Any], dest: Location, fmt: str, *, kube_factory: Callable[[], Kube] | None = None) -> str:
    """Serialise and write; returns a short description of where it went."""
    text = snapshot_io.dumps(doc, fmt)
    if isinstance(dest, Stdio):
        sys.stdout.write(text)
        sys.stdout.flush()
        return "stdout"
    if isinstance(dest, FilePath):
        snapshot_io.write_file_atomic(dest.path, text)
        return dest.path
    assert isinstance(dest, ConfigMapRef)
    from kubectl_aicr import cmstore

    if kube_factory is None:
        raise RuntimeError("writing a ConfigMap needs a cluster connection")
    cmstore.write(kube_factory(), dest, text, fmt)
    return str(dest)
