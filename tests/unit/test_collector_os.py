"""collector.os_info against fixture host trees (tests/fixtures/host/) and once against this machine."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

from collector.host import collect_host
from collector.model import Measurement
from collector.os_info import (
    REDACTED,
    collect_cpu,
    collect_grub,
    collect_kernel,
    collect_kmod,
    collect_memory,
    collect_release,
    collect_sysctl,
    parse_cmdline,
    parse_os_release,
    sysctl_excluded,
)
from collector.sources import SOURCES

HOST = Path(__file__).resolve().parents[1] / "fixtures" / "host"
H100 = HOST / "h100x8"
NOGPU = HOST / "no-gpu"


def roots(tree: Path) -> dict[str, str]:
    return {"proc_root": str(tree / "proc"), "sys_root": str(tree / "sys"), "etc_root": str(tree / "etc")}


def collect_os(
    proc_root: str = "/proc", sys_root: str = "/sys", etc_root: str = "/etc", uname: Callable[[], Any] = os.uname
) -> Measurement:
    """The ``OS`` measurement alone: the registry's OS sources, run as collect_host runs them."""
    [measurement] = collect_host(
        proc_root=proc_root,
        sys_root=sys_root,
        etc_root=etc_root,
        uname=uname,
        sources=[s for s in SOURCES if s.measurement == "OS"],
    )
    return measurement


# ---------------------------------------------------------------------------------------------------- release


def test_parse_os_release_quotes_comments_empty() -> None:
    text = '# c\nNAME="Ubuntu"\nID=ubuntu\nVERSION_ID=\'22.04\'\nEMPTY=\nNOEQ\nQ="a \\"b\\" \\$c"\n\n'
    assert parse_os_release(text) == {"NAME": "Ubuntu", "ID": "ubuntu", "VERSION_ID": "22.04", "Q": 'a "b" $c'}


def test_release_through_relative_symlink_in_host_tree() -> None:
    sub = collect_release(str(H100 / "etc"))
    assert sub.data["ID"] == "ubuntu"
    assert sub.data["VERSION_ID"] == "22.04"
    assert sub.data["PRETTY_NAME"] == "Ubuntu 22.04.5 LTS"
    assert sub.context == {"source": "/usr/lib/os-release", "status": "ok"}


def test_release_absolute_symlink_is_rerooted_not_the_containers_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text("ID=hostos\nVERSION_ID=9\n")
    os.symlink("/usr/lib/os-release", tmp_path / "etc/os-release")  # absolute: must resolve under tmp_path
    sub = collect_release(str(tmp_path / "etc"))
    assert sub.data == {"ID": "hostos", "VERSION_ID": "9"}


def test_release_falls_back_to_usr_lib_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/os-release").write_text("ID=fallback\n")
    assert collect_release(str(tmp_path / "etc")).data == {"ID": "fallback"}
    (tmp_path / "usr/lib/os-release").unlink()
    os.symlink("../usr/lib/os-release", tmp_path / "etc/os-release")  # dangling: host /usr not mounted
    sub = collect_release(str(tmp_path / "etc"))
    assert sub.data == {}
    assert sub.context["status"] == "unavailable"
    assert "->" in sub.context["reason"] and "not found" in sub.context["reason"]


def test_release_plain_file_no_gpu_tree() -> None:
    sub = collect_release(str(NOGPU / "etc"))
    assert sub.data["ID"] == "debian" and sub.data["VERSION_ID"] == "12"
    assert "EMPTY" not in sub.data
    assert sub.context["source"] == "/etc/os-release"


# ------------------------------------------------------------------------------------------------------- grub


def test_cmdline_original_semantics_plus_redaction() -> None:
    sub = collect_grub(str(H100 / "proc"))
    assert sub.context == {"source": "/proc/cmdline", "status": "ok"}
    assert sub.data == {
        "BOOT_IMAGE": "/boot/vmlinuz-5.15.0-1048-nvidia",
        "ro": "",
        "console": "ttyS0,115200n8",  # duplicates: last wins
        "intel_iommu": "on",
        "iommu": "pt",
        "pci": "realloc=off",  # split on the first '=' only
        "init_on_alloc": "0",
        "transparent_hugepage": "madvise",
        "rd.luks.key": REDACTED,
        "dyndbg": "file drivers/pci/* +p",  # double quotes group
        "nvme_core.multipath": "n",
        "quiet": "",
        "splash": "",
    }  # root= dropped; "single" after "--" is for init, dropped


