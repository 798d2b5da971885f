"""The drift engine (kubectl_aicr.diff): normalisation, volatile/identity tables, --ignore/--only, status changes,
whole subtypes/measurements, snapshots of the original tool, and grouping the nodes of a fleet."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from collector.model import Measurement, build_snapshot, missing, reading
from kubectl_aicr import snapshot_io
from kubectl_aicr.diff import (
    IDENTITY_RULES,
    VOLATILE_RULES,
    DiffOptions,
    KeyFilter,
    canonical,
    diff_indexes,
    diff_snapshots,
    fingerprint,
    fleet_options,
    group_by_configuration,
    index_snapshot,
    node_name,
    same_value,
)
from kubectl_aicr.schema import validate

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"


def load(name: str) -> dict[str, Any]:
    return snapshot_io.load(snapshot_io.FilePath(str(SNAPSHOTS / name)))


def paths(result: Any) -> list[tuple[str, str, str]]:
    return [(c.scope, c.change, c.path) for c in result.changes]


def sub(doc: dict[str, Any], type_: str, name: str) -> dict[str, Any]:
    for m in doc["measurements"]:
        if m["type"] == type_:
            for s in m.get("subtypes") or []:
                if s["subtype"] == name:
                    return s
    raise KeyError((type_, name))


def small(**data: Any) -> dict[str, Any]:
    return build_snapshot(
        {"timestamp": "2026-03-20T18:04:11Z", "source-node": "n1"},
        [Measurement("GPU", [reading("smi", data, source="nvidia-smi -q -x")])],
    )


# ============================================================================ normalisation


@pytest.mark.parametrize(
    "a, b",
    [
        (1, 1.0),
        (1, "1"),
        (1.0, "1"),
        (8, 8.0),
        (0, "0"),
        (-3, "-3"),
        (-3.0, "-3"),
        (True, "true"),
        (False, "false"),
        (None, "<nil>"),
        (12.5, "12.5"),
        (700.0, "700"),
        (2**40, float(2**40)),
        ("570.86.15", "570.86.15"),
    ],
)
def test_same_value_written_differently_is_not_drift(a: Any, b: Any) -> None:
    assert same_value(a, b) and same_value(b, a)
    assert not diff_snapshots(small(k=a), small(k=b)).drift


@pytest.mark.parametrize(
    "a, b",
    [
        ("08", 8),  # leading zero: a version part, a code or octal - not the number 8
        ("1.0", 1),  # quoted 1.0 reads like a version
        ("1.0", 1.0),
        ("12.10", "12.1"),  # CUDA 12.10 is not 12.1
        ("12.10", 12.1),
        ("True", True),  # only lower-case "true"/"false" are booleans
        (1, True),
        (0, False),
        ("1", True),
        ("", None),
        ("null", None),
        ("", "<nil>"),
        ("1e3", 1000),
        (" 1", 1),
        ("0x10", 16),
        ("+1", 1),
        ("-0", 0),
        (1.5, "1.50"),
        (float(2**53 + 2), str(2**53 + 2)),
    ],
)
def test_ambiguous_values_stay_different(a: Any, b: Any) -> None:
    assert not same_value(a, b) and not same_value(b, a)
    result = diff_snapshots(small(k=a), small(k=b))
    assert [(c.path, c.base, c.current) for c in result.changes] == [("GPU/smi/k", a, b)]


def test_canonical_texts() -> None:
    assert [canonical(v) for v in (None, True, False, 3, 3.0, 0.1, -0.0, float("inf"), "x")] == [
        "<nil>",
        "true",
        "false",
        "3",
        "3",
        "0.1",
        "0",
        "inf",
        "x",
    ]


# ============================================================================ two snapshots


def test_identical_snapshots_have_no_drift_and_nothing_ignored() -> None:
    a = load("node-a.yaml")
    result = diff_snapshots(a, copy.deepcopy(a))
    assert not result.drift and result.changes == [] and result.ignored == 0
    assert result.summary() == {"added": 0, "removed": 0, "changed": 0, "ignored": 0}


def test_a_later_run_differs_only_in_volatile_keys() -> None:
    a, b = load("node-a.yaml"), load("node-a-rerun.yaml")
    result = diff_snapshots(a, b)
    assert not result.drift
    assert result.ignored == 24  # 23 volatile keys + metadata.timestamp

    shown = diff_snapshots(a, b, DiffOptions(include_volatile=True))
    assert len(shown.changes) == 24
    assert ("metadata", "changed", "metadata/timestamp") in paths(shown)
    keys = {c.key for c in shown.changes if c.scope == "key"}
    assert keys == {
        "/proc/sys/fs/dentry-state",
        "/proc/sys/fs/file-nr",
        "/proc/sys/fs/inode-nr",
        "/proc/sys/kernel/ns_last_pid",
        "/proc/sys/kernel/random/uuid",
        "ActiveEnterTimestamp",
        "ActiveEnterTimestampMonotonic",
        "CPUUsageNSec",
        "ExecMainPID",
        "ExecMainStartTimestamp",
        "InvocationID",
        "MainPID",
        "MemoryCurrent",
        "TasksCurrent",
    }


def test_drift_fixture_reports_exactly_the_real_changes() -> None:
    result = diff_snapshots(load("node-a.yaml"), load("node-a-drift.yaml"))
    assert paths(result) == [
        ("key", "changed", "GPU/smi/driver"),
        ("key", "changed", "GPU/smi/gpu.gsp-firmware-version"),
        ("status", "changed", "GPU/gpu-1"),
        ("key", "added", "OS/sysctl//proc/sys/kernel/nmi_watchdog"),
        ("key", "changed", "OS/sysctl//proc/sys/vm/swappiness"),
        ("key", "removed", "OS/kmod/nvidia_peermem"),
        ("key", "changed", "SystemD/kubelet.service/NRestarts"),
        ("subtype", "removed", "SystemD/docker.service"),
        ("key", "added", "K8s/labels/nvidia.com/mig.config"),
        ("key", "changed", "K8s/policy/driver.version"),
        ("measurement", "added", "NodeTopology"),
    ]
    assert result.summary() == {"added": 3, "removed": 2, "changed": 6, "ignored": 25}
    status = result.changes[2]
    assert (status.base, status.current, status.keys) == ("ok", "error", 15)  # 17 keys, 2 of them volatile
    assert status.reason == "GPU 0000:28:00.0 fell off the bus (Xid 79)"
    removed = result.changes[7]
    assert (removed.keys, removed.base) == (3, "ok")
    added = result.changes[-1]
    assert (added.subtypes, added.keys) == (2, 4)
    # gpu-count "2", kmod nvidia "true", power limit 700 and fabric-state "<nil>" were re-typed, not changed
    assert not {"gpu-count", "nvidia", "power-limit-enforced-w", "fabric-state"} & {c.key for c in result.changes}


def test_status_change_folds_keys_only_when_a_side_is_empty() -> None:
    def snap(*subs: Any) -> dict[str, Any]:
        return build_snapshot({}, [Measurement("GPU", list(subs))])

    ok = reading("smi", {"driver": "570", "gpu-count": 8}, source="nvidia-smi")
    gone = missing("smi", source="nvidia-smi", reason="nvidia-smi: command not found")
    partial = reading(
        "smi", {"driver": "570", "gpu-count": 7}, source="nvidia-smi", status="partial", reason="GPU 3: unparsable"
    )

    lost = diff_snapshots(snap(ok), snap(gone))
    assert [(c.scope, c.base, c.current, c.keys, c.reason) for c in lost.changes] == [
        ("status", "ok", "unavailable", 2, "nvidia-smi: command not found")
    ]
    back = diff_snapshots(snap(gone), snap(ok))
    assert [(c.scope, c.base, c.current, c.keys, c.reason) for c in back.changes] == [
        ("status", "unavailable", "ok", 2, "nvidia-smi: command not found")
    ]
    part = diff_snapshots(snap(ok), snap(partial))
    assert [(c.scope, c.key, c.base, c.current, c.keys) for c in part.changes] == [
        ("status", None, "ok", "partial", None),
        ("key", "gpu-count", 8, 7, None),
    ]


def test_whole_subtypes_and_measurements_are_reported_once_with_counts() -> None:
    a = load("node-a.yaml")
    b = copy.deepcopy(a)
    b["measurements"] = [m for m in b["measurements"] if m["type"] != "SystemD"]
    sub(b, "K8s", "labels")["subtype"] = "node-labels"
    result = diff_snapshots(a, b)
    assert paths(result) == [
        ("measurement", "removed", "SystemD"),
        ("subtype", "removed", "K8s/labels"),
        ("subtype", "added", "K8s/node-labels"),
    ]
    systemd = result.changes[0]
    # 43 keys in three units, of which 2 x 9 are volatile
    assert (systemd.subtypes, systemd.keys) == (3, 43 - 18)
    assert result.changes[1].keys == result.changes[2].keys == 8


def test_original_tool_json_read_back_is_not_drift() -> None:
    """ints became floats on the original's JSON read-back; kind/apiVersion/context absent elsewhere."""
    result = diff_snapshots(load("original-h100.yaml"), load("original-h100-readback.json"))
    assert not result.drift and result.ignored == 0


