"""collector.gpu_smi on every nvidia-smi XML fixture (values read from the XML by hand) and on every failure mode."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Sequence

import pytest

from collector.gpu_smi import SOURCE, SmiParseError, collect_gpu_smi, parse_nvlink_status, parse_smi_xml
from collector.model import Subtype
from collector.runner import CommandNotFound, CommandResult, CommandTimeout

SMI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia-smi"
ALL_XML = sorted(p.name for p in SMI_DIR.glob("*.xml"))
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


def xml(name: str) -> str:
    return (SMI_DIR / name).read_text()


def by_name(subs: Sequence[Subtype]) -> dict[str, Subtype]:
    return {s.name: s for s in subs}


class FakeRunner:
    """Replays canned results per argv (joined by spaces); records the calls."""

    def __init__(self, answers: dict[str, Callable[[], CommandResult] | CommandResult | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append((list(argv), timeout))
        ans = self.answers.get(" ".join(argv))
        if ans is None:
            return CommandResult(2, "", f"unsupported: {' '.join(argv)}", 0.01)
        if isinstance(ans, Exception):
            raise ans
        return ans() if callable(ans) else ans


def ok(stdout: str) -> CommandResult:
    return CommandResult(0, stdout, "", 0.05)


# ------------------------------------------------------------------------------------------- fixtures, exactly

H100_GPU0 = {
    "product-name": "NVIDIA H100 80GB HBM3",
    "product-brand": "NVIDIA",
    "product-architecture": "Hopper",
    "uuid": "GPU-ab6ab95d-8259-5551-5962-e4a7a710fbae",
    "serial": "1652923034028",
    "minor-number": 0,
    "module-id": 4,
    "board-part-number": "692-2G520-0200-000",
    "gpu-part-number": "2330-885-A1",
    "multigpu-board": False,
    "vbios-version": "96.00.A5.00.01",
    "inforom-image-version": "G520.0200.00.05",
    "gsp-firmware-version": "570.86.15",
    "display-mode": "Enabled",
    "display-active": "Disabled",
    "persistence-mode": "Disabled",
    "addressing-mode": "None",
    "accounting-mode": "Disabled",
    "compute-mode": "Default",
    "virtualization-mode": "Pass-Through",
    "c2c-mode": "Disabled",
    "mig-mode-current": "Disabled",
    "mig-mode-pending": "Disabled",
    "mig-devices-count": 0,
    "ecc-mode-current": "Enabled",
    "ecc-mode-pending": "Enabled",
    "pci-bus-id": "0000:04:00.0",
    "pci-device-id": "0x2330",
    "pci-vendor-id": "0x10de",
    "pci-subsystem-id": "0x16c1",
    "pci-subsystem-vendor-id": "0x10de",
    "pcie-link-gen-max": 4,
    "pcie-link-gen-current": 4,
    "pcie-link-gen-device-max": 5,
    "pcie-link-gen-host-max": None,
    "pcie-link-width-max": 16,
    "pcie-link-width-current": 16,
    "memory-total-mib": 81559,
    "memory-reserved-mib": 469,
    "bar1-total-mib": 131072,
    "power-limit-enforced-w": 700.0,
    "power-limit-requested-w": 700.0,
    "power-limit-default-w": 700.0,
    "power-limit-min-w": 200.0,
    "power-limit-max-w": 700.0,
    "clock-max-graphics-mhz": 1980,
    "clock-max-sm-mhz": 1980,
    "clock-max-mem-mhz": 2619,
    "clock-max-video-mhz": 1545,
    "clock-max-boost-graphics-mhz": 1980,
    "clock-app-graphics-mhz": 1980,
    "clock-app-mem-mhz": 2619,
    "clock-app-default-graphics-mhz": 1980,
    "clock-app-default-mem-mhz": 2619,
    "fabric-state": "Completed",
    "fabric-status": "Success",
    "fabric-clique-id": 0,
    "fabric-cluster-uuid": "00000000-0000-0000-0000-000000000000",
    "retired-pages-pending": None,
    "retired-pages-sbe-count": None,
    "retired-pages-dbe-count": None,
    "remapped-rows-pending": False,
    "remapped-rows-failure": False,
    "remapped-rows-correctable": 0,
    "remapped-rows-uncorrectable": 0,
}


def test_h100_x8_smi_subtype_matches_the_original_plus_signals() -> None:
    subs = parse_smi_xml(xml("gpu.xml"))
    assert [s.name for s in subs] == ["smi"] + [f"gpu-{i}" for i in range(8)]
    smi = subs[0]
    assert smi.context == {"source": "nvidia-smi -q -x", "status": "ok"}
    assert smi.data == {
        "driver": "570.86.15",
        "cuda-version": "12.8",
        "gpu-count": 8,
        "attached-gpus": 8,
        "gpu.model": "NVIDIA H100 80GB HBM3",
        "gpu.product-architecture": "Hopper",
        "gpu.display-mode": "Enabled",
        "gpu.display-active": "Disabled",
        "gpu.persistence-mode": "Disabled",
        "gpu.addressing-mode": "None",
        "gpu.vbios-version": "96.00.A5.00.01",
        "gpu.gsp-firmware-version": "570.86.15",
        "gpu.models-uniform": True,
        "gpu.models": "8x NVIDIA H100 80GB HBM3",
        "gpu.config-uniform": True,
    }


def test_h100_x8_per_gpu_subtypes() -> None:
    subs = by_name(parse_smi_xml(xml("gpu.xml")))
    assert subs["gpu-0"].data == H100_GPU0
    assert subs["gpu-0"].context == {"source": SOURCE, "status": "ok"}
    g7 = subs["gpu-7"].data
    assert (g7["pci-bus-id"], g7["minor-number"], g7["serial"], g7["uuid"], g7["module-id"]) == (
        "0000:8c:00.0",
        7,
        "1652923033989",
        "GPU-7b2a395e-870d-603f-6111-c42a3f798fe9",
        7,
    )
    buses = [subs[f"gpu-{i}"].data["pci-bus-id"] for i in range(8)]
    assert buses == [
        "0000:04:00.0",
        "0000:05:00.0",
        "0000:0b:00.0",
        "0000:0c:00.0",
        "0000:84:00.0",
        "0000:85:00.0",
        "0000:8b:00.0",
        "0000:8c:00.0",
    ]
    assert [subs[f"gpu-{i}"].data["module-id"] for i in range(8)] == [4, 2, 1, 3, 8, 6, 5, 7]


def test_a100_40gb_mig_enabled() -> None:
    subs = by_name(parse_smi_xml(xml("a100-sxm4-40gb-x1-510.47.03.xml")))
    assert subs["smi"].data["driver"] == "510.47.03"
    assert subs["smi"].data["cuda-version"] == "11.6"
    assert subs["smi"].data["gpu-count"] == 1
    assert "gpu.addressing-mode" not in subs["smi"].data  # no <addressing_mode> in this driver's XML
    g = subs["gpu-0"].data
    assert g["product-name"] == "NVIDIA A100-SXM4-40GB"
    assert (g["mig-mode-current"], g["mig-mode-pending"], g["mig-devices-count"]) == ("Enabled", "Enabled", 2)
    assert (g["pci-device-id"], g["pci-subsystem-id"]) == ("0x20b0", "0x134f")
    assert (g["memory-total-mib"], g["memory-reserved-mib"], g["bar1-total-mib"]) == (40960, 605, 65536)
    # old <power_readings> schema: enforced_power_limit / power_limit (requested)
    assert (g["power-limit-enforced-w"], g["power-limit-requested-w"], g["power-limit-min-w"]) == (400.0, 400.0, 100.0)
    assert g["power-management"] == "Supported"
    assert (g["clock-app-graphics-mhz"], g["clock-max-sm-mhz"], g["clock-max-video-mhz"]) == (1095, 1410, 1290)
    assert g["module-id"] == 3  # <gpu_module_id>
    # <remapped_rows>N/A</remapped_rows>: the children are "N/A" too
    assert g["remapped-rows-pending"] is None and g["remapped-rows-correctable"] is None
    assert "fabric-state" not in g  # no <fabric> element in 510
    assert "addressing-mode" not in g


def test_a100_80gb_attached_differs_from_listed() -> None:
    subs = by_name(parse_smi_xml(xml("a100-sxm4-80gb-x1-535.54.03.xml")))
    assert subs["smi"].data["attached-gpus"] == 4
    assert subs["smi"].data["gpu-count"] == 1
    g = subs["gpu-0"].data
    assert (g["minor-number"], g["pci-bus-id"], g["mig-devices-count"]) == (1, "0000:01:00.0", 4)
    assert (g["fabric-state"], g["fabric-status"]) == (None, None)  # <state>N/A</state>
    assert "fabric-clique-id" not in g
    assert (g["pcie-link-gen-host-max"], g["pcie-link-gen-device-max"]) == (4, 4)
    assert g["virtualization-mode"] == "None"
    assert (g["power-limit-enforced-w"], g["power-limit-requested-w"]) == (500.0, 500.0)


def test_v100s_x8_older_schema() -> None:
    subs = parse_smi_xml(xml("v100s-pcie-32gb-x8-460.73.01.xml"))
    assert len(subs) == 9
    smi = subs[0].data
    assert (smi["driver"], smi["cuda-version"], smi["gpu-count"]) == ("460.73.01", "11.2", 8)
    assert "gpu.product-architecture" not in smi and "gpu.gsp-firmware-version" not in smi
    assert smi["gpu.models"] == "8x Tesla V100S-PCIE-32GB"
    serials = [s.data["serial"] for s in subs[1:]]
    assert serials[0] == "1562920006088" and serials[7] == "1562920006372"
    g = subs[1].data
    assert "product-architecture" not in g and "gsp-firmware-version" not in g and "memory-reserved-mib" not in g
    assert (g["product-brand"], g["accounting-mode"], g["pci-device-id"]) == ("Tesla", "Enabled", "0x1df6")
    assert (g["retired-pages-pending"], g["retired-pages-sbe-count"], g["retired-pages-dbe-count"]) == (False, 0, 0)
    assert (g["mig-mode-current"], g["mig-devices-count"]) == (None, 0)
    assert (g["power-limit-default-w"], g["clock-max-graphics-mhz"], g["memory-total-mib"]) == (250.0, 1597, 32510)
    assert subs[8].data["pci-bus-id"] == "0000:00:14.0"


def test_t4_link_width_and_retired_pages() -> None:
    g = by_name(parse_smi_xml(xml("tesla-t4-x1-515.105.01.xml")))["gpu-0"].data
    assert (g["pcie-link-width-max"], g["pcie-link-width-current"], g["pcie-link-gen-max"]) == (16, 8, 3)
    assert (g["pci-bus-id"], g["pci-device-id"], g["pci-subsystem-id"]) == ("0000:00:1e.0", "0x1eb8", "0x12a2")
    assert (g["gsp-firmware-version"], g["serial"], g["memory-total-mib"]) == ("515.105.01", "0000000000000", 15360)
    assert (g["power-limit-enforced-w"], g["power-limit-min-w"], g["clock-app-mem-mhz"]) == (70.0, 60.0, 5001)


def test_geforce_na_values_are_none() -> None:
    subs = by_name(parse_smi_xml(xml("gtx1070ti-x1-470.82.00.xml")))
    assert subs["smi"].data["gpu.gsp-firmware-version"] is None
    g = subs["gpu-0"].data
    assert g["serial"] is None and g["gpu-part-number"] is None
    assert (g["ecc-mode-current"], g["clock-app-graphics-mhz"], g["clock-max-boost-graphics-mhz"]) == (None, None, None)
    assert (g["pci-subsystem-vendor-id"], g["pci-subsystem-id"]) == ("0x19da", "0x2436")
    assert (g["pcie-link-gen-current"], g["power-limit-max-w"], g["product-brand"]) == (1, 252.0, "GeForce")


def test_fake_b200_minimal_xml() -> None:
    subs = parse_smi_xml(xml("fake-nvidia-smi-b200.xml"))
    assert subs[0].data == {
        "driver": "560.35.03",
        "cuda-version": "12.6",
        "gpu-count": 8,
        "attached-gpus": 8,
        "gpu.model": "NVIDIA B200",
        "gpu.product-architecture": "Blackwell",
        "gpu.models-uniform": True,
        "gpu.models": "8x NVIDIA B200",
        "gpu.config-uniform": True,
    }
    assert subs[1].data == {
        "product-name": "NVIDIA B200",
        "product-brand": "NVIDIA",
        "product-architecture": "Blackwell",
        "uuid": "GPU-fake-0000-0000-0000-000000000000",
        "minor-number": 0,
        "pci-bus-id": "0000:00:04.0",  # no <pci_bus_id>: taken from <gpu id=...>
        "memory-total-mib": 196608,
        "power-limit-requested-w": 1000.0,
    }


@pytest.mark.parametrize("name", ALL_XML)
def test_every_fixture_is_flat_typed_and_kebab(name: str) -> None:
    subs = parse_smi_xml(xml(name))
    root = ET.fromstring(xml(name))
    assert subs[0].data["gpu-count"] == len(root.findall("gpu"))
    assert len(subs) == 1 + len(root.findall("gpu"))
    for s in subs:
        assert s.context["source"] == SOURCE and s.context["status"] == "ok"
        for k, v in s.data.items():
            assert KEY_RE.match(k), k
            assert v is None or isinstance(v, (str, int, float, bool)), (k, v)
            assert v != "N/A"


# --------------------------------------------------------------------------------------- heterogeneity signals


def test_mixed_models_and_nonuniform_config() -> None:
    h100 = ET.fromstring(xml("gpu.xml"))
    t4 = ET.fromstring(xml("tesla-t4-x1-515.105.01.xml"))
    t4.append(h100.findall("gpu")[0])
    smi = parse_smi_xml(ET.tostring(t4, encoding="unicode"))[0].data
    assert smi["gpu-count"] == 2
    assert smi["gpu.models-uniform"] is False
    assert smi["gpu.models"] == "1x NVIDIA H100 80GB HBM3, 1x Tesla T4"
    assert smi["gpu.model"] == "Tesla T4"  # GPU[0], as the original
    assert smi["gpu.config-uniform"] is False
    assert smi["gpu.config-nonuniform-keys"].split(",")[:2] == ["product-name", "vbios-version"]


def test_one_gpu_with_a_different_power_limit() -> None:
    root = ET.fromstring(xml("gpu.xml"))
    root.findall("gpu")[5].find("gpu_power_readings/current_power_limit").text = "500.00 W"  # type: ignore[union-attr]
    smi = parse_smi_xml(ET.tostring(root, encoding="unicode"))[0].data
    assert smi["gpu.models-uniform"] is True
    assert smi["gpu.config-uniform"] is False
    assert smi["gpu.config-nonuniform-keys"] == "power-limit-enforced-w"


def test_unparsable_field_keeps_the_text_and_flags_partial() -> None:
    root = ET.fromstring(xml("tesla-t4-x1-515.105.01.xml"))
    root.find("gpu/fb_memory_usage/total").text = "lots"  # type: ignore[union-attr]
    root.find("gpu/ecc_mode/current_ecc").text = "Not Supported"  # type: ignore[union-attr]
    subs = parse_smi_xml(ET.tostring(root, encoding="unicode"))
    assert subs[1].data["memory-total-mib"] == "lots"
    assert subs[1].data["ecc-mode-current"] is None
    assert subs[1].context == {"source": SOURCE, "status": "partial", "reason": "could not parse: memory-total-mib"}
    assert subs[0].context["status"] == "partial" and "gpu-0" in subs[0].context["reason"]


def test_zero_gpus() -> None:
    text = (
        "<nvidia_smi_log><driver_version>570.86.15</driver_version><cuda_version>12.8</cuda_version>"
        "<attached_gpus>0</attached_gpus></nvidia_smi_log>"
    )
    subs = parse_smi_xml(text)
    assert len(subs) == 1
    assert subs[0].data == {"driver": "570.86.15", "cuda-version": "12.8", "gpu-count": 0, "attached-gpus": 0}


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty output"),
        ("   \n", "empty output"),
        ("this is not xml", "unparsable XML"),
        ("<html><body>502</body></html>", "unexpected root element <html>"),
    ],
)
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(SmiParseError, match=re.escape(fragment)):
        parse_smi_xml(text)


# --------------------------------------------------------------------------------------- collect: failure modes


def only_smi(subs: list[Subtype]) -> Subtype:
    assert [s.name for s in subs] == ["smi"]
    assert subs[0].data == {}
    assert subs[0].context["source"] == SOURCE
    return subs[0]


def test_collect_ok_runs_argv_list_and_nvlink() -> None:
    nvlink = (
        "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-ab6ab95d-8259-5551-5962-e4a7a710fbae)\n"
        + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(18))
        + "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-7b151767-dab0-1c03-7c90-5231f72b47b2)\n"
        + "".join(f"\t Link {i}: 26.562 GB/s\n" for i in range(17))
        + "\t Link 17: <inactive>\n"
    )
    runner = FakeRunner({"nvidia-smi -q -x": ok(xml("gpu.xml")), "nvidia-smi nvlink -s": ok(nvlink)})
    subs = by_name(collect_gpu_smi(runner, timeout=7.0))
    assert runner.calls[0] == (["nvidia-smi", "-q", "-x"], 7.0)
    assert runner.calls[1][0] == ["nvidia-smi", "nvlink", "-s"] and runner.calls[1][1] <= 7.0
    assert (subs["gpu-0"].data["nvlink-links-active"], subs["gpu-0"].data["nvlink-links-inactive"]) == (18, 0)
    assert (subs["gpu-1"].data["nvlink-links-active"], subs["gpu-1"].data["nvlink-links-inactive"]) == (17, 1)
    assert "nvlink-links-active" not in subs["gpu-2"].data
    assert subs["smi"].context["nvlink"] == "ok (nvidia-smi nvlink -s, 2 GPUs)"
    assert subs["smi"].context["status"] == "ok"
    assert subs["smi"].data["gpu.config-uniform"] is False  # 18 vs 17 vs unknown active links
    assert "nvlink-links-active" in subs["smi"].data["gpu.config-nonuniform-keys"]


def test_collect_nvlink_failure_is_only_noted() -> None:
    runner = FakeRunner({"nvidia-smi -q -x": ok(xml("gpu.xml"))})  # nvlink -s: exit 2 (like the fake nvidia-smi)
    subs = collect_gpu_smi(runner)
    assert subs[0].context["status"] == "ok"
    assert subs[0].context["nvlink"].startswith("unavailable: exit status 2")
    assert all("nvlink-links-active" not in s.data for s in subs)
    assert (
        collect_gpu_smi(FakeRunner({"nvidia-smi -q -x": ok(xml("gpu.xml"))}), nvlink=False)[0].context.get("nvlink")
        is None
    )


def test_parse_nvlink_status_shapes() -> None:
    text = (
        "GPU 0: Tesla V100-SXM2-16GB (UUID: GPU-aaa)\n\t Link 0: 25.781 GB/s\n\t Link 1: <inactive>\n"
        "GPU 1: Tesla T4 (UUID: GPU-bbb)\n"
        "some warning line\n"
    )
    states = parse_nvlink_status(text)
    assert [(s.index, s.uuid, s.active, s.inactive) for s in states] == [(0, "GPU-aaa", 1, 1), (1, "GPU-bbb", 0, 0)]
    assert parse_nvlink_status("") == []


def test_collect_missing_binary_is_unavailable() -> None:
    s = only_smi(collect_gpu_smi(FakeRunner({"nvidia-smi -q -x": CommandNotFound(["nvidia-smi"], "not found")})))
    assert s.context["status"] == "unavailable"
    assert "nvidia-smi not found" in s.context["reason"]


def test_collect_timeout_is_error() -> None:
    runner = FakeRunner({"/opt/nv/nvidia-smi -q -x": CommandTimeout(["/opt/nv/nvidia-smi"], 10.0)})
    s = only_smi(collect_gpu_smi(runner, nvidia_smi="/opt/nv/nvidia-smi"))
    assert s.context["status"] == "error"
    assert s.context["reason"] == "nvidia-smi timed out after 10s"


def test_collect_nonzero_exit_keeps_stderr() -> None:
    res = CommandResult(15, "", "Unable to determine the device handle for GPU 0000:8C:00.0: Unknown Error\n", 0.2)
    s = only_smi(collect_gpu_smi(FakeRunner({"nvidia-smi -q -x": res})))
    assert s.context["status"] == "error"
    assert s.context["reason"] == (
        "nvidia-smi failed: exit status 15: Unable to determine the device handle for GPU 0000:8C:00.0: Unknown Error"
    )


def test_collect_driver_gone_message_on_stdout() -> None:
    msg = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.\n"
    )
    s = only_smi(collect_gpu_smi(FakeRunner({"nvidia-smi -q -x": CommandResult(9, msg, "", 0.1)})))
    assert s.context["status"] == "error"
    assert "exit status 9: NVIDIA-SMI has failed" in s.context["reason"]


def test_collect_nonzero_exit_with_usable_xml_is_partial() -> None:
    res = CommandResult(15, xml("gpu.xml"), "Unable to determine the device handle for GPU 0000:8D:00.0\n", 0.2)
    subs = collect_gpu_smi(FakeRunner({"nvidia-smi -q -x": res}), nvlink=False)
    assert len(subs) == 9
    assert subs[0].context["status"] == "partial"
    assert subs[0].context["reason"].startswith("nvidia-smi exit status 15: Unable to determine")


@pytest.mark.parametrize(
    "stdout, fragment",
    [
        ("", "nvidia-smi output: empty output"),
        ("\x00\x01garbage", "nvidia-smi output: unparsable XML"),
        (xml("gpu.xml")[:50000], "nvidia-smi output: unparsable XML"),  # truncated
    ],
)
def test_collect_bad_output_is_error(stdout: str, fragment: str) -> None:
    s = only_smi(collect_gpu_smi(FakeRunner({"nvidia-smi -q -x": ok(stdout)})))
    assert s.context["status"] == "error"
    assert s.context["reason"].startswith(fragment)
