"""kubectl_aicr.formats: the three snapshot apiVersions, their schemas, normalising for diff, the v1 writer and the
facts only one tool collects. Fixtures: tests/fixtures/snapshots/{aicr-run-v1,aicr-run-v1alpha2,cross-tool}."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from kubectl_aicr import diff, formats, snapshot_io
from kubectl_aicr.cli import main
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.schema import problems, schema

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
V1_NODE = SNAPSHOTS / "aicr-run-v1" / "gpu-h100-0.yaml"
V1_AKS = SNAPSHOTS / "aicr-run-v1" / "aks-items-only.yaml"
V1ALPHA2_NODE = SNAPSHOTS / "aicr-run-v1alpha2" / "gpu-h100-0.yaml"
ORIGINAL_0111 = SNAPSHOTS / "cross-tool" / "original-v0.11.1.yaml"
OURS = SNAPSHOTS / "cross-tool" / "kubectl-aicr.yaml"
V1ALPHA1_FIXTURES = [
    "node-a.yaml",
    "node-a-drift.yaml",
    "original-h100.yaml",
    "original-mock-snapshot.yaml",
    "fleet-20.yaml",
    "aicr-mock-snapshot.yaml",
    "cross-tool/original-v0.11.1.yaml",
    "cross-tool/kubectl-aicr.yaml",
]


def load(path: Path | str) -> dict[str, Any]:
    p = SNAPSHOTS / path if isinstance(path, str) else path
    return snapshot_io.load(snapshot_io.FilePath(str(p)))


def cli(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        return code, out.getvalue().decode(), err.getvalue().decode()


# ============================================================================ detection


def test_detect_names_each_version_and_reads_a_missing_one_as_v1alpha1() -> None:
    assert formats.detect({}) == formats.V1ALPHA1
    for api in formats.SUPPORTED:
        assert formats.detect({"apiVersion": api}) == api


@pytest.mark.parametrize("api", ["aicr.run/v2", "aicr.nvidia.com/v1", "aicr.run/v1alpha1", "", 5, None])
def test_unknown_api_versions_get_one_line_naming_what_is_supported(api: Any) -> None:
    with pytest.raises(InvalidInput) as e:
        formats.detect({"apiVersion": api})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("$.apiVersion: ")
    assert "supported: aicr.nvidia.com/v1alpha1, aicr.run/v1alpha2, aicr.run/v1" in msg
    assert problems({"apiVersion": api, "measurements": []}) == [msg]


def test_diff_and_validate_refuse_an_unknown_api_version_in_one_line(tmp_path: Path) -> None:
    doc = load(V1_NODE)
    doc["apiVersion"] = "aicr.run/v2"
    bad = tmp_path / "future.yaml"
    bad.write_text(snapshot_io.dumps(doc, "yaml"))
    for args in (["diff", str(bad), str(V1_NODE)], ["validate", str(bad)]):
        code, _, err = cli(*args)
        lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert code == 2 and len(lines) == 1 and "'aicr.run/v2' is not supported; supported: " in err, err


# ============================================================================ schemas


@pytest.mark.parametrize("path", [V1_NODE, V1_AKS, V1ALPHA2_NODE])
def test_hand_made_newer_snapshots_are_valid(path: Path) -> None:
    assert problems(load(path)) == []


def test_validate_says_which_version_it_validated() -> None:
    for path, text in (
        (V1_NODE, "apiVersion aicr.run/v1"),
        (V1ALPHA2_NODE, "apiVersion aicr.run/v1alpha2"),
        (SNAPSHOTS / "node-a.yaml", "apiVersion aicr.nvidia.com/v1alpha1"),
        (SNAPSHOTS / "original-mock-snapshot.yaml", "no apiVersion, read as aicr.nvidia.com/v1alpha1"),
    ):
        code, out, _ = cli("validate", str(path))
        assert code == 0 and out.rstrip().endswith(text), out


def test_each_version_has_its_own_exact_schema() -> None:
    ids = {schema(api)["$id"] for api in formats.SUPPORTED}
    assert len(ids) == 3
    assert schema(formats.V1)["$defs"]["apiVersion"] == {"const": formats.V1}
    assert schema(formats.V1ALPHA2)["$defs"]["apiVersion"] == {"const": formats.V1ALPHA2}
    code, out, _ = cli("schema", "--api-version", formats.V1)
    assert code == 0 and json.loads(out)["$id"] == schema(formats.V1)["$id"]
    a2, v1 = dict(schema(formats.V1ALPHA2)), dict(schema(formats.V1))
    for d in (a2, v1):  # the two newer versions differ only in their name (ADR-013: a rename; ADR-022: no field change)
        for k in ("$id", "title", "description"):
            d.pop(k)
        d["$defs"] = {**d["$defs"], "apiVersion": None}
    assert a2 == v1
    # Derived from one file, still exact: each refuses a document that names the other.
    from jsonschema import Draft202012Validator

    v1_doc = snapshot_io.parse_document((SNAPSHOTS / "aicr-run-v1" / "gpu-h100-0.yaml").read_bytes(), source="v1")
    assert list(Draft202012Validator(schema(formats.V1)).iter_errors(v1_doc)) == []
    errors = [e.message for e in Draft202012Validator(schema(formats.V1ALPHA2)).iter_errors(v1_doc)]
    assert errors and all("aicr.run/v1alpha2" in m for m in errors), errors


def _sub(doc: dict[str, Any], type_: str, name: str) -> dict[str, Any]:
    for m in doc["measurements"]:
        if m["type"] == type_:
            for s in m.get("subtypes") or []:
                if s["subtype"] == name:
                    found: dict[str, Any] = s
                    return found
    raise KeyError((type_, name))


Mutation = Callable[[dict[str, Any]], None]
V1_BAD: list[tuple[str, Mutation, str]] = [
    (
        "nested items",
        lambda d: _sub(d, "NetworkTopology", "pfs")["items"][0].update(items=[]),
        "$.measurements[5].subtypes[2].items[0]: Additional properties are not allowed ('items'",
    ),
    (
        "item field",
        lambda d: _sub(d, "NetworkTopology", "pfs")["items"][0].update(name="x"),
        "$.measurements[5].subtypes[2].items[0]: Additional properties are not allowed ('name'",
    ),
    (
        "item data not scalar",
        lambda d: _sub(d, "NetworkTopology", "pfs")["items"][0]["data"].update(rail=[0]),
        "$.measurements[5].subtypes[2].items[0].data.rail: [0] is not of type",
    ),
    (
        "item context not string",
        lambda d: _sub(d, "NetworkTopology", "pfs")["items"][0]["context"].update(x=1),
        "$.measurements[5].subtypes[2].items[0].context.x: 1 is not of type 'string'",
    ),
    (
        "neither data nor items",
        lambda d: _sub(d, "GPU", "hardware").pop("data"),
        "$.measurements[1].subtypes[0]: {'subtype': 'hardware'} is not valid under any of the given schemas",
    ),
    (
        "dimension value type",
        lambda d: d["fingerprint"]["service"].update(value=1),
        "$.fingerprint.service.value: 1 is not of type 'string'",
    ),
    (
        "node count type",
        lambda d: d["fingerprint"]["nodeCount"].update(value="3"),
        "$.fingerprint.nodeCount.value: '3' is not of type 'integer'",
    ),
    (
        "unknown dimension",
        lambda d: d["fingerprint"].update(cloud={"value": "aws"}),
        "$.fingerprint: Additional properties are not allowed ('cloud'",
    ),
    ("missing dimension", lambda d: d["fingerprint"].pop("os"), "$.fingerprint: 'os' is a required property"),
    (
        "dimension field",
        lambda d: d["fingerprint"]["os"].update(kind="x"),
        "$.fingerprint.os: Additional properties are not allowed ('kind'",
    ),
    ("unknown top-level", lambda d: d.update(spec={}), "$: Additional properties are not allowed ('spec'"),
]


@pytest.mark.parametrize("what, mutate, expected", V1_BAD, ids=[b[0] for b in V1_BAD])
def test_v1_schema_refuses_what_v1_does_not_allow(what: str, mutate: Mutation, expected: str) -> None:
    doc = copy.deepcopy(load(V1_NODE))
    mutate(doc)
    found = problems(doc)
    assert found and found[0].startswith(expected), found


def test_v1alpha1_schema_refuses_fingerprint_and_items() -> None:
    doc = load("node-a.yaml")
    with_fp = {**doc, "fingerprint": formats.fingerprint_of(doc)}
    assert problems(with_fp)[0].startswith("$: Additional properties are not allowed ('fingerprint'")
    items = copy.deepcopy(doc)
    _sub(items, "OS", "kmod")["items"] = [{"data": {"x": 1}}]
    assert "Additional properties are not allowed ('items'" in problems(items)[0]


def test_a_snapshot_list_holds_snapshots_of_its_own_version_only() -> None:
    node = load(V1_NODE)
    lst = {"kind": "SnapshotList", "apiVersion": formats.V1, "items": [node]}
    assert problems(lst) == []
    other = {**lst, "items": [load(V1ALPHA2_NODE)]}
    assert problems(other)[0].startswith("$.items[0].apiVersion: 'aicr.run/v1' was expected")


# ============================================================================ normalising


def test_normalise_folds_items_and_spells_values_one_way() -> None:
    doc = {
        "apiVersion": formats.V1,
        "kind": "Snapshot",
        "fingerprint": {"service": {"value": "eks"}},
        "measurements": [
            {
                "type": "NetworkTopology",
                "subtypes": [
                    {
                        "subtype": "pfs",
                        "items": [
                            {"context": {"pciAddress": "0000:9a:00.0"}, "data": {"rail": 0}},
                            {"data": {"rail": 1}},
                        ],
                    }
                ],
            },
            {
                "type": "NodeTopology",
                "subtypes": [
                    {"subtype": "label", "data": {"a": "x|n1"}, "items": [{"context": {"key": "a", "value": "x"}}]}
                ],
            },
            {
                "type": "OS",
                "subtypes": [
                    {
                        "subtype": "sysctl",
                        "data": {"/proc/sys/kernel/printk": "4\t4  1\t7", "/proc/sys/kernel/x": "a b"},
                    }
                ],
            },
            {
                "type": "GPU",
                "subtypes": [
                    {"subtype": "smi", "data": {"m": "N/A", "n": "<nil>", "o": "NA"}},
                    {"subtype": "hardware", "data": {"gpu-count": 1}, "context": {formats.DERIVED_BY: "kubectl-aicr"}},
                ],
            },
        ],
    }
    out = formats.normalise(doc)
    assert "fingerprint" not in out and out["apiVersion"] == formats.V1
    pfs, label, sysctl, smi = (m["subtypes"] for m in out["measurements"])
    assert pfs[0]["data"] == {"[0000:9a:00.0].pciAddress": "0000:9a:00.0", "[0000:9a:00.0].rail": 0, "[1].rail": 1}
    assert label[0]["data"] == {"a": "x|n1"}  # the legacy map kept alone: equal to a snapshot without items
    assert sysctl[0]["data"] == {"/proc/sys/kernel/printk": "4 4 1 7", "/proc/sys/kernel/x": "a b"}
    assert smi == [{"subtype": "smi", "data": {"m": None, "n": None, "o": "NA"}}]  # the derived subtype is left out


def test_normalise_refuses_an_unknown_version() -> None:
    with pytest.raises(InvalidInput, match="not supported"):
        formats.normalise({"apiVersion": "x/y", "measurements": []})


# ============================================================================ writing v1


@pytest.mark.parametrize("name", V1ALPHA1_FIXTURES)
@pytest.mark.parametrize("api", [formats.V1, formats.V1ALPHA2])
def test_every_v1alpha1_fixture_converts_to_a_valid_newer_document(name: str, api: str) -> None:
    doc = load(name)
    out = formats.convert(doc, api)
    assert out["apiVersion"] == api and problems(out) == []
    assert formats.convert(out, api) == out  # already there: unchanged
    if doc.get("kind") != "SnapshotList":
        assert list(out)[:2] == ["kind", "apiVersion"] and list(out)[-2:] == ["fingerprint", "measurements"]


def test_fingerprint_is_filled_from_what_the_snapshot_holds_each_with_its_source() -> None:
    fp = formats.fingerprint_of(load("node-a.yaml"))
    assert fp == {
        "service": {"value": "eks", "source": "k8s.node.provider"},
        "accelerator": {"value": "h100", "source": "gpu.smi.gpu.model"},
        "gpuModel": {"value": "h100", "source": "gpu.smi.gpu.model"},
        "os": {"value": "ubuntu", "version": "22.04", "source": "os.release"},
        "k8sVersion": {"value": "1.33.5-eks-3025e55", "source": "k8s.server.version"},
        "nodeCount": {"value": 6, "source": "k8s.cluster.node-count"},
        "gpuNodeCount": {"value": 4, "source": "k8s.cluster.gpu-node-count"},
    }
    ours = formats.fingerprint_of(load(OURS))
    assert ours["region"] == {"value": "us-west-2", "source": "k8s.labels.topology.kubernetes.io/region"}
    theirs = formats.fingerprint_of(load(ORIGINAL_0111))
    assert theirs["region"] == {"value": "us-west-2", "source": "nodeTopology.label.topology.kubernetes.io/region"}
    assert theirs["gpuNodeCount"] == {"value": 2, "source": "nodeTopology.label.nvidia.com/gpu.product"}
    # nothing known: empty values and no source, as the original writes a dimension it did not capture
    empty = formats.fingerprint_of({"measurements": []})
    assert empty["service"] == {"value": ""} and empty["nodeCount"] == {"value": 0} and "region" not in empty


@pytest.mark.parametrize(
    "model, accelerator, gpu_model",
    [
        ("NVIDIA H100 80GB HBM3", "h100", "h100"),
        ("NVIDIA GB200", "gb200", "gb200"),
        ("NVIDIA B200", "b200", "b200"),
        ("NVIDIA L40S", "l40s", "l40s"),
        ("NVIDIA-H200", "h200", "h200"),
        ("Tesla T4", "", "t4"),
        ("NVIDIA A800 80GB PCIe", "", "a800"),
        ("NVIDIA RTX PRO 6000 Blackwell", "rtx-pro-6000", "rtx-pro-6000"),
        ("NVIDIA GeForce GTX 1070 Ti", "", ""),
        ("NVIDIA X1 80GB HBM3", "", "x1"),
        ("NVIDIA Z 80GB HBM3", "", ""),
    ],
)
def test_accelerator_sku(model: str, accelerator: str, gpu_model: str) -> None:
    assert formats.accelerator_sku(model) == (accelerator, gpu_model)


def test_v1_writer_rebuilds_the_topology_items_the_original_emits() -> None:
    v1 = formats.convert(load(ORIGINAL_0111), formats.V1)
    theirs = load(V1_NODE)
    for name in ("label", "taint"):
        assert _sub(v1, "NodeTopology", name)["items"] == _sub(theirs, "NodeTopology", name)["items"]
    multi = formats.topology_items("label", {"zone.a": "a|n1,n2 (+3 more)", "zone.b": "b|n3", "zone": "c|n9"})
    assert [i["context"] for i in multi] == [
        {"key": "zone", "value": "a"},
        {"key": "zone", "value": "b"},
        {"key": "zone", "value": "c"},
    ]
    assert multi[0]["data"] == {"node-count": 5, "node-list": "n1,n2 (+3 more)", "truncated": True}
    taints = formats.topology_items("taint", {"t.NoExecute": "x|n1", "t.NoSchedule": "y|n2", "u": "NoSchedule||n3"})
    assert [i["context"] for i in taints] == [
        {"key": "t", "value": "x", "effect": "NoExecute"},
        {"key": "t", "value": "y", "effect": "NoSchedule"},
        {"key": "u", "value": "", "effect": "NoSchedule"},
    ]


def test_v1_writer_adds_the_driver_free_gpu_hardware_subtype() -> None:
    hw = _sub(formats.convert(load("node-a.yaml"), formats.V1), "GPU", "hardware")
    assert hw["data"] == {
        "detection-source": "nvidia-smi",
        "driver-loaded": True,
        "gpu-count": 2,
        "gpu-present": True,
        "model": "h100",
    }
    assert hw["context"][formats.DERIVED_BY] == "kubectl-aicr"


def test_writing_a_newer_document_down_to_v1alpha1_is_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot write a aicr.run/v1 snapshot as aicr.nvidia.com/v1alpha1"):
        formats.convert(load(V1_NODE), formats.V1ALPHA1)
    renamed = formats.convert(load(V1ALPHA2_NODE), formats.V1)
    assert renamed["apiVersion"] == formats.V1 and problems(renamed) == []


# ============================================================================ comparing across versions and tools


def _compare(a: dict[str, Any], b: dict[str, Any], **opts: Any) -> tuple[diff.DiffResult, Any]:
    return formats.compare(a, b, diff.DiffOptions(**opts))


@pytest.mark.parametrize(
    "name",
    [
        "node-a.yaml",
        "node-a-drift.yaml",
        "original-h100.yaml",
        "cross-tool/kubectl-aicr.yaml",
        "cross-tool/original-v0.11.1.yaml",
        "original-mock-snapshot.yaml",
    ],
)
def test_round_trip_v1alpha1_to_v1_shows_nothing(name: str) -> None:
    doc = load(name)
    for api in (formats.V1, formats.V1ALPHA2):
        for volatile in (False, True):
            result, one = _compare(doc, formats.convert(doc, api), include_volatile=volatile)
            assert result.changes == [] and result.ignored == 0 and one is None


def test_same_unchanged_node_in_v1alpha2_and_v1_shows_no_drift() -> None:
    result, one = _compare(load(V1ALPHA2_NODE), load(V1_NODE))
    assert result.changes == [] and not one


def test_original_v0111_and_original_v1_of_one_node_show_no_drift_only_one_sided_facts() -> None:
    result, one = _compare(load(ORIGINAL_0111), load(V1_NODE))
    assert result.changes == []
    assert {(c.type, c.subtype) for c in one.base_only} == {("GPU", "smi")}
    assert {c.type for c in one.current_only} == {"GPU", "K8s", "NetworkTopology"}


def test_cross_tool_original_and_ours_of_one_unchanged_node_show_no_drift() -> None:
    base, current = load(ORIGINAL_0111), load(OURS)
    # before: the plain engine saw drift in four values (three tab-separated sysctls, N/A vs null) and every fact
    # only one tool collects as added/removed
    plain = diff.diff_snapshots(base, current)
    assert sorted(c.key or "" for c in plain.changes if c.change == diff.CHANGED) == [
        "/proc/sys/kernel/printk",
        "/proc/sys/kernel/sem",
        "/proc/sys/vm/lowmem_reserve_ratio",
        "gpu.addressing-mode",
    ]
    result, one = _compare(base, current)
    assert result.changes == [] and not result.drift
    assert one is not None and (one.base, one.current) == ("aicr v0.11.1", "kubectl-aicr")
    assert {c.type for c in one.base_only} == {"K8s", "NodeTopology"}  # short image names, the cluster aggregate
    assert ("OS", "sysctl", "/proc/sys/net/core/somaxconn") in {(c.type, c.subtype, c.key) for c in one.current_only}
    assert one.counts() == {"base-only": 12, "current-only": 38}
    # and against the original's v1 capture of the same node
    result, one = _compare(current, load(V1_NODE))
    assert result.changes == [] and one


def test_changed_values_stay_drift_across_tools_and_removals_stay_drift_within_one() -> None:
    base, current = load(ORIGINAL_0111), copy.deepcopy(load(OURS))
    _sub(current, "OS", "sysctl")["data"]["/proc/sys/vm/swappiness"] = 10
    result, _ = _compare(base, current)
    assert [(c.key, c.change) for c in result.changes] == [("/proc/sys/vm/swappiness", diff.CHANGED)]
    ours_v1 = formats.convert(load(OURS), formats.V1)
    del _sub(ours_v1, "OS", "kmod")["data"]["nvidia_uvm"]
    result, one = _compare(load(OURS), ours_v1)
    assert one is None and [(c.key, c.change) for c in result.changes] == [("nvidia_uvm", diff.REMOVED)]


def test_a_side_without_a_known_writer_keeps_everything_as_drift() -> None:
    result, one = _compare(load("original-mock-snapshot.yaml"), load("original-h100.yaml"))
    assert one is None and any(c.change == diff.REMOVED for c in result.changes)


def test_diff_cli_reports_one_sided_facts_apart_in_every_format() -> None:
    code, out, _ = cli("diff", str(ORIGINAL_0111), str(OURS))
    assert code == 0 and "no drift" in out
    assert "collected by one side only (different tools; not drift):" in out
    assert "  only in base (aicr v0.11.1): 12 facts: K8s/image (4 keys), NodeTopology (8 keys)" in out
    code, out, _ = cli("diff", str(ORIGINAL_0111), str(OURS), "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["drift"] is False and doc["changes"] == []
    assert doc["one_sided"]["base-only"] == 12 and doc["one_sided"]["current"] == "kubectl-aicr"
    assert {c["type"] for c in doc["one_sided"]["base_only"]} == {"K8s", "NodeTopology"}
    code, out, _ = cli("diff", str(ORIGINAL_0111), str(OURS), "-o", "markdown")
    assert code == 0 and "#### Collected by one side only" in out and "- only in current (kubectl-aicr)" in out
    code, out, _ = cli("diff", str(V1ALPHA2_NODE), str(V1_NODE))
    assert code == 0 and "no drift" in out


def test_across_nodes_reads_all_three_versions(tmp_path: Path) -> None:
    ours = load(OURS)
    other = copy.deepcopy(ours)
    other["metadata"]["source-node"] = "gpu-h100-1"
    _sub(other, "GPU", "smi")["data"]["driver"] = "575.51.03"
    fleet = formats.convert(
        {"kind": "SnapshotList", "apiVersion": formats.V1ALPHA1, "items": [ours, other]}, formats.V1
    )
    assert problems(fleet) == []
    path = tmp_path / "fleet-v1.yaml"
    path.write_text(snapshot_io.dumps(fleet, "yaml"))
    v1alpha2 = tmp_path / "node-v1alpha2.yaml"
    v1alpha2.write_text(snapshot_io.dumps(formats.convert(ours, formats.V1ALPHA2), "yaml"))
    code, out, _ = cli("diff", "--across-nodes", str(path), str(OURS), str(v1alpha2))
    assert code == 1, out
    assert out.startswith("4 nodes, 2 configurations; baseline: 3 nodes (majority)")
    assert "~ driver: 570.86.15 -> 575.51.03" in out


def test_snapshot_local_writes_a_valid_v1_document(tmp_path: Path) -> None:
    out = tmp_path / "v1.yaml"
    code, _, err = cli("snapshot", "--local", "--api-version", formats.V1, "-o", str(out))
    assert code == 0, err
    doc = load(out)
    assert doc["apiVersion"] == formats.V1 and "fingerprint" in doc and problems(doc) == []
    code, _, _ = cli("snapshot", "--local", "--api-version", "aicr.run/v9", "-o", str(tmp_path / "x.yaml"))
    assert code == 2 and not (tmp_path / "x.yaml").exists()
