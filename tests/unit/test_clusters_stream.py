"""The ClusterSnapshotList of a multi-context run written one node at a time (:func:`kubectl_aicr.clusters.chunks`)
is byte for byte the document the run wrote whole before: each cluster's SnapshotList built whole
(``FleetDocument().document``, converted to ``--api-version`` as ``deliver`` converted it), put in
``cluster_snapshot_list`` and serialised by ``snapshot_io.dumps``. Built both ways from the fleet fixture, in JSON and
YAML, in every apiVersion written, with nodes holding the scalars YAML emitters write over several lines or would
split (line breaks, U+2028, quotes, a 70,000-character value), with both YAML emitters (libyaml, pure PyYAML)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.model import cluster_snapshot_list, node_name
from kubectl_aicr import clusters, fleetdoc, formats, snapshot_io
from kubectl_aicr.errors import SnapshotInvalid, Unavailable
from kubectl_aicr.schema import validate

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
FLEET_META = {"timestamp": "2026-03-22T10:00:00Z", "version": "test", "run-id": "r1", "node-selector": ""}
META = {"timestamp": "2026-03-22T10:05:00Z", "version": "test", "context-count": "4"}


def load(name: str) -> Any:
    return snapshot_io.load(snapshot_io.FilePath(str(SNAPSHOTS / name)))


def _sysctl(doc: dict[str, Any]) -> dict[str, Any]:
    for m in doc["measurements"]:
        if m["type"] == "OS":
            for sub in m["subtypes"]:
                if sub["subtype"] == "sysctl":
                    return sub["data"]  # type: ignore[no-any-return]
    raise AssertionError("no OS/sysctl in the fixture")


def nodes(tricky: bool, nel: bool = True) -> list[dict[str, Any]]:
    items = [copy.deepcopy(n) for n in load("fleet-20.yaml")["items"]]
    if tricky:
        data = _sysctl(items[3])
        data["multi-line"] = "first\nsecond\n\nfourth\n"
        data["separators"] = "a\u2028b\x85c\u2029d" if nel else "a\u2028b\u2029d"
        data["quotes"] = 'it\'s "quoted": - [x] # {y}'
        data["spaces"] = "  leading and trailing  "
        data["empty"] = ""
        data["unicode"] = "Grüße, 节点 ✓"
        data["long"] = " ".join(["word"] * 14_000)  # 70,000 characters: an emitter splits it past its width
        _sysctl(items[5])["long-no-space"] = "x" * 70_000
    return items


def whole_list(snaps: list[dict[str, Any]], failed: list[tuple[str, str]], api: str) -> dict[str, Any]:
    """A cluster's SnapshotList as the run delivered it before: built whole, converted as ``deliver`` converted it."""
    fleet = fleetdoc.FleetDocument()
    for snap in snaps:
        fleet.add(json.dumps(snap).encode(), validate(copy.deepcopy(snap), source="node"))
    for node, reason in failed:
        fleet.fail(node, reason)
    fleet.check(FLEET_META)
    doc = fleet.document(FLEET_META)
    if api != formats.detect(doc):
        doc = validate(formats.convert(doc, api), source=f"snapshot as {api}")
    return doc


def streamed_list(snaps: list[dict[str, Any]], failed: list[tuple[str, str]], api: str) -> fleetdoc.FleetDocument:
    """The same cluster as the run keeps it now: compressed nodes in ``api`` (``FleetDelivery``), checked."""
    fleet = fleetdoc.FleetDocument(api_version=api)
    for snap in snaps:
        fleet.add(json.dumps(snap).encode(), validate(copy.deepcopy(snap), source="node"))
    for node, reason in failed:
        fleet.fail(node, reason)
    fleet.check(FLEET_META)
    return fleet


def one_node(api: str) -> dict[str, Any]:
    doc = load("node-a-drift.yaml")
    return doc if api == formats.detect(doc) else validate(formats.convert(doc, api), source="node")