@pytest.mark.parametrize(
    "name, secret",
    [
        ("rd.luks.key", True),
        ("api_token", True),
        ("my-password", True),
        ("auth", True),
        ("keyboard", False),
        ("console", False),
        ("iscsi_initiator", False),
        ("mem_encrypt", False),
    ],
)
def test_secret_names(name: str, secret: bool) -> None:
    assert parse_cmdline(f"{name}=v") == {name: REDACTED if secret else "v"}


REAL_LOOKING = (
    "BOOT_IMAGE=/vmlinuz-6.8.0-1015-nvidia root=/dev/mapper/vg-root ro quiet "
    "systemd.setenv=DB_PASSWORD=Sup3rS3cret! luks.passphrase=correct-horse rd.luks.uuid=luks-3f1c2d "
    "rd.luks.key=/keyfile:UUID=77aa luks.key=/boot/k.bin "
    "inst.ks=https://deploy:Passw0rd@ks.example.com/gpu.cfg "
    "ds=nocloud-net;s=http://10.0.0.5:8000/seed/?token=eyJhbGciOiJIUzI1NiJ9 "
    "netroot=iscsi:initiator:chap-secret@10.0.0.7::3260::iqn.2024-01.com.example:gpu "
    "bearer=ghp_abcdefghijklmnop authtoken=xoxb-123-456 ipmi_pw=calvin bmc-pw=admin "
    "image_url=https://bucket.s3.amazonaws.com/img?X-Amz-Signature=abc123&X-Amz-Expires=600 "
    'hdr="Authorization: Bearer abc.def" jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3OCJ9.sig '
    "rd.iscsi.param=node.session.auth.password=chap "
    "console=ttyS0,115200n8 intel_iommu=on iommu=pt pci=realloc=off vconsole.keymap=us "
    "nvidia-drm.modeset=1 hugepagesz=1G hugepages=16 systemd.setenv=LANG=C.UTF-8 "
    "ip=10.0.0.9::10.0.0.1:255.255.255.0:gpu-1:eth0:off nfsroot=10.0.0.2:/srv/root,vers=4"
)


def test_real_looking_cmdline_is_redacted_by_name_and_by_value_shape() -> None:
    got = parse_cmdline(REAL_LOOKING)
    for key in (
        "luks.passphrase",
        "rd.luks.uuid",
        "rd.luks.key",
        "luks.key",
        "inst.ks",
        "ds",
        "netroot",
        "bearer",
        "authtoken",
        "ipmi_pw",
        "bmc-pw",
        "image_url",
        "hdr",
        "jwt",
        "rd.iscsi.param",
    ):
        assert got[key] == REDACTED, key
    kept = {
        "console": "ttyS0,115200n8",
        "intel_iommu": "on",
        "iommu": "pt",
        "pci": "realloc=off",
        "vconsole.keymap": "us",
        "nvidia-drm.modeset": "1",
        "hugepagesz": "1G",
        "hugepages": "16",
        "ip": "10.0.0.9::10.0.0.1:255.255.255.0:gpu-1:eth0:off",
        "nfsroot": "10.0.0.2:/srv/root,vers=4",
        "BOOT_IMAGE": "/vmlinuz-6.8.0-1015-nvidia",
        "ro": "",
        "quiet": "",
    }
    assert {k: got[k] for k in kept} == kept
    for secret in (
        "Sup3rS3cret",
        "correct-horse",
        "Passw0rd",
        "eyJhbGci",
        "chap",
        "ghp_",
        "xoxb",
        "calvin",
        "admin",
        "abc123",
        "luks-3f1c2d",
    ):
        assert not any(secret in v for v in got.values()), secret


@pytest.mark.parametrize(
    "arg, value",
    [
        ("systemd.setenv=DB_PASSWORD=hunter2", "DB_PASSWORD=<redacted>"),
        ("systemd.setenv=API_TOKEN=t", "API_TOKEN=<redacted>"),
        ("systemd.setenv=PROXY=http://u:p@proxy:3128", "PROXY=<redacted>"),
        ("systemd.setenv=LANG=C", "LANG=C"),
        ("systemd.setenv=FOO", "FOO"),
    ],
)
def test_systemd_setenv_keeps_the_name_and_redacts_a_secret_value(arg: str, value: str) -> None:
    assert parse_cmdline(arg) == {"systemd.setenv": value}