def test_original_tool_vs_collector_snapshot() -> None:
    """No context (read as ok), a SystemD measurement without subtypes, '<nil>' for null, string numbers."""
    original = {
        "measurements": [
            {"type": "SystemD"},
            {"type": "GPU", "subtypes": [{"subtype": "smi", "data": {"gpu-count": "8", "driver": "570.86.15"}}]},
            {"type": "K8s", "subtypes": [{"subtype": "server", "data": {"version": "<nil>", "goVersion": "<nil>"}}]},
        ]
    }
    ours = build_snapshot(
        {},
        [
            Measurement("GPU", [missing("smi", source="nvidia-smi -q -x", reason="nvidia-smi not found")]),
            Measurement("SystemD", [reading("containerd.service", {"ActiveState": "active"}, source="systemd")]),
            Measurement("K8s", [reading("server", {"version": None, "goVersion": None}, source="GET /version")]),
        ],
    )
    result = diff_snapshots(original, ours)
    assert [(c.scope, c.change, c.path, c.base, c.current, c.keys) for c in result.changes] == [
        ("status", "changed", "GPU/smi", "ok", "unavailable", 2),
        ("subtype", "added", "SystemD/containerd.service", None, "ok", 1),
    ]


def test_metadata_and_context_text_are_volatile() -> None:
    a = load("node-a.yaml")
    b = copy.deepcopy(a)
    b["metadata"]["version"] = "0.2.0"
    sub(b, "OS", "sysctl")["context"]["source"] = "/host/proc/sys"
    assert not diff_snapshots(a, b).drift
    shown = diff_snapshots(a, b, DiffOptions(include_volatile=True))
    assert paths(shown) == [
        ("metadata", "changed", "metadata/version"),
        ("context", "changed", "OS/sysctl/context.source"),
    ]