def both_ways(api: str, fmt: str, tricky: bool, nel: bool = True) -> tuple[str, str]:
    items = nodes(tricky, nel)
    big, small = items[:12], items[12:]
    failed = [("gpu-node-99", "ImagePullBackOff: 'x'\nback-off")]
    reason = 'cannot reach https://10.0.0.1:6443: "refused"'
    before = cluster_snapshot_list(
        [
            {"context": "big", "snapshot": whole_list(big, failed, api)},  # type: ignore[typeddict-item]
            {"context": "single", "snapshot": one_node(api)},  # type: ignore[typeddict-item]
            {"context": "arn:aws:eks:eu-west-1:1:cluster/small", "snapshot": whole_list(small, [], api)},  # type: ignore[typeddict-item]
        ],
        META,
        failures=[{"context": "lab", "reason": reason}],
        api_version=api,
    )
    validate(before, source="multi-cluster snapshot")
    results = [
        clusters.ClusterResult("big", fleet=(streamed_list(big, failed, api), FLEET_META)),
        clusters.ClusterResult("single", document=one_node(api)),
        clusters.ClusterResult("lab", error=Unavailable(reason)),
        clusters.ClusterResult(
            "arn:aws:eks:eu-west-1:1:cluster/small", fleet=(streamed_list(small, [], api), FLEET_META)
        ),
    ]
    clusters.check(results, META, api_version=api)
    streamed = "".join(clusters.chunks(results, fmt, META, api_version=api))
    assert clusters.document(results, api_version=api, meta=META) == before
    return snapshot_io.dumps(before, fmt), streamed  # type: ignore[arg-type]


@pytest.mark.parametrize("api", formats.SUPPORTED)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_the_streamed_document_is_byte_identical_to_the_whole_one(api: str, fmt: str) -> None:
    whole, streamed = both_ways(api, fmt, tricky=False)
    assert streamed == whole
    doc = json.loads(streamed) if fmt == "json" else yaml.safe_load(streamed)
    assert [i["context"] for i in doc["items"]] == ["big", "single", "arn:aws:eks:eu-west-1:1:cluster/small"]
    assert [node_name(n) for n in doc["items"][0]["snapshot"]["items"]][:2] == ["gpu-node-01", "gpu-node-02"]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_byte_identical_with_scalars_written_over_several_lines_or_split(fmt: str) -> None:
    for api in (formats.V1ALPHA1, formats.V1ALPHA2):
        whole, streamed = both_ways(api, fmt, tricky=True)
        assert streamed == whole
    if fmt == "yaml":
        assert any(len(line) > 65536 for line in whole.split("\n"))  # the long values were on lines past the width
        assert "\n\n" in whole  # and a quoted value over several lines


def test_byte_identical_with_the_pure_python_yaml_emitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML's own emitter writes U+2028/U+2029 as raw line breaks inside single quotes (libyaml escapes them).
    Left out: a NEL (U+0085), which it also writes raw but reads back as a space: the node holding one and a line
    past the width is re-emitted from what it reads (clusters._yaml_in_place), so that NEL would be a space."""
    monkeypatch.delattr(yaml, "CSafeDumper", raising=False)
    whole, streamed = both_ways(formats.V1ALPHA1, "yaml", tricky=True, nel=False)
    assert "a\u2028" in whole
    assert streamed == whole


def test_write_checks_then_writes_atomically_and_refuses_what_the_whole_check_refuses(tmp_path: Path) -> None:
    api = formats.DEFAULT_WRITE
    out = tmp_path / "clusters.yaml"
    out.write_text("before\n")
    results = [
        clusters.ClusterResult("a", fleet=(streamed_list(nodes(False)[:3], [], api), FLEET_META)),
        clusters.ClusterResult("b", document=one_node(api)),
    ]
    assert clusters.write(results, snapshot_io.FilePath(str(out)), "yaml", api_version=api) == str(out)
    doc = snapshot_io.load(snapshot_io.FilePath(str(out)))
    assert doc["kind"] == "ClusterSnapshotList" and doc["metadata"]["context-count"] == "2"
    assert len(doc["items"][0]["snapshot"]["items"]) == 3 and doc["items"][1]["snapshot"]["kind"] == "Snapshot"
    bad = one_node(api)
    del bad["measurements"]
    broken = [results[0], clusters.ClusterResult("b", document=bad)]
    with pytest.raises(SnapshotInvalid, match="context b"):
        clusters.write(broken, snapshot_io.FilePath(str(out)), "yaml", api_version=api)
    twice = [results[0], clusters.ClusterResult("a", document=one_node(api))]
    with pytest.raises(SnapshotInvalid, match="duplicate context 'a'"):
        clusters.write(twice, snapshot_io.FilePath(str(out)), "json", api_version=api)
    with pytest.raises(Exception, match="unknown format"):
        clusters.write(results, snapshot_io.FilePath(str(out)), "toml", api_version=api)
    assert snapshot_io.load(snapshot_io.FilePath(str(out))) == doc  # a refused write left the file as it was