# ------------------------------------------------------------------------------------------------------- kmod


def test_kmod_from_proc_modules() -> None:
    sub = collect_kmod(str(H100 / "proc"))
    assert sub.data == {
        m: True
        for m in (
            "nvidia_peermem",
            "nvidia_uvm",
            "nvidia_drm",
            "nvidia_modeset",
            "nvidia",
            "mlx5_ib",
            "mlx5_core",
            "ib_core",
            "overlay",
            "br_netfilter",
        )
    }


def test_kmod_missing_is_unavailable(tmp_path: Path) -> None:
    sub = collect_kmod(str(tmp_path))
    assert sub.data == {} and sub.context["status"] == "unavailable"
    assert "/proc/modules not found" in sub.context["reason"]


# ----------------------------------------------------------------------------------------------------- sysctl

H100_SYSCTL = {
    "/proc/sys/kernel/osrelease": "5.15.0-1048-nvidia",
    "/proc/sys/kernel/version": "#48-Ubuntu SMP Tue Nov 28 11:33:27 UTC 2023",
    "/proc/sys/kernel/hostname": "dgx-h100-017",
    "/proc/sys/kernel/numa_balancing": 0,
    "/proc/sys/kernel/printk": "4 4 1 7",
    "/proc/sys/kernel/pid_max": 4194304,
    "/proc/sys/kernel/core_pattern": "|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E",
    "/proc/sys/kernel/tainted": 12288,
    "/proc/sys/kernel/pty/max": 4096,
    "/proc/sys/kernel/core_modes": "file pipe",
    "/proc/sys/vm/swappiness": 60,
    "/proc/sys/vm/nr_hugepages": 1024,
    "/proc/sys/vm/max_map_count": 65530,
    "/proc/sys/vm/overcommit_memory": 0,
    "/proc/sys/vm/min_free_kbytes": 67584,
    "/proc/sys/vm/lowmem_reserve_ratio": "256 256 32 0 0",
    "/proc/sys/fs/file-max": 9223372036854775807,
    "/proc/sys/fs/inotify/max_user_watches": 1048576,
    "/proc/sys/net/core/somaxconn": 4096,
    "/proc/sys/net/core/rmem_max": 212992,
    "/proc/sys/net/core/netdev_max_backlog": 1000,
    "/proc/sys/net/ipv4/tcp_rmem": "4096 131072 6291456",
    "/proc/sys/net/ipv4/tcp_congestion_control": "cubic",
    "/proc/sys/net/ipv4/ip_local_port_range": "32768 60999",
    "/proc/sys/net/ipv4/conf/all/rp_filter": 2,
    "/proc/sys/net/ipv4/conf/default/rp_filter": 2,
    "/proc/sys/net/ipv6/conf/all/disable_ipv6": 0,
    "/proc/sys/net/netfilter/nf_conntrack_max": 262144,
    "/proc/sys/sunrpc/transports/tcp": 1048576,  # every line has >= 2 fields: split, as the original
    "/proc/sys/sunrpc/transports/udp": 32768,
    "/proc/sys/sunrpc/transports/rdma": 1048576,
    "/proc/sys/user/max_user_namespaces": 1029702,
}


def test_sysctl_h100_exact() -> None:
    sub = collect_sysctl(str(H100 / "proc"))
    assert sub.context == {"source": "/proc/sys", "status": "ok"}
    assert sub.data == H100_SYSCTL


