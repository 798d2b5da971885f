"""The test fake nvidia-smi answers ``nvlink -s`` so NVLink parsing (collector.gpu_smi) runs end to end.

Fixture: tests/fixtures/nvidia-smi/gpu.nvlink-s.txt, written by us in the real tool's layout for the GPUs of gpu.xml
(see tests/fixtures/host/sources/README.md): 18 links at 26.562 GB/s per H100, GPU 3 with links 5 and 11 inactive.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from collector.gpu_smi import collect_gpu_smi
from collector.runner import SubprocessRunner
from tests.controlplane import fake_nvidia_smi

SMI = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"


def test_nvlink_status_through_the_fake_reaches_the_gpu_subtypes(tmp_path: Path) -> None:
    fake_nvidia_smi.install(tmp_path, SMI / "gpu.xml")
    subs = collect_gpu_smi(SubprocessRunner(), nvidia_smi=str(tmp_path / "bin" / "nvidia-smi"), timeout=30.0)
    smi = subs[0]
    assert smi.context["nvlink"] == "ok (nvidia-smi nvlink -s, 8 GPUs)"
    by = {s.name: s.data for s in subs[1:]}
    assert [(by[f"gpu-{i}"]["nvlink-links-active"], by[f"gpu-{i}"]["nvlink-links-inactive"]) for i in range(8)] == (
        [(18, 0)] * 3 + [(16, 2)] + [(18, 0)] * 4
    )


def test_fake_prints_the_recorded_text_and_refuses_other_nvlink_forms(tmp_path: Path) -> None:
    fake_nvidia_smi.install(tmp_path, SMI / "gpu.xml")
    exe = str(tmp_path / "bin" / "nvidia-smi")
    out = subprocess.run([exe, "nvlink", "-s"], capture_output=True, text=True, check=True).stdout
    assert out == (SMI / "gpu.nvlink-s.txt").read_text()
    one = subprocess.run([exe, "nvlink", "--status", "-i", "3"], capture_output=True, text=True, check=True).stdout
    assert one.startswith("GPU 3: NVIDIA H100 80GB HBM3 (UUID: ") and one.count("<inactive>") == 2
    bad = subprocess.run([exe, "nvlink", "-e"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unsupported nvlink arguments" in bad.stderr


def test_a_board_without_a_recording_has_no_links(tmp_path: Path) -> None:
    fake_nvidia_smi.install(tmp_path, SMI / "tesla-t4-x1-515.105.01.xml")
    subs = collect_gpu_smi(SubprocessRunner(), nvidia_smi=str(tmp_path / "bin" / "nvidia-smi"), timeout=30.0)
    assert subs[0].context["nvlink"] == "ok (nvidia-smi nvlink -s, 1 GPUs)"
    assert (subs[1].data["nvlink-links-active"], subs[1].data["nvlink-links-inactive"]) == (0, 0)
    # switching the node to another fixture drops the old recording
    fake_nvidia_smi.install(tmp_path, SMI / "gpu.xml")
    fake_nvidia_smi.install(tmp_path, SMI / "tesla-t4-x1-515.105.01.xml")
    assert not (tmp_path / fake_nvidia_smi.NVLINK_FILE).exists()
