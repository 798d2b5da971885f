"""The ``GPU/consistency`` subtype: the same GPU facts from every source side by side, and whether they agree.

A pure function of subtypes already collected (``smi``/``gpu-<i>`` of :mod:`collector.gpu_smi`; ``driver``,
``driver-gpus``, ``pci`` of :mod:`collector.gpu_host`) and of the node's labels; it reads nothing itself.

Keys: ``<fact>.<source>`` holds what each source says; ``<fact>.mismatch`` (bool) is present when at least two
sources gave the fact and is ``true`` when they disagree. Facts, each computed by its own function below:

``gpu-count``       ``smi`` (``gpu-count``), ``smi-attached`` (``attached-gpus``), ``pci``, ``procfs``, ``label``
                    (``nvidia.com/gpu.count``).
``driver-version``  ``smi``, ``procfs`` (``/proc/driver/nvidia/version``), ``sysfs`` (``/sys/module/nvidia/version``),
                    ``label`` (``nvidia.com/cuda.driver-version.full`` or ``cuda.driver.{major,minor,rev}``).
``cuda-version``    the CUDA version the driver supports: ``smi``, ``label`` (``nvidia.com/cuda.runtime-version.full``
                    or ``cuda.runtime.{major,minor}``).
``gpu-model``       ``smi``, ``procfs`` (``"; "``-joined distinct names), ``label`` (``nvidia.com/gpu.product``); the
                    GFD label form (``NVIDIA-H100-80GB-HBM3[-SHARED|-MIG-...]``) matches the name it starts with.
``gpu-memory-mib``  ``smi`` (one value, or a comma list when the GPUs differ), ``label`` (``nvidia.com/gpu.memory``).
``bus-ids``         sets of bus addresses (``smi``, ``pci``, ``procfs``): ``bus-ids.missing-in-<source>`` (comma list).
``uuid``, ``vbios-version``  per GPU, ``smi`` against ``procfs`` matched by bus address:
                    ``<fact>.mismatch-bus-ids`` (comma list).

Summary: ``consistent`` (bool) and ``mismatched-facts`` (comma list in the order above, ``""`` when none);
``context.sources`` lists the sources that contributed (``smi-attached`` counts as ``smi``). No fact from any source:
``status: unavailable``; facts but no source counted a GPU: ``status: unavailable``, "no source found an NVIDIA GPU".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from collector._util import as_int
from collector.model import STATUS_ERROR, STATUS_UNAVAILABLE, Scalar, Subtype, missing, reading

__all__ = ["SOURCE", "build_consistency"]

#: ``context.source`` of the subtype.
SOURCE = "nvidia-smi, /sys/bus/pci, /proc/driver/nvidia, node labels"


@dataclass(frozen=True)
class GpuSources:
    """What each source said, reduced to the subtypes a fact may use (None or empty when that source has nothing)."""

    smi: Subtype | None  # nvidia-smi's summary, when it was read
    smi_gpus: list[Subtype]  # nvidia-smi's gpu-<i> subtypes, when the summary was read
    pci: Subtype | None  # sysfs PCI, when it counted GPUs (even zero)
    driver: Subtype | None  # the kernel driver subtype, whatever its status
    procfs_gpus: Subtype | None  # /proc/driver/nvidia/gpus, when it was read
    labels: dict[str, str]


@dataclass
class Report:
    """The subtype's data as the facts fill it in, the sources that contributed, and the facts that disagree."""

    data: dict[str, Scalar] = field(default_factory=dict)
    sources_used: set[str] = field(default_factory=set)
    mismatched: list[str] = field(default_factory=list)

    def compare(
        self, fact: str, values: Mapping[str, Scalar], normalize: Callable[[Scalar], object] = lambda value: value
    ) -> None:
        """Record ``fact`` as each source gives it (None: that source has nothing) and whether they agree."""
        present = {source: value for source, value in values.items() if value is not None}
        if not present:
            return
        for source, value in present.items():
            self.data[f"{fact}.{source}"] = value
            self.sources_used.add("smi" if source.startswith("smi") else source)
        if len(present) >= 2:
            self.mark(fact, len({normalize(value) for value in present.values()}) > 1)

    def mark(self, fact: str, disagree: bool) -> None:
        self.data[f"{fact}.mismatch"] = disagree
        if disagree:
            self.mismatched.append(fact)