@pytest.mark.parametrize(
    "rel, excluded",
    [
        ("kernel/random/boot_id", True),
        ("kernel/random/uuid", True),
        ("kernel/random/entropy_avail", True),
        ("kernel/random/", False),
        ("kernel/random/poolsize", False),
        ("kernel/random/write_wakeup_threshold", False),
        ("kernel/random/urandom_min_reseed_secs", False),
        ("kernel/ns_last_pid", True),
        ("kernel/pty/nr", True),
        ("kernel/pty/max", False),
        ("fs/file-nr", True),
        ("fs/aio-max-nr", False),
        ("fs/aio-nr", True),
        ("fs/quota/lookups", True),
        ("fs/quota/warnings", False),
        ("net/ipv4/conf/eth0/rp_filter", True),
        ("net/ipv4/conf/eth0/", True),
        ("net/ipv4/conf/all/rp_filter", False),
        ("net/ipv6/conf/default/accept_ra", False),
        ("net/ipv6/conf/all/stable_secret", True),
        ("net/ipv4/neigh/default/gc_thresh1", True),
        ("net/ipv4/tcp_fastopen_key", True),
        ("net/ipv4/tcp_rmem", False),
        ("net/core/somaxconn", False),
        ("net/netfilter/nf_conntrack_count", True),
        ("net/netfilter/nf_conntrack_max", False),
        ("dev/cdrom/info", True),
        ("vm/drop_caches", True),
        ("kernel/sched_domain/cpu0/domain0/flags", True),
        ("kernel/perf_event_max_sample_rate", True),
        ("net/core/netdev_rss_key", True),
        ("net/core/netdev_max_backlog", False),
    ],
)
def test_sysctl_exclusions(rel: str, excluded: bool) -> None:
    assert sysctl_excluded(rel) is excluded


def test_netdev_rss_key_is_not_collected(tmp_path: Path) -> None:
    core = tmp_path / "sys" / "net" / "core"
    core.mkdir(parents=True)
    (core / "netdev_rss_key").write_text("3f:a1:0c:77:" * 12 + "00\n")
    (core / "somaxconn").write_text("4096\n")
    sub = collect_sysctl(str(tmp_path))
    assert sub.data == {"/proc/sys/net/core/somaxconn": 4096}


def test_sysctl_bounds_make_it_partial() -> None:
    sub = collect_sysctl(str(H100 / "proc"), max_keys=5)
    assert len(sub.data) == 5
    assert sub.context["status"] == "partial" and "5-key limit" in sub.context["reason"]
    sub = collect_sysctl(str(H100 / "proc"), time_budget=0)
    assert sub.context["status"] == "partial" and "time budget" in sub.context["reason"]


def test_sysctl_missing(tmp_path: Path) -> None:
    sub = collect_sysctl(str(tmp_path))
    assert sub.context["status"] == "unavailable"


# ------------------------------------------------------------------------------------- kernel / cpu / memory


def test_kernel_from_proc_and_injected_uname() -> None:
    uname = lambda: SimpleNamespace(release="ignored", version="ignored", machine="aarch64")  # noqa: E731
    sub = collect_kernel(str(H100 / "proc"), uname)
    assert sub.data == {
        "release": "5.15.0-1048-nvidia",
        "version": "#48-Ubuntu SMP Tue Nov 28 11:33:27 UTC 2023",
        "arch": "aarch64",
    }


def test_kernel_falls_back_to_uname(tmp_path: Path) -> None:
    uname = lambda: SimpleNamespace(release="6.8.0-x", version="#1  SMP", machine="x86_64")  # noqa: E731
    assert collect_kernel(str(tmp_path), uname).data == {"release": "6.8.0-x", "version": "#1 SMP", "arch": "x86_64"}


def test_cpu_h100_sysfs_topology() -> None:
    sub = collect_cpu(str(H100 / "proc"), str(H100 / "sys"))
    assert sub.data == {
        "model-name": "Intel(R) Xeon(R) Platinum 8480C",
        "vendor-id": "GenuineIntel",
        "cpu-family": 6,
        "model": 143,
        "stepping": 8,
        "microcode": "0x2b0004b1",
        "logical-cpus": 8,
        "sockets": 2,
        "cores-per-socket": 2,
        "threads-per-core": 2,
        "numa-nodes": 2,
        "smt-control": "on",
        "isolated-cpus": "",
    }


def test_cpu_without_sysfs_topology_uses_cpuinfo() -> None:
    sub = collect_cpu(str(NOGPU / "proc"), str(NOGPU / "sys"))
    assert sub.data == {
        "model-name": "AMD EPYC 7B13",
        "vendor-id": "AuthenticAMD",
        "cpu-family": 25,
        "model": 1,
        "stepping": 0,
        "microcode": "0xa0011d1",
        "logical-cpus": 4,
        "sockets": 1,
        "cores-per-socket": 2,
        "threads-per-core": 2,
        "numa-nodes": 1,
    }


