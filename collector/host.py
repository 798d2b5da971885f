"""Everything collected on the host itself: ``GPU``, ``OS``, ``SystemD``, ``Network`` and ``Runtime`` measurements,
concurrently.

Each source runs in its own worker thread under its own bound (``timeout``; commands get it as their timeout, the
file readers are fast and get the same deadline). A source that fails, raises or overruns becomes subtypes with
``status: error`` and the reason; :func:`collect_host` itself never raises for a source failure.

The ``GPU`` measurement merges ``nvidia-smi`` (``smi``, ``gpu-<i>``) with the driver-free sources (``driver``,
``driver-params``, ``driver-gpus``, ``pci``, ``labels``) and ends with ``consistency``, the cross-check of them all.
Every subtype's context gets ``duration-ms`` (how long its source took).

``Network`` (:mod:`collector.net`, :mod:`collector.affinity`) and ``Runtime`` (:mod:`collector.runtime`) are file
readers under the same roots; :mod:`collector.kernel_config` adds ``kernel-config``, ``iommu`` and ``hugepages`` to
``OS``, after the subtypes of :mod:`collector.os_info`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import partial
from typing import Any, Callable, Mapping, Sequence

from collector.affinity import AFFINITY_SUBTYPES
from collector.gpu_host import build_consistency, collect_gpu_host
from collector.gpu_smi import SOURCE as SMI_SOURCE
from collector.gpu_smi import collect_gpu_smi
from collector.kernel_config import KERNEL_SUBTYPES
from collector.model import STATUS_ERROR, Measurement, Subtype, missing
from collector.net import NET_SUBTYPES
from collector.os_info import OS_SUBTYPES, HostRoots
from collector.runner import CommandRunner, SubprocessRunner
from collector.runtime import RUNTIME_SUBTYPES
from collector.systemd import DEFAULT_UNITS, collect_systemd

__all__ = ["GPU_HOST_SUBTYPES", "collect_host"]

#: Names of the driver-free GPU subtypes, in emitted order (used for placeholders when that source fails).
GPU_HOST_SUBTYPES = ("driver", "driver-params", "driver-gpus", "pci", "labels")

#: Extra time granted past ``timeout`` before a source is declared stuck (commands kill themselves at ``timeout``).
GRACE_S = 2.0


def _failed(names: Sequence[str], reason: str) -> list[Subtype]:
    return [missing(n, source=n, status=STATUS_ERROR, reason=reason) for n in names]


def collect_host(
    *,
    runner: CommandRunner | None = None,
    proc_root: str = "/proc",
    sys_root: str = "/sys",
    etc_root: str = "/etc",
    units: Sequence[str] = DEFAULT_UNITS,
    node_labels: Mapping[str, str] | None = None,
    nvidia_smi: str = "nvidia-smi",
    systemctl: str = "systemctl",
    timeout: float = 10.0,
    nvlink: bool = True,
    uname: Callable[[], Any] = os.uname,
) -> list[Measurement]:
    """Collect the ``GPU``, ``OS``, ``SystemD``, ``Network`` and ``Runtime`` measurements of this host, in that order."""
    run = runner if runner is not None else SubprocessRunner()
    roots = HostRoots(proc_root, sys_root, etc_root, uname)
    units = list(units)

    # name -> (callable, fallback subtype names)
    def smi_source() -> list[Subtype]:
        return collect_gpu_smi(run, nvidia_smi=nvidia_smi, timeout=timeout, nvlink=nvlink)

    def gpu_host_source() -> list[Subtype]:
        return collect_gpu_host(proc_root=proc_root, sys_root=sys_root, node_labels=node_labels)

    def systemd_source() -> list[Subtype]:
        return collect_systemd(run, units, systemctl=systemctl, timeout=timeout).subtypes

    tasks: dict[str, tuple[Callable[[], Any], Sequence[str]]] = {
        "gpu-smi": (smi_source, ("smi",)),
        "gpu-host": (gpu_host_source, GPU_HOST_SUBTYPES),
        "systemd": (systemd_source, units),
    }
    for name, reader in OS_SUBTYPES:
        tasks[f"os-{name}"] = (partial(reader, roots), (name,))
    # Network, Runtime and the kernel-config OS subtypes: file readers like the OS ones, one task per subtype.
    for prefix, table in (("os", KERNEL_SUBTYPES), ("net", NET_SUBTYPES + AFFINITY_SUBTYPES),
                          ("runtime", RUNTIME_SUBTYPES)):
        for name, reader in table:
            tasks[f"{prefix}-{name}"] = (partial(reader, roots), (name,))

    results: dict[str, list[Subtype]] = {}
    durations: dict[str, float] = {}
    pool = ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="aicr-collect")
    try:
        futures: dict[Future[Any], str] = {}
        starts: dict[str, float] = {}
        for name, (fn, _) in tasks.items():
            starts[name] = time.monotonic()
            futures[pool.submit(_timed, fn)] = name
        done, not_done = wait(futures, timeout=timeout + GRACE_S)
        for fut in done:
            name = futures[fut]
            try:
                value, took = fut.result()
            except Exception as e:  # noqa: BLE001 - a collector bug must not lose the other sources
                results[name] = _failed(tasks[name][1], f"internal error: {type(e).__name__}: {e}")
                durations[name] = time.monotonic() - starts[name]
                continue
            results[name] = [value] if isinstance(value, Subtype) else list(value)
            durations[name] = took
        for fut in not_done:
            name = futures[fut]
            fut.cancel()
            results[name] = _failed(tasks[name][1], f"did not finish within {timeout + GRACE_S:g}s")
            durations[name] = timeout + GRACE_S
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    for name, subs in results.items():
        for s in subs:
            s.context.setdefault("duration-ms", str(int(durations[name] * 1000)))

    smi_subs = results["gpu-smi"]
    if smi_subs and smi_subs[0].name == "smi" and smi_subs[0].context.get("source") == "smi":
        smi_subs[0].context["source"] = SMI_SOURCE
    host_subs = results["gpu-host"]
    consistency = build_consistency(smi_subs, host_subs, node_labels)
    gpu = Measurement("GPU", [*smi_subs, *host_subs, consistency])
    os_m = Measurement("OS", [s for name, _ in OS_SUBTYPES + KERNEL_SUBTYPES for s in results[f"os-{name}"]])
    systemd_m = Measurement("SystemD", results["systemd"])
    network = Measurement("Network", [s for name, _ in NET_SUBTYPES + AFFINITY_SUBTYPES for s in results[f"net-{name}"]])
    runtime = Measurement("Runtime", [s for name, _ in RUNTIME_SUBTYPES for s in results[f"runtime-{name}"]])
    return [gpu, os_m, systemd_m, network, runtime]


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    value = fn()
    return value, time.monotonic() - start