def test_identity_keys_are_compared_unless_ignored() -> None:
    a = load("node-a.yaml")
    b = copy.deepcopy(a)
    sub(b, "GPU", "gpu-0")["data"]["uuid"] = "GPU-other"
    sub(b, "GPU", "gpu-1")["data"]["serial"] = "999"
    sub(b, "K8s", "node")["data"]["source-node"] = "gpu-node-02"
    sub(b, "K8s", "labels")["data"]["kubernetes.io/hostname"] = "gpu-node-02"
    sub(b, "OS", "sysctl")["data"]["/proc/sys/kernel/hostname"] = "gpu-node-02"
    assert len(diff_snapshots(a, b).changes) == 5
    hidden = diff_snapshots(a, b, DiffOptions(ignore_identity=True))
    assert not hidden.drift and hidden.ignored == 5


def test_ignore_patterns_match_type_subtype_key() -> None:
    a, b = load("node-a.yaml"), load("node-a-drift.yaml")
    ignore = ("OS/sysctl/*", "*/*/driver*", "SystemD/docker.service", "NodeTopology")
    r = diff_snapshots(a, b, DiffOptions(ignore=ignore))
    assert paths(r) == [
        ("key", "changed", "GPU/smi/gpu.gsp-firmware-version"),
        ("status", "changed", "GPU/gpu-1"),
        ("key", "removed", "OS/kmod/nvidia_peermem"),
        ("key", "changed", "SystemD/kubelet.service/NRestarts"),
        ("key", "added", "K8s/labels/nvidia.com/mig.config"),
    ]
    # a pattern that covers a whole subtype also hides its status change
    assert "GPU/gpu-1" not in {c.path for c in diff_snapshots(a, b, DiffOptions(ignore=("GPU/gpu-*/*",))).changes}
    # ...and a whole measurement
    assert all(c.type != "SystemD" for c in diff_snapshots(a, b, DiffOptions(ignore=("SystemD/*",))).changes)


