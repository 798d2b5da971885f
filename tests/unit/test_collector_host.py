"""collector.host.collect_host: all host sources concurrently, merged GPU measurement, failures contained."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Sequence

import jsonschema
import pytest
import yaml

import collector.host as host_mod
import collector.sources as sources_mod
from collector.gpu_host import GPU_HOST_SUBTYPES
from collector.host import collect_host
from collector.model import build_snapshot
from collector.runner import CommandNotFound, CommandResult
from collector.systemd import DEFAULT_UNITS

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
H100 = FIX / "host" / "h100x8"
SCHEMA = ROOT / "kubectl_aicr" / "schema" / "snapshot.schema.json"
GPU_XML = (FIX / "nvidia-smi" / "gpu.xml").read_text()
SYSTEMD = (FIX / "systemd" / "show-debian12-systemd252.txt").read_text()


class FakeRunner:
    """``hang_smi``: ``nvidia-smi -q -x`` blocks until ``release`` is set (a stuck driver), then answers."""

    def __init__(self, hang_smi: bool = False) -> None:
        self.hang_smi = hang_smi
        self.release = threading.Event()
        self.smi_answered = threading.Event()
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        if argv[0] == "nvidia-smi" and argv[1:] == ["-q", "-x"]:
            if self.hang_smi:
                self.release.wait(600)
            self.smi_answered.set()
            return CommandResult(0, GPU_XML, "", 0.3)
        if argv[0] == "systemctl":
            return CommandResult(0, SYSTEMD, "", 0.05)
        raise CommandNotFound(list(argv), "not found")


def h100_roots() -> dict[str, str]:
    return {"proc_root": str(H100 / "proc"), "sys_root": str(H100 / "sys"), "etc_root": str(H100 / "etc")}


def test_fixture_host_all_measurements() -> None:
    labels = {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    units = ["dbus.service", "systemd-journald.service", "containerd.service", "cron.service"]
    ms = collect_host(runner=FakeRunner(), units=units, node_labels=labels, **h100_roots())
    assert [m.type for m in ms] == ["GPU", "OS", "SystemD", "Network", "Runtime"]
    gpu, os_m, sysd = ms[:3]
    assert [s.name for s in gpu.subtypes] == (
        ["smi"] + [f"gpu-{i}" for i in range(8)] + list(GPU_HOST_SUBTYPES) + ["consistency"]
    )
    by = {s.name: s for s in gpu.subtypes}
    assert by["smi"].data["gpu-count"] == 8
    assert by["smi"].context["nvlink"].startswith("unavailable")
    assert by["consistency"].data["consistent"] is True
    assert by["consistency"].data["gpu-count.label"] == 8
    assert [s.name for s in os_m.subtypes] == [
        "grub",
        "sysctl",
        "kmod",
        "release",
        "kernel",
        "cpu",
        "memory",
        "kernel-config",
        "iommu",
        "hugepages",
    ]
    original = os_m.subtypes[:7]  # the h100x8 tree has no kernel config or IOMMU (see test_collector_net.py)
    assert {s.name: s.context["status"] for s in original} == {s.name: "ok" for s in original}
    assert [s.name for s in sysd.subtypes] == units
    assert all(s.context["status"] == "ok" for s in sysd.subtypes)
    for m in ms:
        for s in m.subtypes:
            if s.name != "consistency":
                assert int(s.context["duration-ms"]) >= 0


def test_snapshot_is_schema_valid_yaml() -> None:
    ms = collect_host(runner=FakeRunner(), **h100_roots())
    doc = build_snapshot({"timestamp": "2026-11-27T00:00:00Z", "version": "test", "source-node": "n"}, ms)
    text = yaml.safe_dump(doc, sort_keys=False)
    back = yaml.safe_load(text)
    assert back == json.loads(json.dumps(doc))
    jsonschema.validate(back, json.loads(SCHEMA.read_text()))


def test_a_crashing_source_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**_: object) -> None:
        raise RuntimeError("kaput")

    monkeypatch.setattr(sources_mod, "collect_gpu_host", boom)
    gpu = collect_host(runner=FakeRunner(), **h100_roots())[0]
    by = {s.name: s for s in gpu.subtypes}
    for name in GPU_HOST_SUBTYPES:
        assert by[name].context["status"] == "error"
        assert by[name].context["reason"] == "internal error: RuntimeError: kaput"
    assert by["smi"].context["status"] == "ok"
    assert by["consistency"].data["gpu-count.smi"] == 8


def test_a_hanging_source_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host_mod, "GRACE_S", 0.1)
    runner = FakeRunner(hang_smi=True)
    try:
        gpu, os_m, *_ = collect_host(runner=runner, timeout=0.2, **h100_roots())
        # collect_host returned while nvidia-smi was still stuck: it did not wait for the source.
        assert not runner.smi_answered.is_set()
    finally:
        runner.release.set()
    smi = gpu.subtypes[0]
    assert smi.name == "smi" and smi.context["status"] == "error"
    assert smi.context["source"] == "nvidia-smi -q -x"
    assert "did not finish within 0.3s" in smi.context["reason"]
    assert {s.context["status"] for s in os_m.subtypes[:7]} == {"ok"}


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_this_machine_never_raises_and_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AICR_TEST_SECRET_TOKEN", "do-not-leak-4711")
    ms = collect_host(timeout=10.0)
    assert [m.type for m in ms] == ["GPU", "OS", "SystemD", "Network", "Runtime"]
    assert [s.name for s in ms[2].subtypes] == list(DEFAULT_UNITS)
    doc = build_snapshot({"source-node": os.uname().nodename}, ms)
    text = yaml.safe_dump(doc)
    assert "do-not-leak-4711" not in text
    jsonschema.validate(yaml.safe_load(text), json.loads(SCHEMA.read_text()))
    for m in ms:
        for s in m.subtypes:
            assert s.context["status"] in ("ok", "partial", "unavailable", "error")
            if s.context["status"] != "ok":
                assert s.context.get("reason"), (m.type, s.name)
