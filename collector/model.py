"""The Snapshot data model as plain data: measurements made of subtypes of flat, typed readings.

Wire format (compatible with the original ``aicr`` tool)::

    kind: Snapshot
    apiVersion: aicr.nvidia.com/v1alpha1
    metadata: {timestamp: ..., version: ..., source-node: ...}     # strings only
    measurements:
      - type: GPU
        subtypes:
          - subtype: smi
            data: {driver: "570.86.15", gpu-count: 8, ...}          # scalars keep their real type
            context: {source: nvidia-smi -q -x, status: ok}         # strings only

Unlike the original, a source that could not be read does not vanish: its subtype is still emitted, with
empty data and ``context.status`` set to ``unavailable`` (or ``error``) and a human ``reason``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Union

API_VERSION = "aicr.nvidia.com/v1alpha1"
KIND = "Snapshot"

Scalar = Union[str, int, float, bool, None]

#: Values of ``context.status``.
STATUS_OK = "ok"
STATUS_PARTIAL = "partial"  # read, but some fields could not be parsed
STATUS_UNAVAILABLE = "unavailable"  # the source does not exist here (no GPU, no systemd, not in a cluster)
STATUS_ERROR = "error"  # the source exists but failed (non-zero exit, timeout, garbage output)

#: Canonical order of measurement types in a written snapshot; unknown types follow alphabetically.
TYPE_ORDER = ("GPU", "OS", "SystemD", "K8s", "NodeTopology")


@dataclass
class Subtype:
    name: str
    data: dict[str, Scalar] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subtype": self.name, "data": dict(sorted(self.data.items()))}
        if self.context:
            out["context"] = dict(sorted(self.context.items()))
        return out


@dataclass
class Measurement:
    type: str
    subtypes: list[Subtype] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "subtypes": [s.to_wire() for s in self.subtypes]}


def reading(
    name: str, data: Mapping[str, Scalar], *, source: str, status: str = STATUS_OK, reason: str | None = None
) -> Subtype:
    """A subtype that was read (possibly partially) from ``source``."""
    ctx = {"source": source, "status": status}
    if reason:
        ctx["reason"] = reason
    return Subtype(name, dict(data), ctx)


def missing(name: str, *, source: str, reason: str, status: str = STATUS_UNAVAILABLE) -> Subtype:
    """A subtype whose source is absent (``unavailable``) or failed (``error``): empty data, with the reason."""
    return Subtype(name, {}, {"source": source, "status": status, "reason": reason})


def _type_key(t: str) -> tuple[int, str]:
    return (TYPE_ORDER.index(t), "") if t in TYPE_ORDER else (len(TYPE_ORDER), t)


def build_snapshot(metadata: Mapping[str, str], measurements: Iterable[Measurement]) -> dict[str, Any]:
    """Assemble the wire document with a deterministic order (types canonical, data keys sorted)."""
    ms = sorted(measurements, key=lambda m: _type_key(m.type))
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {k: str(v) for k, v in sorted(metadata.items())},
        "measurements": [m.to_wire() for m in ms],
    }