def test_only_narrows_to_types_and_subtypes() -> None:
    a, b = load("node-a.yaml"), load("node-a-drift.yaml")
    assert {c.type for c in diff_snapshots(a, b, DiffOptions(only=("GPU",))).changes} == {"GPU"}
    assert paths(diff_snapshots(a, b, DiffOptions(only=("OS/sysctl", "K8s/lab*")))) == [
        ("key", "added", "OS/sysctl//proc/sys/kernel/nmi_watchdog"),
        ("key", "changed", "OS/sysctl//proc/sys/vm/swappiness"),
        ("key", "added", "K8s/labels/nvidia.com/mig.config"),
    ]
    # metadata is not compared under --only, even with volatile keys included
    r = diff_snapshots(a, b, DiffOptions(only=("SystemD",), include_volatile=True))
    assert {c.type for c in r.changes} == {"SystemD"}
    # a measurement that appeared, narrowed to one of its subtypes
    r = diff_snapshots(a, b, DiffOptions(only=("NodeTopology/summary",)))
    assert [(c.scope, c.subtypes, c.keys) for c in r.changes] == [("measurement", 1, 3)]
    assert not diff_snapshots(a, b, DiffOptions(only=("NodeTopology/nothing",))).drift


def test_rule_tables_are_documented_and_match_real_keys() -> None:
    for rule in VOLATILE_RULES + IDENTITY_RULES:
        assert rule.reason and rule.keys
    flt = KeyFilter(DiffOptions())
    assert flt.hides_key("OS", "sysctl", "/proc/sys/fs/file-nr")
    assert flt.hides_key("OS", "sysctl", "/proc/sys/kernel/random/boot_id")
    assert not flt.hides_key("OS", "sysctl", "/proc/sys/kernel/random/write_wakeup_threshold")
    assert not flt.hides_key("OS", "sysctl", "/proc/sys/fs/quota/warnings")
    assert not flt.hides_key("OS", "sysctl", "/proc/sys/kernel/tainted")
    assert flt.hides_key("SystemD", "kubelet.service", "ExecMainExitTimestampMonotonic")
    assert not flt.hides_key("SystemD", "kubelet.service", "NRestarts")
    assert not flt.hides_key("K8s", "node", "ready")
    assert not flt.hides_key("GPU", "gpu-0", "uuid")  # identity, not volatile
    assert not flt.hides_key("GPU", "gpu-0", "pcie-link-gen-max")
    assert flt.hides_key("GPU", "gpu-0", "pcie-link-gen-current")
    ident = KeyFilter(DiffOptions(ignore_identity=True))
    assert ident.hides_key("GPU", "gpu-3", "serial") and ident.hides_key("GPU", "smi", "gpu.uuid")


def test_two_collections_of_this_host_do_not_drift() -> None:
    """Real snapshots: the host collector run twice on this machine differs only in volatile fields."""
    host = pytest.importorskip("collector.host")
    a = build_snapshot({"timestamp": "2026-03-20T18:00:00Z", "source-node": "here"}, host.collect_host())
    b = build_snapshot({"timestamp": "2026-03-20T18:00:05Z", "source-node": "here"}, host.collect_host())
    assert validate(a, source="a") and validate(b, source="b")
    result = diff_snapshots(a, b)
    assert not result.drift, [(c.path, c.base, c.current) for c in result.changes]
    assert diff_snapshots(a, b, DiffOptions(include_volatile=True)).drift  # at least the timestamp moved
    # and a real change on top of a real snapshot is found
    sysctl = sub(b, "OS", "sysctl")
    if sysctl["data"]:
        key = sorted(sysctl["data"])[0]
        sysctl["data"][key] = f"{sysctl['data'][key]}-changed"
        assert [c.path for c in diff_snapshots(a, b).changes] == [f"OS/sysctl/{key}"]