def build_consistency(
    smi_subtypes: Sequence[Subtype],
    host_subtypes: Sequence[Subtype],
    node_labels: Mapping[str, str] | None = None,
) -> Subtype:
    """Cross-check the GPU facts of every source; pure function of already collected subtypes and labels."""
    sources = gather(smi_subtypes, host_subtypes, node_labels)
    report = Report()
    for fact in FACTS:
        fact(sources, report)
    return summarize(report)


def gather(
    smi_subtypes: Sequence[Subtype], host_subtypes: Sequence[Subtype], node_labels: Mapping[str, str] | None
) -> GpuSources:
    by_name = {s.name: s for s in [*smi_subtypes, *host_subtypes]}
    smi = by_name.get("smi")
    smi_read = _usable(smi)
    pci = by_name.get("pci")
    procfs_gpus = by_name.get("driver-gpus")
    return GpuSources(
        smi=smi if smi_read else None,
        smi_gpus=[s for s in smi_subtypes if s.name.startswith("gpu-")] if smi_read else [],
        pci=pci if pci is not None and "gpu-count" in pci.data else None,
        driver=by_name.get("driver"),
        procfs_gpus=procfs_gpus if _usable(procfs_gpus) else None,
        labels={k: str(v) for k, v in (node_labels or {}).items()},
    )


# ------------------------------------------------------------------------------------------------------ facts


def gpu_count(src: GpuSources, report: Report) -> None:
    report.compare(
        "gpu-count",
        {
            "smi": src.smi.data.get("gpu-count") if src.smi else None,
            "smi-attached": src.smi.data.get("attached-gpus") if src.smi else None,
            "pci": src.pci.data.get("gpu-count") if src.pci else None,
            "procfs": src.procfs_gpus.data.get("gpu-count") if src.procfs_gpus else None,
            "label": as_int(src.labels.get("nvidia.com/gpu.count")),
        },
    )


def driver_version(src: GpuSources, report: Report) -> None:
    report.compare(
        "driver-version",
        {
            "smi": src.smi.data.get("driver") if src.smi else None,
            "procfs": src.driver.data.get("kernel-module-version") if src.driver else None,
            "sysfs": src.driver.data.get("module.nvidia.version") if src.driver else None,
            "label": _label_version(
                src.labels,
                "nvidia.com/cuda.driver-version.full",
                ("nvidia.com/cuda.driver.major", "nvidia.com/cuda.driver.minor", "nvidia.com/cuda.driver.rev"),
            ),
        },
        normalize=lambda value: str(value).strip(),
    )


def cuda_version(src: GpuSources, report: Report) -> None:
    report.compare(
        "cuda-version",
        {
            "smi": src.smi.data.get("cuda-version") if src.smi else None,
            "label": _label_version(
                src.labels,
                "nvidia.com/cuda.runtime-version.full",
                ("nvidia.com/cuda.runtime.major", "nvidia.com/cuda.runtime.minor"),
            ),
        },
        normalize=lambda value: str(value).strip(),
    )


def gpu_model(src: GpuSources, report: Report) -> None:
    smi_models = sorted({str(g.data.get("product-name")) for g in src.smi_gpus if g.data.get("product-name")})
    procfs_models = sorted(set(_per_bus(src.procfs_gpus, "model").values()))
    known = [*smi_models, *procfs_models]
    report.compare(
        "gpu-model",
        {
            "smi": "; ".join(smi_models) or None,
            "procfs": "; ".join(procfs_models) or None,
            "label": src.labels.get("nvidia.com/gpu.product"),
        },
        normalize=lambda value: _model_key(str(value), known),
    )


def gpu_memory(src: GpuSources, report: Report) -> None:
    sizes = sorted({size for g in src.smi_gpus if isinstance(size := g.data.get("memory-total-mib"), int)})
    report.compare(
        "gpu-memory-mib",
        {
            "smi": (sizes[0] if len(sizes) == 1 else ",".join(map(str, sizes))) if sizes else None,
            "label": as_int(src.labels.get("nvidia.com/gpu.memory")),
        },
    )


