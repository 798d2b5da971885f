"""Snapshots stored in ConfigMaps (``cm://namespace/name``), in the original tool's layout.

``data``: ``snapshot.yaml`` (or ``snapshot.json``), ``format`` and ``timestamp``; labels
``app.kubernetes.io/name: aicr`` and ``app.kubernetes.io/component: Snapshot``. A document too large for a
ConfigMap's data is gzip-compressed into ``binaryData`` (``snapshot.yaml.gz``); one that does not fit even then
is refused with a clear error - never truncated.

Every request goes through :meth:`kubectl_aicr.kube.Kube.call`, so failures arrive as our error types (a missing
ConfigMap is :class:`~kubectl_aicr.errors.NotFound`, one that exists or changed is
:class:`~kubectl_aicr.errors.Conflict`). Reading and writing a location (file, ``-`` or ``cm://``) is
:func:`kubectl_aicr.snapshot_io.load` / :func:`kubectl_aicr.snapshot_io.save`, which come here for ``cm://``.
"""

from __future__ import annotations

import gzip
from typing import Any

from collector.model import now_rfc3339
from kubectl_aicr import __version__
from kubectl_aicr.errors import AicrError, Conflict, InvalidInput, NotFound
from kubectl_aicr.kube import Kube
from kubectl_aicr.locations import ConfigMapRef

#: The API server refuses objects over 1 MiB; keep room for metadata.
CM_PAYLOAD_LIMIT = 1024 * 1024 - 16 * 1024
SNAPSHOT_KEYS = ("snapshot.yaml", "snapshot.json")

#: Most bytes a ConfigMap's gzip-compressed snapshot may inflate to (1 MB of gzip can hold 1 GB): memory stays below
#: this plus one step. Snapshots compress 10-20x, so what fits in a ConfigMap inflates to far less.
MAX_INFLATED_BYTES = 50 * 1024 * 1024

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
    now = now_rfc3339()
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
    """The snapshot bytes stored in a ConfigMap's data/binaryData. Compressed data is inflated in bounded steps and
    refused as soon as it would pass the largest snapshot read (1 MB of gzip can hold 1 GB), so memory stays below
    that limit plus one step."""
    import base64
    import zlib

    def gunzip(packed: bytes, where: str) -> bytes:
        out = bytearray()
        rest = packed
        try:
            while True:  # one gzip member per round, as gzip.decompress reads them
                d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                chunk = rest
                while not d.eof:
                    out += d.decompress(chunk, MAX_INFLATED_BYTES + 1 - len(out))
                    if len(out) > MAX_INFLATED_BYTES:
                        raise InvalidInput(
                            f"{where}: decompresses to more than the {MAX_INFLATED_BYTES:,}-byte "
                            "limit for a snapshot; refusing it"
                        )
                    chunk = d.unconsumed_tail
                    if not chunk and not d.eof:
                        raise InvalidInput(f"{where} is not valid gzip data: it ends early")
                rest = d.unused_data
                if not rest.strip(b"\0"):
                    return bytes(out)
        except (zlib.error, ValueError) as e:
            raise InvalidInput(f"{where} is not valid gzip data: {e}") from None

    data = data or {}
    binary = binary or {}
    fmt = data.get("format", "yaml")
    order = [f"snapshot.{fmt}"] + [k for k in SNAPSHOT_KEYS if k != f"snapshot.{fmt}"]
    for key in order:
        if key in data:
            return data[key].encode("utf-8")
        if key + ".gz" in binary:
            try:
                packed = base64.b64decode(binary[key + ".gz"])
            except ValueError as e:
                raise InvalidInput(f"{source}: {key}.gz is not valid base64: {e}") from None
            return gunzip(packed, f"{source}: {key}.gz")
    keys = ", ".join(sorted(list(data) + list(binary))) or "none"
    raise NotFound(f"{source}: the ConfigMap holds no snapshot (keys: {keys}; expected snapshot.yaml or snapshot.json)")


