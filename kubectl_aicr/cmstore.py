"""Snapshots stored in ConfigMaps (``cm://namespace/name``), in the original tool's layout.

``data``: ``snapshot.yaml`` (or ``snapshot.json``), ``format`` and ``timestamp``; labels
``app.kubernetes.io/name: aicr`` and ``app.kubernetes.io/component: Snapshot``. A document too large for a
ConfigMap's data is gzip-compressed into ``binaryData`` (``snapshot.yaml.gz``); one that does not fit even then
is refused with a clear error - never truncated.
"""

from __future__ import annotations

import datetime as _dt
import gzip
from typing import Any

from kubectl_aicr import __version__
from kubectl_aicr.errors import InvalidInput, NotFound
from kubectl_aicr.kube import Kube, raise_api_error
from kubectl_aicr.snapshot_io import ConfigMapRef

#: The API server refuses objects over 1 MiB; keep room for metadata.
CM_PAYLOAD_LIMIT = 1024 * 1024 - 16 * 1024
SNAPSHOT_KEYS = ("snapshot.yaml", "snapshot.json")

BASE_LABELS = {
    "app.kubernetes.io/name": "aicr",
    "app.kubernetes.io/component": "Snapshot",
    "app.kubernetes.io/version": __version__,
    "app.kubernetes.io/managed-by": "kubectl-aicr",
}


def encode(text: str, fmt: str) -> tuple[dict[str, str], dict[str, str]]:
    """(data, binaryData) for a snapshot text, compressing when it would not fit. Pure; raises when too big."""
    import base64

    key = f"snapshot.{fmt}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    raw = text.encode("utf-8")
    meta = {"format": fmt, "timestamp": now}
    if len(raw) <= CM_PAYLOAD_LIMIT:
        return {key: text, **meta}, {}
    packed = gzip.compress(raw, compresslevel=9, mtime=0)
    b64 = base64.b64encode(packed).decode("ascii")
    if len(b64) > CM_PAYLOAD_LIMIT:
        raise InvalidInput(
            f"the snapshot is {len(raw):,} bytes ({len(packed):,} gzip-compressed); a ConfigMap holds at most "
            f"{CM_PAYLOAD_LIMIT:,} bytes",
            hint="write it to a file or stdout instead (-o FILE), or narrow what is collected",
        )
    return {**meta, "encoding": "gzip"}, {key + ".gz": b64}


def decode(data: dict[str, str] | None, binary: dict[str, str] | None, *, source: str) -> bytes:
    """The snapshot bytes stored in a ConfigMap's data/binaryData."""
    import base64

    data = data or {}
    binary = binary or {}
    fmt = data.get("format", "yaml")
    order = [f"snapshot.{fmt}"] + [k for k in SNAPSHOT_KEYS if k != f"snapshot.{fmt}"]
    for key in order:
        if key in data:
            return data[key].encode("utf-8")
        if key + ".gz" in binary:
            try:
                return gzip.decompress(base64.b64decode(binary[key + ".gz"]))
            except (OSError, ValueError) as e:
                raise InvalidInput(f"{source}: {key}.gz is not valid gzip data: {e}") from None
    keys = ", ".join(sorted(list(data) + list(binary))) or "none"
    raise NotFound(f"{source}: the ConfigMap holds no snapshot (keys: {keys}; expected snapshot.yaml or snapshot.json)")


def read(kube: Kube, ref: ConfigMapRef) -> bytes:
    from kubernetes.client.exceptions import ApiException

    try:
        cm = kube.core.read_namespaced_config_map(ref.name, ref.namespace, _request_timeout=kube.request_timeout)
    except ApiException as e:
        if e.status == 404:
            raise NotFound(f"{ref}: ConfigMap {ref.name!r} not found in namespace {ref.namespace!r}") from None
        raise_api_error(e, action=f"reading {ref}", server=kube.server)
    except Exception as e:  # network errors
        raise_api_error(e, action=f"reading {ref}", server=kube.server)
    return decode(cm.data, cm.binary_data, source=str(ref))


def write(kube: Kube, ref: ConfigMapRef, text: str, fmt: str, *, labels: dict[str, str] | None = None) -> None:
    """Create the ConfigMap, or replace it whole when it exists (no stale keys survive)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    data, binary = encode(text, fmt)
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=ref.name, namespace=ref.namespace, labels={**BASE_LABELS, **(labels or {})}),
        data=data,
        binary_data=binary or None,
    )
    action = f"writing {ref}"
    try:
        kube.core.create_namespaced_config_map(ref.namespace, body, _request_timeout=kube.request_timeout)
        return
    except ApiException as e:
        if e.status != 409:
            raise_api_error(e, action=action, server=kube.server)
    except Exception as e:
        raise_api_error(e, action=action, server=kube.server)
    try:
        kube.core.replace_namespaced_config_map(ref.name, ref.namespace, body, _request_timeout=kube.request_timeout)
    except Exception as e:
        raise_api_error(e, action=action, server=kube.server)


def cm_reader(kube_factory: Any) -> Any:
    """A :data:`kubectl_aicr.snapshot_io.CMReader` that connects on first use."""
    state: dict[str, Kube] = {}

    def _read(ref: ConfigMapRef) -> bytes:
        if "kube" not in state:
            state["kube"] = kube_factory()
        return read(state["kube"], ref)

    return _read


def patch_into(kube: Kube, ref: ConfigMapRef, text: str, fmt: str) -> None:
    """Fill a ConfigMap that already exists (the agent's pre-created staging ConfigMap).

    A merge patch keeps its labels and ownerReference, and needs only ``patch`` on that one object.
    """
    data, binary = encode(text, fmt)
    body: dict[str, Any] = {"data": data}
    if binary:
        body["binaryData"] = binary
    try:
        kube.core.patch_namespaced_config_map(ref.name, ref.namespace, body, _request_timeout=kube.request_timeout)
    except Exception as e:
        raise_api_error(e, action=f"writing the snapshot into {ref}", server=kube.server)