def bus_ids(src: GpuSources, report: Report) -> None:
    """The sets of GPU bus addresses: each source that lacks some of the others' is named with what it lacks."""
    sets: dict[str, set[str]] = {}
    if src.smi_gpus:
        sets["smi"] = {str(g.data["pci-bus-id"]) for g in src.smi_gpus if g.data.get("pci-bus-id")}
    if src.pci is not None and src.pci.data.get("gpu-count", 0):
        sets["pci"] = {bus for bus, kind in _per_bus(src.pci, "kind").items() if kind == "gpu"}
    if src.procfs_gpus is not None:
        sets["procfs"] = set(_per_bus(src.procfs_gpus, "model")) | set(_per_bus(src.procfs_gpus, "uuid"))
    if len(sets) < 2:
        return
    union = set().union(*sets.values())
    disagree = False
    for source, buses in sorted(sets.items()):
        report.sources_used.add(source)
        lacking = sorted(union - buses)
        if lacking:
            report.data[f"bus-ids.missing-in-{source}"] = ",".join(lacking)
            disagree = True
    report.mark("bus-ids", disagree)


def uuid(src: GpuSources, report: Report) -> None:
    _per_gpu_identity("uuid", src, report)


def vbios_version(src: GpuSources, report: Report) -> None:
    _per_gpu_identity("vbios-version", src, report)


def _per_gpu_identity(fact: str, src: GpuSources, report: Report) -> None:
    """``fact`` of each GPU as nvidia-smi and /proc/driver/nvidia give it, matched by bus address (case-insensitive)."""
    if not src.smi_gpus or src.procfs_gpus is None:
        return
    smi_by_bus = {str(g.data.get("pci-bus-id")): g.data for g in src.smi_gpus}
    procfs_by_bus = _per_bus(src.procfs_gpus, fact)
    common = sorted(set(procfs_by_bus) & set(smi_by_bus))
    if not common:
        return
    differing = [bus for bus in common if str(smi_by_bus[bus].get(fact, "")).lower() != procfs_by_bus[bus].lower()]
    report.mark(fact, bool(differing))
    if differing:
        report.data[f"{fact}.mismatch-bus-ids"] = ",".join(differing)


#: Every fact, in the order ``mismatched-facts`` lists them.
FACTS: tuple[Callable[[GpuSources, Report], None], ...] = (
    gpu_count,
    driver_version,
    cuda_version,
    gpu_model,
    gpu_memory,
    bus_ids,
    uuid,
    vbios_version,
)


def summarize(report: Report) -> Subtype:
    if not report.sources_used:
        return missing("consistency", source=SOURCE, reason="no GPU facts from any source")
    data = dict(report.data)
    data["consistent"] = not report.mismatched
    data["mismatched-facts"] = ",".join(report.mismatched)
    sub = reading("consistency", data, source=SOURCE)
    sub.context["sources"] = ",".join(sorted(report.sources_used))
    counted_a_gpu = any(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for k, v in data.items() if k.startswith("gpu-count.")
    )
    if not counted_a_gpu:
        sub.context["status"] = STATUS_UNAVAILABLE
        sub.context["reason"] = "no source found an NVIDIA GPU"
    return sub


# ------------------------------------------------------------------------------------------------------ helpers


def _usable(sub: Subtype | None) -> bool:
    return sub is not None and bool(sub.data) and sub.context.get("status") != STATUS_ERROR


def _per_bus(sub: Subtype | None, suffix: str) -> dict[str, str]:
    """``{bus: value}`` from ``<bus>.<suffix>`` keys."""
    if sub is None:
        return {}
    out: dict[str, str] = {}
    tail = "." + suffix
    for k, v in sub.data.items():
        if k.endswith(tail) and v is not None:
            out[k[: -len(tail)]] = str(v)
    return out


def _label_version(labels: Mapping[str, str], full: str, parts: Sequence[str]) -> str | None:
    """A version label: the ``full`` one, else its ``parts`` joined with dots (None when the first part is absent)."""
    if labels.get(full):
        return labels[full]
    values = [labels.get(p, "") for p in parts]
    if not values[0]:
        return None
    return ".".join(v for v in values if v)


def _norm_model(name: str) -> str:
    n = re.sub(r"\s+", "-", name.strip()).lower()
    return n.removesuffix("-shared")


def _model_key(value: str, known_models: Iterable[str]) -> str:
    """Normalise a model name so that the GFD label (``NVIDIA-H100-80GB-HBM3[-SHARED|-MIG-...]``) matches the name."""
    n = _norm_model(value)
    for m in sorted({_norm_model(k) for k in known_models}, key=len, reverse=True):
        if n == m or n.startswith(m + "-"):
            return m
    return n
