"""collector.systemd with a fake runner fed real ``systemctl show`` output (systemd 252, captured on this machine in a
private PID/mount namespace) and synthetic output; plus the real systemctl here, which has no systemd as PID 1."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

import pytest

from collector.model import Subtype
from collector.runner import CommandNotFound, CommandResult, CommandTimeout, SubprocessRunner
from collector.systemd import DEFAULT_UNITS, PROPERTIES, collect_systemd, parse_systemctl_show, unit_data

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "systemd"
SHOW = (FIX / "show-debian12-systemd252.txt").read_text()
FULL = (FIX / "show-full-logind-systemd252.txt").read_text()
NO_PID1_STDERR = (FIX / "no-systemd-pid1.stderr").read_text()
NO_PID1_RC = int((FIX / "no-systemd-pid1.rc").read_text())

UNITS4 = ["dbus.service", "systemd-journald.service", "containerd.service", "cron.service"]


class FakeRunner:
    def __init__(self, *results: CommandResult | Exception) -> None:
        self.results = list(results)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> CommandResult:
        self.calls.append(list(argv))
        r = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(r, Exception):
            raise r
        return r


def ok(text: str) -> CommandResult:
    return CommandResult(0, text, "", 0.02)


def names(subs: Sequence[Subtype]) -> list[str]:
    return [s.name for s in subs]


DBUS = {
    "LoadState": "loaded",
    "ActiveState": "active",
    "SubState": "running",
    "Result": "success",
    "UnitFileState": "static",
    "UnitFilePreset": "enabled",
    "FragmentPath": "/lib/systemd/system/dbus.service",
    "NeedDaemonReload": False,
    "Type": "notify",
    "Restart": "no",
    "RestartUSec": "100ms",
    "NRestarts": 0,
    "ExecStart": "/usr/bin/dbus-daemon",
    "Slice": "system.slice",
    "Delegate": False,
    "KillMode": "control-group",
    "OOMScoreAdjust": -900,
    "TasksMax": 28909,
    "LimitNOFILE": 524288,
    "LimitNOFILESoft": 1024,
    "LimitMEMLOCK": 8388608,
    "LimitNPROC": 96365,
    "LimitCORE": "infinity",
}


def test_real_output_typed_and_curated() -> None:
    m = collect_systemd(FakeRunner(ok(SHOW)), UNITS4)
    assert m.type == "SystemD"
    assert names(m.subtypes) == UNITS4
    by = {s.name: s for s in m.subtypes}
    assert by["dbus.service"].data == DBUS
    assert by["dbus.service"].context == {"source": "systemctl show dbus.service", "status": "ok"}
    j = by["systemd-journald.service"].data
    assert (j["Restart"], j["RestartUSec"], j["OOMScoreAdjust"], j["ExecStart"]) == (
        "always",
        "0",
        -250,
        "/lib/systemd/systemd-journald",
    )  # a zero time span stays a string
    # not installed: still a subtype (as the original), only the state keys (the rest are manager defaults)
    assert by["containerd.service"].data == {"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}
    assert by["containerd.service"].context["status"] == "ok"


def test_argv_no_shell_no_pager_properties_then_units() -> None:
    runner = FakeRunner(ok(SHOW))
    collect_systemd(runner, UNITS4, systemctl="/usr/bin/systemctl")
    assert runner.calls == [
        ["/usr/bin/systemctl", "show", "--no-pager", "--property=" + ",".join(PROPERTIES), "--", *UNITS4]
    ]


def test_full_property_dump_is_filtered() -> None:
    (props,) = parse_systemctl_show(FULL)
    assert len(props) > 200 and "MainPID" in props and "InvocationID" in props
    data = unit_data(props)
    assert set(data) <= set(PROPERTIES) - {"Id"}
    assert "MainPID" not in data and "InvocationID" not in data and "ExecMainStartTimestamp" not in data
    assert data["ExecStart"] == "/lib/systemd/systemd-logind"
    assert data["Type"] == "dbus" and data["NRestarts"] == 0


def test_secrets_never_leave_the_unit() -> None:
    text = (
        "Id=kubelet.service\nLoadState=loaded\nActiveState=active\nSubState=running\n"
        "Environment=HTTPS_PROXY=http://user:hunter2@proxy:3128 KUBELET_TOKEN=abc.def\n"
        "EnvironmentFiles=/etc/default/kubelet (ignore_errors=yes)\n"
        "ExecStart={ path=/usr/bin/kubelet ; argv[]=/usr/bin/kubelet --token=abc.def --kubeconfig=/etc/k.conf ; "
        "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }\n"
        "ExecStart={ path=/usr/local/bin/helper ; argv[]=/usr/local/bin/helper --password=x ; ignore_errors=no }\n"
        "DropInPaths=/etc/systemd/system/kubelet.service.d/10-kubeadm.conf /etc/systemd/system/kubelet.service.d/20-x.conf\n"  # noqa: E501
        "NRestarts=3\nNeedDaemonReload=yes\nDelegate=yes\nLimitNOFILE=infinity\n"
    )
    (sub,) = collect_systemd(FakeRunner(ok(text)), ["kubelet.service"]).subtypes
    flat = repr(sub.data)
    for secret in ("hunter2", "abc.def", "password", "KUBELET_TOKEN", "/etc/default/kubelet", "--kubeconfig"):
        assert secret not in flat
    assert sub.data == {
        "LoadState": "loaded",
        "ActiveState": "active",
        "SubState": "running",
        "ExecStart": "/usr/bin/kubelet,/usr/local/bin/helper",
        "DropInPaths": "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf "
        "/etc/systemd/system/kubelet.service.d/20-x.conf",
        "NRestarts": 3,
        "NeedDaemonReload": True,
        "Delegate": True,
        "LimitNOFILE": "infinity",
    }


def test_blocks_matched_by_id_when_the_count_differs() -> None:
    blocks = SHOW.split("\n\n")
    text = "\n\n".join([blocks[2], blocks[0]])  # containerd, dbus; journald missing
    m = collect_systemd(FakeRunner(ok(text)), ["dbus.service", "systemd-journald.service", "containerd.service"])
    by = {s.name: s for s in m.subtypes}
    assert by["dbus.service"].data["ExecStart"] == "/usr/bin/dbus-daemon"
    assert by["containerd.service"].data["LoadState"] == "not-found"
    assert by["systemd-journald.service"].context["status"] == "error"


def test_no_systemd_as_pid1_is_unavailable_for_every_unit() -> None:
    res = CommandResult(NO_PID1_RC, "", NO_PID1_STDERR, 0.01)
    m = collect_systemd(FakeRunner(res))
    assert names(m.subtypes) == list(DEFAULT_UNITS)
    for s in m.subtypes:
        assert s.data == {}
        assert s.context["status"] == "unavailable"
        assert "System has not been booted with systemd" in s.context["reason"]
        assert "/run/systemd" in s.context["reason"]


@pytest.mark.parametrize(
    "stderr",
    ["Failed to connect to bus: No such file or directory", "Failed to connect to bus: Permission denied"],
)
def test_bus_unreachable_is_unavailable(stderr: str) -> None:
    m = collect_systemd(FakeRunner(CommandResult(1, "", stderr + "\n", 0.01)), ["kubelet.service"])
    assert m.subtypes[0].context["status"] == "unavailable"


def test_missing_systemctl_and_timeout() -> None:
    m = collect_systemd(FakeRunner(CommandNotFound(["systemctl"], "not found")), ["a.service", "b.service"])
    assert [s.context["status"] for s in m.subtypes] == ["unavailable", "unavailable"]
    assert "systemctl not found" in m.subtypes[0].context["reason"]
    m = collect_systemd(FakeRunner(CommandTimeout(["systemctl"], 3.0)), ["a.service"])
    assert m.subtypes[0].context == {
        "source": "systemctl show a.service",
        "status": "error",
        "reason": "systemctl timed out after 3s",
    }


def test_other_failure_falls_back_to_one_call_per_unit() -> None:
    blocks = SHOW.split("\n\n")
    runner = FakeRunner(
        CommandResult(1, "", "Failed to get properties: Unit weird@.service is not valid\n", 0.01),
        ok(blocks[0]),
        CommandResult(1, "", "Failed to get properties: Unit weird@.service is not valid\n", 0.01),
    )
    m = collect_systemd(runner, ["dbus.service", "weird@.service"])
    assert len(runner.calls) == 3 and runner.calls[1][-1] == "dbus.service" and runner.calls[2][-1] == "weird@.service"
    by = {s.name: s for s in m.subtypes}
    assert by["dbus.service"].data["LoadState"] == "loaded"
    assert by["weird@.service"].context["status"] == "error"
    assert "is not valid" in by["weird@.service"].context["reason"]


def test_invalid_unit_names_never_reach_systemctl() -> None:
    runner = FakeRunner(ok(SHOW.split("\n\n")[0]))
    m = collect_systemd(runner, ["--host=evil", "a b.service", "dbus.service", "dbus.service"])
    assert names(m.subtypes) == ["--host=evil", "a b.service", "dbus.service"]
    assert runner.calls[0][-2:] == ["--", "dbus.service"]
    assert [s.context["status"] for s in m.subtypes] == ["error", "error", "ok"]


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="no systemctl here")
def test_real_systemctl_on_this_machine() -> None:
    m = collect_systemd(SubprocessRunner(), ["containerd.service", "kubelet.service"], timeout=10)
    assert names(m.subtypes) == ["containerd.service", "kubelet.service"]
    pid1 = Path("/proc/1/comm").read_text().strip() if Path("/proc/1/comm").exists() else ""
    for s in m.subtypes:
        if pid1 == "systemd":
            assert s.context["status"] == "ok" and "LoadState" in s.data
        else:  # this sandbox: no systemd manager
            assert s.context["status"] == "unavailable" and s.context["reason"]
