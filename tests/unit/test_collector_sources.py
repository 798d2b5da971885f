"""collector.sources, the registry of host sources, walked row by row through collector.host.collect_host.

Every row's subtypes appear in the snapshot, in registry order; a row that raises or hangs becomes its placeholders
and costs no other row anything; a summary that raises becomes its placeholder; a new row is all a new source takes.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any, Sequence

import pytest

import collector.host as host_mod
from collector.host import collect_host
from collector.model import STATUS_ERROR, Measurement, Subtype, find_subtype, reading
from collector.os_info import HostRoots
from collector.runner import CommandNotFound, CommandResult
from collector.snapshot import collect_snapshot
from collector.sources import MEASUREMENTS, SOURCES, SUMMARIES, HostOptions, Source, Summary

FIX = Path(__file__).resolve().parents[1] / "fixtures"
DGX = FIX / "host" / "dgx-h100-net"  # a tree where every file reader finds its source
GPU_XML = (FIX / "nvidia-smi" / "gpu.xml").read_text()
SYSTEMD = (FIX / "systemd" / "show-debian12-systemd252.txt").read_text()
UNITS = ("dbus.service", "containerd.service", "cron.service")


def runner(argv: Sequence[str], timeout: float) -> CommandResult:
    if argv[0] == "nvidia-smi" and list(argv[1:]) == ["-q", "-x"]:
        return CommandResult(0, GPU_XML, "", 0.1)
    if argv[0] == "systemctl":
        return CommandResult(0, SYSTEMD, "", 0.1)
    raise CommandNotFound(list(argv), f"{argv[0]}: not found")


HOST: dict[str, Any] = {
    "runner": runner,
    "units": UNITS,
    "proc_root": str(DGX / "proc"),
    "sys_root": str(DGX / "sys"),
    "etc_root": str(DGX / "etc"),
}
OPTIONS = HostOptions(
    runner=runner,
    roots=HostRoots(str(DGX / "proc"), str(DGX / "sys"), str(DGX / "etc")),
    units=UNITS,
    node_labels=None,
    nvidia_smi="nvidia-smi",
    systemctl="systemctl",
    timeout=10.0,
    nvlink=True,
)


def names(subtypes: Sequence[Any]) -> list[str]:
    return [s.name if isinstance(s, Subtype) else s["subtype"] for s in subtypes]


def is_subsequence(part: Sequence[str], whole: Sequence[str]) -> bool:
    rest = iter(whole)
    return all(name in rest for name in part)


def test_the_registry_lists_the_host_measurements_in_their_order() -> None:
    assert MEASUREMENTS == ("GPU", "OS", "SystemD", "Network", "Runtime")
    for measurement in MEASUREMENTS:
        rows = [name for source in SOURCES if source.measurement == measurement for name in source.names(OPTIONS)]
        rows += [summary.subtype for summary in SUMMARIES if summary.measurement == measurement]
        assert len(rows) == len(set(rows)), f"{measurement}: a subtype name is yielded by two rows"
    assert {summary.measurement for summary in SUMMARIES} <= set(MEASUREMENTS)


def test_every_row_yields_its_subtypes_in_the_snapshot_in_registry_order() -> None:
    doc = collect_snapshot(version="test", node="n", timestamp="2026-01-01T00:00:00Z", host_options=HOST)
    for measurement in MEASUREMENTS:
        [written] = [m for m in doc["measurements"] if m["type"] == measurement]
        got = names(written["subtypes"])
        expected: list[str] = []
        for source in SOURCES:
            if source.measurement == measurement:
                assert source.names(OPTIONS), source
                for name in source.names(OPTIONS):
                    found = find_subtype(doc, measurement, name)
                    assert found is not None, f"{measurement}/{name} missing from the snapshot"
                    assert found["context"]["status"] != STATUS_ERROR, (measurement, name, found["context"])
                    assert int(found["context"]["duration-ms"]) >= 0
                expected += source.names(OPTIONS)
        summaries = [summary.subtype for summary in SUMMARIES if summary.measurement == measurement]
        assert is_subsequence(expected, got), (measurement, expected, got)
        if summaries:
            assert got[-len(summaries) :] == summaries


def test_a_row_that_raises_yields_its_placeholders_and_only_them() -> None:
    def boom(_: HostOptions) -> Subtype:
        raise RuntimeError("kaput")

    broken = [dataclasses.replace(source, read=boom) for source in SOURCES]
    measurements = collect_host(**HOST, sources=broken)
    assert [m.type for m in measurements] == list(MEASUREMENTS)
    for measurement in measurements:
        rows = [source for source in SOURCES if source.measurement == measurement.type]
        placeholders = measurement.subtypes[: sum(len(source.names(OPTIONS)) for source in rows)]
        assert names(placeholders) == [name for source in rows for name in source.names(OPTIONS)]
        by_name = {s.name: s for s in placeholders}
        for source in rows:
            for name in source.names(OPTIONS):
                sub = by_name[name]
                assert sub.data == {}
                assert sub.context["status"] == STATUS_ERROR
                assert sub.context["reason"] == "internal error: RuntimeError: kaput"
                assert sub.context["source"] == (source.placeholder_source or name)
    gpu = measurements[0]
    assert names(gpu.subtypes)[-1] == "consistency"  # the summary still runs, on placeholders
    assert gpu.subtypes[-1].context["status"] == "unavailable"


def test_one_row_that_raises_costs_the_others_nothing() -> None:
    def boom(_: HostOptions) -> Subtype:
        raise ValueError("bad row")

    whole = {(m.type, s.name): s for m in collect_host(**HOST) for s in m.subtypes}
    summaries = {(summary.measurement, summary.subtype) for summary in SUMMARIES}
    for index, source in enumerate(SOURCES):
        value = source.read(OPTIONS)
        own = {(source.measurement, s.name) for s in ([value] if isinstance(value, Subtype) else value)}
        placeholders = {(source.measurement, name) for name in source.names(OPTIONS)}
        rows = list(SOURCES)
        rows[index] = dataclasses.replace(source, read=boom)
        one_broken = {(m.type, s.name): s for m in collect_host(**HOST, sources=rows) for s in m.subtypes}
        assert set(one_broken) == (set(whole) - own) | placeholders, source
        for key, sub in one_broken.items():
            if key in placeholders:
                assert sub.context["reason"] == "internal error: ValueError: bad row"
            elif key not in summaries:
                assert (sub.data, sub.context["status"]) == (whole[key].data, whole[key].context["status"]), key


def test_a_row_that_hangs_is_cut_off_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_mod, "GRACE_S", 0.1)
    release = threading.Event()

    def stuck(_: HostOptions) -> Subtype:
        release.wait(600)
        return reading("stuck", {"late": True}, source="test")

    rows = [*SOURCES, Source("Test", ("stuck",), stuck, placeholder_source="a stuck test source")]
    try:
        measurements = collect_host(**{**HOST, "timeout": 0.2}, sources=rows)
    finally:
        release.set()
    test = measurements[-1]
    assert test.type == "Test" and names(test.subtypes) == ["stuck"]
    ctx = test.subtypes[0].context
    assert (ctx["status"], ctx["source"]) == (STATUS_ERROR, "a stuck test source")
    assert ctx["reason"] == "did not finish within 0.3s"
    assert ctx["duration-ms"] == "300"


def test_a_summary_that_raises_yields_its_placeholder() -> None:
    def boom(_: Sequence[Subtype], __: HostOptions) -> Subtype:
        raise KeyError("gpu-0")

    summaries = [dataclasses.replace(summary, build=boom) for summary in SUMMARIES]
    gpu = collect_host(**HOST, summaries=summaries)[0]
    last = gpu.subtypes[-1]
    assert last.name == "consistency" and last.data == {}
    assert last.context == {
        "source": SUMMARIES[0].source,
        "status": STATUS_ERROR,
        "reason": "internal error: KeyError: 'gpu-0'",
    }


def test_a_new_row_is_all_a_new_source_takes() -> None:
    rows = [
        *SOURCES,
        Source("OS", ("extra",), lambda o: reading("extra", {"root": o.roots.etc_root}, source="x")),
        Source("Extra", ("one", "two"), lambda o: [reading("one", {}, source="x"), reading("two", {}, source="x")]),
    ]
    summaries = [
        *SUMMARIES,
        Summary("Extra", "count", lambda subs, o: reading("count", {"n": len(subs)}, source="x"), source="x"),
    ]
    measurements: list[Measurement] = collect_host(**HOST, sources=rows, summaries=summaries)
    assert [m.type for m in measurements] == [*MEASUREMENTS, "Extra"]
    os_m = measurements[1]
    assert os_m.subtypes[-1].name == "extra" and os_m.subtypes[-1].data == {"root": str(DGX / "etc")}
    assert names(measurements[-1].subtypes) == ["one", "two", "count"]
    assert measurements[-1].subtypes[-1].data == {"n": 2}