def test_node_name() -> None:
    assert node_name(load("node-a.yaml")) == "gpu-node-01"
    assert (
        node_name(
            {"measurements": [{"type": "K8s", "subtypes": [{"subtype": "node", "data": {"source-node": "from-k8s"}}]}]}
        )
        == "from-k8s"
    )
    assert node_name({"measurements": []}) is None


# ============================================================================ fleets


def _mutate(doc: dict[str, Any], rng: random.Random) -> None:
    """One random edit: some change the comparable content, some only its spelling or volatile/identity keys."""
    subs = [(m, s) for m in doc["measurements"] for s in m.get("subtypes") or []]
    m, s = rng.choice(subs)
    data = s["data"]
    kind = rng.randrange(9)
    if kind == 0 and data:
        k = rng.choice(sorted(data))
        data[k] = f"{data[k]}x"
    elif kind == 1 and data:
        data.pop(rng.choice(sorted(data)))
    elif kind == 2:
        data[f"new-{rng.randrange(3)}"] = rng.choice([1, "1", 1.0, True, "true", None, "<nil>"])
    elif kind == 3:
        s.setdefault("context", {})["status"] = rng.choice(["ok", "partial", "error"])
    elif kind == 4:
        m["subtypes"].remove(s)
    elif kind == 5:
        for k, v in list(data.items()):  # same values, other spelling
            if isinstance(v, bool):
                data[k] = "true" if v else "false"
            elif isinstance(v, int):
                data[k] = float(v)
    elif kind == 6:
        data["MainPID"] = rng.randrange(10**6)  # volatile in SystemD only
    elif kind == 7:
        data["uuid"] = f"GPU-{rng.randrange(10**6)}"  # identity in GPU only
    else:
        s.setdefault("context", {})["reason"] = f"r{rng.randrange(3)}"


def test_fingerprint_agrees_with_the_diff() -> None:
    """Equal fingerprints exactly when the fleet diff finds nothing: grouping and deviation lists never disagree."""
    rng = random.Random(7)
    base = load("node-a.yaml")
    base["measurements"].append({"type": "Empty"})
    for options in (
        DiffOptions(),
        DiffOptions(include_volatile=True),
        DiffOptions(only=("GPU", "SystemD")),
        DiffOptions(ignore=("OS/*",)),
    ):
        opts = fleet_options(options)
        flt = KeyFilter(opts)
        same = differ = 0
        for _ in range(150):
            a, b = copy.deepcopy(base), copy.deepcopy(base)
            for doc in (a, b):
                for _ in range(rng.randrange(3)):
                    _mutate(doc, rng)
            ia, ib = index_snapshot(a), index_snapshot(b)
            changes, _ = diff_indexes(ia, ib, opts)
            assert (fingerprint(ia, flt) == fingerprint(ib, flt)) == (not changes), changes
            same += not changes
            differ += bool(changes)
        assert same > 10 and differ > 10  # both outcomes were exercised


def test_fleet_of_twenty_with_two_deviating_nodes() -> None:
    fleet = load("fleet-20.yaml")
    assert len(fleet["items"]) == 20
    result = group_by_configuration(fleet["items"])
    assert result.nodes == 20 and result.majority and result.drift
    assert [len(g.nodes) for g in result.groups] == [18, 1, 1]
    assert result.baseline is not None and result.baseline.reference == "gpu-node-01"
    assert "gpu-node-07" not in result.baseline.nodes and "gpu-node-13" not in result.baseline.nodes
    got = {d.node: [(c.path, c.base, c.current) for c in d.changes] for d in result.deviations}
    assert got == {
        "gpu-node-07": [("GPU/smi/driver", "570.86.15", "575.51.03")],
        "gpu-node-13": [("K8s/labels/pool", "training", "inference")],
    }