def read_object(kube: Kube, ref: ConfigMapRef) -> Any:
    """The ConfigMap itself (a ``V1ConfigMap``); :class:`NotFound` when it does not exist."""
    try:
        return kube.call(kube.core.read_namespaced_config_map, ref.name, ref.namespace, action=f"reading {ref}")
    except NotFound:
        raise NotFound(f"{ref}: ConfigMap {ref.name!r} not found in namespace {ref.namespace!r}") from None


def read(kube: Kube, ref: ConfigMapRef) -> bytes:
    cm = read_object(kube, ref)
    return decode(cm.data, cm.binary_data, source=str(ref))


#: Every key a ConfigMap written by :func:`write` (or an agent's staging ConfigMap) can hold.
OUR_DATA_KEYS = frozenset(SNAPSHOT_KEYS) | {"format", "timestamp", "encoding", "node-facts.json"}
OUR_BINARY_KEYS = frozenset(k + ".gz" for k in SNAPSHOT_KEYS)


def is_our_snapshot(labels: dict[str, str] | None, data_keys: Any, binary_keys: Any) -> bool:
    """Whether an existing ConfigMap is one of our snapshots, which ``-o cm://`` may replace: our
    name/component labels and no key we would not write. Pure."""
    labels = labels or {}
    if labels.get("app.kubernetes.io/name") != "aicr" or labels.get("app.kubernetes.io/component") != "Snapshot":
        return False
    return set(data_keys or ()) <= OUR_DATA_KEYS and set(binary_keys or ()) <= OUR_BINARY_KEYS


def refuse_foreign(ref: ConfigMapRef, cm: Any) -> None:
    """Raise when ``cm`` (an existing V1ConfigMap at ``ref``) is not one of our snapshots."""
    if is_our_snapshot(cm.metadata.labels, cm.data, cm.binary_data):
        return
    keys = sorted(list(cm.data or {}) + list(cm.binary_data or {}))
    shown = ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "") if keys else "none"
    raise InvalidInput(
        f"{ref} exists and is not a kubectl-aicr snapshot (keys: {shown}); refusing to replace it",
        hint="choose another name, or pass --overwrite to replace it",
    )


def check_replaceable(kube: Kube, ref: ConfigMapRef) -> None:
    """Before a run: fail early when ``-o cm://`` names a ConfigMap that is not ours (nothing created yet)."""
    try:
        cm = read_object(kube, ref)
    except AicrError:
        return  # missing (it will be created), or no permission to read it (or the like): the write itself will say
    refuse_foreign(ref, cm)


def write(
    kube: Kube, ref: ConfigMapRef, text: str, fmt: str, *, labels: dict[str, str] | None = None, overwrite: bool = False
) -> None:
    """Create the ConfigMap, or replace it whole when it exists (no stale keys survive) - but only when it is
    one of our snapshots, unless ``overwrite``. The replacement is conditional on the resourceVersion read,
    so a ConfigMap changed in between is not clobbered."""
    from kubernetes import client

    data, binary = encode(text, fmt)
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=ref.name, namespace=ref.namespace, labels={**BASE_LABELS, **(labels or {})}),
        data=data,
        binary_data=binary or None,
    )
    action = f"writing {ref}"
    try:
        kube.call(kube.core.create_namespaced_config_map, ref.namespace, body, action=action, idempotent=False)
        return
    except Conflict:
        pass  # it exists: replaced below, when it may be
    existing = read_object(kube, ref)
    if not overwrite:
        refuse_foreign(ref, existing)
    body.metadata.resource_version = existing.metadata.resource_version
    try:
        kube.call(
            kube.core.replace_namespaced_config_map, ref.name, ref.namespace, body, action=action, idempotent=False
        )
    except Conflict:
        raise InvalidInput(
            f"{ref} was changed by someone else while it was being replaced; nothing written", hint="run again"
        ) from None


def patch_body(text: str, fmt: str, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """The merge patch that fills an existing ConfigMap (the agent's pre-created staging ConfigMap) with a snapshot:
    :func:`encode`'s data (and binaryData), and ``drop``: data keys removed in the same write. A merge patch keeps
    the object's labels and ownerReference, and needs only ``patch`` on that one object. Pure."""
    data, binary = encode(text, fmt)
    body: dict[str, Any] = {"data": {**{k: None for k in drop}, **data}}
    if binary:
        body["binaryData"] = binary
    return body