def test_memory_h100() -> None:
    sub = collect_memory(str(H100 / "proc"), str(H100 / "sys"))
    assert sub.data == {
        "mem-total-kb": 2113323008,
        "swap-total-kb": 0,
        "hugepages-total": 1024,
        "hugepage-size-kb": 2048,
        "hugetlb-kb": 2097152,
        "hugepages-2048kb-total": 1024,
        "hugepages-1048576kb-total": 0,
        "thp-enabled": "madvise",
        "thp-defrag": "madvise",
    }


def test_collect_os_order_and_missing_sources(tmp_path: Path) -> None:
    m = collect_os(**roots(H100))
    assert m.type == "OS"
    assert [s.name for s in m.subtypes] == [
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
    original = m.subtypes[:7]  # the h100x8 tree has no kernel config or IOMMU (see test_collector_net.py)
    assert all(s.context["status"] == "ok" for s in original)
    empty = collect_os(
        str(tmp_path / "p"),
        str(tmp_path / "s"),
        str(tmp_path / "e"),
        uname=lambda: (_ for _ in ()).throw(OSError("no uname")),
    )
    by = {s.name: s for s in empty.subtypes}
    assert {n: s.context["status"] for n, s in by.items()} == {n: "unavailable" for n in by}
    assert all(s.data == {} and s.context["reason"] for s in empty.subtypes)


# ------------------------------------------------------------------------------------------ this very machine


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux /proc")
def test_against_this_host() -> None:
    m = collect_os()
    by = {s.name: s for s in m.subtypes}
    try:
        expected = platform.freedesktop_os_release()  # an independent os-release reader
    except OSError:
        expected = None
    if expected is not None:
        assert by["release"].data["ID"] == expected["ID"]
        assert by["release"].data.get("VERSION_ID") == expected.get("VERSION_ID")
    assert by["kernel"].data["release"] == platform.release()
    assert by["kernel"].data["arch"] == platform.machine()
    sysctl = by["sysctl"].data
    assert sysctl["/proc/sys/kernel/osrelease"] == platform.release()
    assert all(k.startswith("/proc/sys/") for k in sysctl)
    assert not any(sysctl_excluded(k[len("/proc/sys/") :]) for k in sysctl)
    assert not any(
        k.endswith(("/random/uuid", "/random/boot_id", "/random/entropy_avail")) or "/conf/lo/" in k for k in sysctl
    )
    if os.path.exists("/proc/sys/kernel/random/poolsize"):
        assert "/proc/sys/kernel/random/poolsize" in sysctl  # a setting: kept
    assert 0 < len(sysctl) < 8000
    assert by["cpu"].data["logical-cpus"] == os.cpu_count()
    page = os.sysconf("SC_PAGE_SIZE")
    assert by["memory"].data["mem-total-kb"] == os.sysconf("SC_PHYS_PAGES") * page // 1024
    if Path("/proc/cmdline").exists():
        assert by["grub"].context["status"] == "ok"
    if not Path("/proc/modules").exists():
        assert by["kmod"].context["status"] == "unavailable"
    else:
        first = Path("/proc/modules").read_text().split("\n", 1)[0].split(" ", 1)[0]
        assert not first or by["kmod"].data[first] is True


def test_kernel_random_keeps_its_settings_and_drops_counters_and_ids(tmp_path: Path) -> None:
    rnd = tmp_path / "sys" / "kernel" / "random"
    rnd.mkdir(parents=True)
    for name, value in (
        ("boot_id", "0c2b3f1e-5a6d-4e7f-8a9b-0c1d2e3f4a5b"),
        ("uuid", "9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a"),
        ("entropy_avail", "256"),
        ("poolsize", "256"),
        ("urandom_min_reseed_secs", "60"),
        ("write_wakeup_threshold", "896"),
    ):
        (rnd / name).write_text(value + "\n")
    sub = collect_sysctl(str(tmp_path))
    assert sub.data == {
        "/proc/sys/kernel/random/poolsize": 256,
        "/proc/sys/kernel/random/urandom_min_reseed_secs": 60,
        "/proc/sys/kernel/random/write_wakeup_threshold": 896,
    }