def test_fleet_identity_and_volatile_keys_do_not_split_groups() -> None:
    fleet = load("fleet-20.yaml")
    same = [n for n in fleet["items"] if n["metadata"]["source-node"] not in ("gpu-node-07", "gpu-node-13")]
    result = group_by_configuration(same)
    assert len(result.groups) == 1 and not result.drift and result.deviations == []
    # the two-snapshot diff of two such nodes does see their identities
    assert diff_snapshots(same[0], same[1]).drift


def test_fleet_failures_ties_and_duplicate_names() -> None:
    a = load("node-a.yaml")
    b = copy.deepcopy(a)
    sub(b, "GPU", "smi")["data"]["driver"] = "575.51.03"
    b["metadata"]["source-node"] = "gpu-node-00"
    tie = group_by_configuration([a, b])
    assert not tie.majority and [g.nodes for g in tie.groups] == [("gpu-node-00",), ("gpu-node-01",)]
    assert [d.node for d in tie.deviations] == ["gpu-node-01"]

    only_failures = group_by_configuration([], failures=[{"node": "gpu-9", "reason": "Unschedulable"}])
    assert only_failures.drift and only_failures.groups == [] and only_failures.failures[0].node == "gpu-9"
    clean = group_by_configuration([a, copy.deepcopy(a)])
    assert not clean.drift and clean.groups[0].nodes == ("gpu-node-01", "gpu-node-01#2")
    with_failure = group_by_configuration([a], failures=[{"node": "gpu-9", "reason": "ImagePullBackOff"}])
    assert with_failure.drift and with_failure.deviations == []


def test_sysctl_settings_named_like_counters_are_not_volatile() -> None:
    """fs/aio-max-nr and fs/file-max are settings; only the live counters (aio-nr, file-nr, ...) are volatile."""
    from kubectl_aicr.diff import DiffOptions, diff_snapshots

    def snap(values: dict) -> dict:
        return {
            "kind": "Snapshot",
            "measurements": [{"type": "OS", "subtypes": [{"subtype": "sysctl", "data": values}]}],
        }

    base = snap({"/proc/sys/fs/aio-max-nr": 65536, "/proc/sys/fs/aio-nr": 10, "/proc/sys/fs/file-nr": "1 0 9"})
    cur = snap({"/proc/sys/fs/aio-max-nr": 1048576, "/proc/sys/fs/aio-nr": 99, "/proc/sys/fs/file-nr": "7 0 9"})
    keys = [c.key for c in diff_snapshots(base, cur, DiffOptions()).changes]
    assert keys == ["/proc/sys/fs/aio-max-nr"]


def test_pci_link_current_is_volatile_but_max_is_not() -> None:
    from kubectl_aicr.diff import DiffOptions, diff_snapshots

    def snap(cur_w: int, max_w: int) -> dict:
        return {
            "kind": "Snapshot",
            "measurements": [
                {
                    "type": "GPU",
                    "subtypes": [
                        {
                            "subtype": "pci",
                            "data": {"0000:04:00.0.link-width-current": cur_w, "0000:04:00.0.link-width-max": max_w},
                        }
                    ],
                }
            ],
        }

    keys = [c.key for c in diff_snapshots(snap(16, 16), snap(8, 8), DiffOptions()).changes]
    assert keys == ["0000:04:00.0.link-width-max"]


def test_fleet_ignores_cluster_wide_facts_taken_at_different_times() -> None:
    """Images in use, node counts, server version and ClusterPolicy are the cluster's, not the node's: a pod that
    came or went between two agents' runs must not split the fleet. Per-node K8s facts still do."""
    a = load("node-a.yaml")
    b = copy.deepcopy(a)
    b["metadata"]["source-node"] = "gpu-node-02"
    touched = []
    for m in b["measurements"]:
        if m["type"] == "K8s":
            for s in m["subtypes"]:
                if s["subtype"] in ("image", "cluster", "server", "policy"):
                    s["data"]["added-later"] = "x"
                    touched.append(s["subtype"])
    assert {"image", "server", "policy"} <= set(touched)
    assert not group_by_configuration([a, b]).drift
    assert diff_snapshots(a, b).drift  # a two-snapshot diff still reports them
    sub(b, "K8s", "labels")["data"]["pool"] = "other"
    assert [d.node for d in group_by_configuration([a, b]).deviations] == ["gpu-node-02"]
