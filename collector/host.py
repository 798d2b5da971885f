"""Everything collected on the host itself, concurrently: the sources of :mod:`collector.sources`.

Each source runs in its own worker thread under one deadline (``timeout`` plus :data:`GRACE_S`; commands get
``timeout`` as their own timeout and kill themselves at it, the file readers are fast). A source that raises or
overruns is replaced by its placeholders (each of its subtypes, empty, ``status: error`` and the reason), and the
collection goes on without waiting for it: :func:`collect_host` never raises for a source failure.

Subtypes are grouped into one measurement per type, in the registry's order (``GPU``, ``OS``, ``SystemD``,
``Network``, ``Runtime``), then each measurement's summaries are appended (``GPU/consistency``, the cross-check of
all GPU sources). Every subtype a source gave gets ``duration-ms`` in its context (how long that source took).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Mapping, Sequence

from collector.model import Measurement, Subtype
from collector.os_info import HostRoots
from collector.runner import CommandRunner, SubprocessRunner
from collector.sources import SOURCES, SUMMARIES, HostOptions, Source, Summary
from collector.systemd import DEFAULT_UNITS

__all__ = ["GRACE_S", "collect_host", "run_sources"]

#: Extra time granted past ``timeout`` before a source is declared stuck (commands kill themselves at ``timeout``).
GRACE_S = 2.0


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
    sources: Sequence[Source] = SOURCES,
    summaries: Sequence[Summary] = SUMMARIES,
) -> list[Measurement]:
    """The measurements of this host's ``sources`` (default: the registry), one per type, in registry order."""
    options = HostOptions(
        runner=runner if runner is not None else SubprocessRunner(),
        roots=HostRoots(proc_root, sys_root, etc_root, uname),
        units=tuple(units),
        node_labels=node_labels,
        nvidia_smi=nvidia_smi,
        systemctl=systemctl,
        timeout=timeout,
        nvlink=nvlink,
    )
    results = run_sources(sources, options)
    measurements: list[Measurement] = []
    for measurement_type in dict.fromkeys(source.measurement for source in sources):
        subtypes = [s for source, got in zip(sources, results) if source.measurement == measurement_type for s in got]
        for summary in summaries:
            if summary.measurement == measurement_type:
                subtypes.append(_summarize(summary, subtypes, options))
        measurements.append(Measurement(measurement_type, subtypes))
    return measurements


def run_sources(sources: Sequence[Source], options: HostOptions) -> list[list[Subtype]]:
    """Read every source concurrently; what each gave (or its placeholders), in the order of ``sources``.

    Each subtype's context gets ``duration-ms``: how long its source ran (the deadline, for one cut off).
    """
    deadline = options.timeout + GRACE_S
    results: list[list[Subtype]] = []
    pool = ThreadPoolExecutor(max_workers=max(len(sources), 1), thread_name_prefix="aicr-collect")
    try:
        started = time.monotonic()
        futures: list[Future[tuple[Any, float]]] = [pool.submit(_timed, source.read, options) for source in sources]
        finished, _ = wait(futures, timeout=deadline)
        for source, future in zip(sources, futures):
            if future not in finished:
                future.cancel()
                got, took = source.placeholders(options, f"did not finish within {deadline:g}s"), deadline
            else:
                try:
                    value, took = future.result()
                    got = [value] if isinstance(value, Subtype) else list(value)
                except Exception as e:  # noqa: BLE001 - a collector bug must not lose the other sources
                    got = source.placeholders(options, f"internal error: {type(e).__name__}: {e}")
                    took = time.monotonic() - started
            for subtype in got:
                subtype.context.setdefault("duration-ms", str(int(took * 1000)))
            results.append(got)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def _summarize(summary: Summary, subtypes: Sequence[Subtype], options: HostOptions) -> Subtype:
    try:
        return summary.build(subtypes, options)
    except Exception as e:  # noqa: BLE001 - a summary bug must not lose the measurement
        return summary.placeholder(f"internal error: {type(e).__name__}: {e}")


def _timed(read: Callable[[HostOptions], Any], options: HostOptions) -> tuple[Any, float]:
    start = time.monotonic()
    value = read(options)
    return value, time.monotonic() - start
