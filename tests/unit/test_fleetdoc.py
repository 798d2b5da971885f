"""kubectl_aicr.fleetdoc gives, node by node, exactly what the whole-list path gives: the same bytes (JSON and YAML,
every apiVersion written), the same verdicts and messages of the whole-list schema check, the same destinations.

"The whole-list path" is written out here as the fleet run has always done it: collector.model.snapshot_list of
every parsed node, kubectl_aicr.schema.validate as ``fleet snapshot``, formats.convert to ``--api-version`` validated
as ``snapshot written as ...``, snapshot_io.dumps."""

from __future__ import annotations

import copy
import io
import json
import os
import random
from pathlib import Path
from typing import Any, Iterator

import pytest

from collector.model import FailureDoc, cluster_snapshot_list, snapshot_list
from kubectl_aicr import fleetdoc, formats, snapshot_io
from kubectl_aicr.errors import InvalidInput, SnapshotInvalid
from kubectl_aicr.schema import validate

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = ROOT / "tests" / "fixtures" / "snapshots"
SHARED = Path("/work/shared/fixtures")
META = {"timestamp": "2026-03-22T10:00:00Z", "version": "0.1.0", "run-id": "r1", "node-count": "3"}


def parse(path: Path) -> Any:
    return snapshot_io.parse_document(path.read_bytes(), source=str(path))


def fleet_items() -> list[dict[str, Any]]:
    return list(parse(SNAPSHOTS / "fleet-20.yaml")["items"])


def v1alpha1_snapshots() -> list[dict[str, Any]]:
    """Every single-node v1alpha1 fixture: ours, the original tool's, hand-made cross-tool ones."""
    paths = [
        SNAPSHOTS / "node-a.yaml",
        SNAPSHOTS / "node-a-drift.yaml",
        SNAPSHOTS / "original-h100.yaml",
        SNAPSHOTS / "original-h100-readback.json",
        SNAPSHOTS / "aicr-mock-snapshot.yaml",
        SNAPSHOTS / "cross-tool" / "kubectl-aicr.yaml",
        SNAPSHOTS / "cross-tool" / "original-v0.11.1.yaml",
    ]
    paths += [p for p in (SHARED / "mock-snapshot.yaml", SHARED / "p5-h100.yaml") if p.is_file()]
    out = []
    for p in paths:
        doc = parse(p)
        if doc.get("kind", "Snapshot") == "Snapshot" and formats.detect(doc) == formats.V1ALPHA1:
            out.append(validate(doc, source=str(p)))
    return out


def tricky(doc: dict[str, Any], node: str) -> dict[str, Any]:
    """``doc`` as node ``node``, with values that exercise the serialisers: unicode, line breaks, quotes, YAML-
    looking strings, a string longer than the YAML width with spaces, empty containers, every scalar type."""
    out: dict[str, Any] = copy.deepcopy(doc)
    out.setdefault("metadata", {})["source-node"] = node
    extra = {
        "unicode": "Grüße ✓ 漢字 \u00a0nbsp",
        "emoji": "🚀 rocket",
        "multi-line": "first line\nsecond line\n\n  indented third\n",
        "trailing-space ": "value with trailing space ",
        "quotes": 'it\'s "quoted" \\ back',
        "yaml-like": "yes",
        "null-text": "null",
        "number-text": "0o17",
        "colon": "a: b # not a comment",
        "dash": "- not a list",
        "long": " ".join(["word"] * 20000),
        "control": "bell\x07 tab\t del\x7f",
        "empty": "",
        "int": -17,
        "big": 10**30,
        "float": 1.5e-7,
        "neg-zero": -0.0,
        "bool": False,
        "none": None,
    }
    out["measurements"][0]["subtypes"][0]["data"].update(extra)
    out["measurements"][0]["subtypes"].append({"subtype": "empty-one", "data": {}, "context": {}})
    checked: dict[str, Any] = validate(out, source=node)
    return checked


def whole_list(docs: list[dict[str, Any]], failures: list[FailureDoc], meta: dict[str, str], api: str, fmt: str) -> str:
    """The text the whole-list path writes (see the module docstring)."""
    doc = snapshot_list(docs, meta, failures=failures)
    validate(doc, source="fleet snapshot")
    if api != formats.detect(doc):
        doc = validate(formats.convert(doc, api), source=f"snapshot written as {api}")
    return snapshot_io.dumps(doc, fmt)


def streamed(
    docs: list[dict[str, Any]],
    failures: list[FailureDoc],
    meta: dict[str, str],
    api: str,
    fmt: str,
    level: int = fleetdoc.ZLIB_LEVEL,
) -> bytes:
    fleet = fleetdoc.FleetDocument(api_version=api, level=level)
    for d in docs:
        fleet.add(json.dumps(d).encode(), d)
    for f in failures:
        fleet.fail(f["node"], f["reason"])
    fleet.check(meta)
    out = io.BytesIO()
    n = fleet.write(out, fmt, meta)
    assert n == len(out.getvalue())
    return out.getvalue()


FAILURES: list[FailureDoc] = [
    {"node": "gpu-node-99", "reason": "pod failed: ImagePullBackOff\nsecond line: détails"},
    {"node": "gpu-node-00", "reason": "timed out after 300s"},
]


@pytest.mark.parametrize("fmt", snapshot_io.FORMATS)
@pytest.mark.parametrize("api", formats.SUPPORTED)
@pytest.mark.parametrize("level", [0, fleetdoc.ZLIB_LEVEL, 9])
def test_the_fleet_fixture_is_written_byte_for_byte_as_the_whole_list(fmt: str, api: str, level: int) -> None:
    docs = fleet_items()
    random.Random(7).shuffle(docs)  # added in the order the nodes finish
    for failures in ([], FAILURES):
        want = whole_list(docs, failures, META, api, fmt).encode("utf-8")
        assert streamed(docs, failures, META, api, fmt, level) == want


@pytest.mark.parametrize("fmt", snapshot_io.FORMATS)
@pytest.mark.parametrize("api", formats.SUPPORTED)
def test_every_fixture_with_tricky_values_is_written_byte_for_byte(fmt: str, api: str) -> None:
    fixtures = v1alpha1_snapshots()
    assert len(fixtures) >= 7
    docs = [tricky(d, f"node-{i:02d}-ü") for i, d in enumerate(fixtures)]
    docs.append(tricky(fixtures[-1], "node-00-ü"))  # two snapshots naming one node: kept in the order they came
    nameless = copy.deepcopy(docs[1])
    del nameless["metadata"]["source-node"]  # no node name: sorts first, as snapshot_list sorts it
    docs.append(nameless)
    meta = {**META, "node-selector": "nvidia.com/gpu.present=true", "note": "multi\nline ✓"}
    want = whole_list(docs, FAILURES, meta, api, fmt).encode("utf-8")
    assert streamed(docs, FAILURES, meta, api, fmt) == want


@pytest.mark.parametrize("fmt", snapshot_io.FORMATS)
@pytest.mark.parametrize("api", formats.SUPPORTED)
@pytest.mark.parametrize("failures", [[], FAILURES])
def test_a_fleet_without_snapshots_is_written_as_the_whole_list(fmt: str, api: str, failures: list[FailureDoc]) -> None:
    assert streamed([], failures, META, api, fmt) == whole_list([], failures, META, api, fmt).encode("utf-8")


def test_one_node_and_a_metadata_value_that_looks_like_the_split_marker() -> None:
    docs = fleet_items()[:1]
    meta = {**META, "note": "fleetdoc-items-0", "other": "- fleetdoc-items-1"}
    for fmt in snapshot_io.FORMATS:
        assert streamed(docs, [], meta, formats.V1, fmt) == whole_list(docs, [], meta, formats.V1, fmt).encode()


def test_the_document_is_the_whole_list_and_the_store_is_compact() -> None:
    docs = fleet_items()
    fleet = fleetdoc.FleetDocument(api_version=formats.V1)
    raw_total = 0
    for d in docs:
        raw = json.dumps(d).encode()
        raw_total += len(raw)
        fleet.add(raw, d)
    fleet.fail("gpu-node-99", "gone")
    assert fleet.count == len(docs) and fleet.fetched_bytes == raw_total
    assert fleet.failures == [{"node": "gpu-node-99", "reason": "gone"}]
    assert fleet.held_bytes * 2 < raw_total  # compressed, not parsed (and converted to v1: larger)
    want = formats.convert(snapshot_list(docs, META, failures=fleet.failures), formats.V1)
    assert fleet.document(META) == want
    assert list(fleet.document(META)) == list(want)  # items after failures, as convert orders a list


# ---------------------------------------------------------------------------------------------- the check


def refusal(fn: Any) -> tuple[str, list[str]]:
    with pytest.raises(SnapshotInvalid) as e:
        fn()
    return str(e.value), list(e.value.details)


def both_refuse(docs: list[Any], failures: list[Any], meta: dict[str, Any], api: str = formats.V1ALPHA1) -> str:
    """Both paths refuse the list with the same message and details; returns the message."""
    fleet = fleetdoc.FleetDocument(api_version=api)
    for d in docs:
        fleet.add(b"{}", d)
    for f in failures:
        fleet.fail(f["node"], f["reason"])
    want = refusal(lambda: whole_list(docs, failures, meta, api, "json"))
    assert refusal(lambda: fleet.check(meta)) == want
    return want[0]


@pytest.mark.parametrize(
    "meta, failures",
    [
        ({**META, "timestamp": "yesterday"}, []),
        ({**META, "": "empty key"}, []),
        (META, [{"node": "n1", "reason": 7}]),
        (META, [{"node": "n2", "reason": ["a"]}, {"node": "n1", "reason": None}]),
        ({**META, "timestamp": "2026-02-30T00:00:00Z", "": "x"}, [{"node": "n", "reason": None}]),
    ],
)
def test_a_bad_skeleton_is_refused_with_the_same_message(meta: dict[str, Any], failures: list[Any]) -> None:
    msg = both_refuse(fleet_items()[:5], failures, meta)
    assert msg.startswith("fleet snapshot: not a valid snapshot: $.")


def test_an_item_that_does_not_belong_in_the_list_is_refused_with_the_same_message() -> None:
    items = fleet_items()[:6]
    v1 = parse(SNAPSHOTS / "aicr-run-v1" / "gpu-h100-0.yaml")  # valid alone, not in a v1alpha1 list
    as_list = snapshot_list(items[:2], META)
    msg = both_refuse([*items, validate(v1, source="v1")], [], META)
    assert "$.items[" in msg
    both_refuse([items[0], as_list, items[1]], [], META)  # a SnapshotList as an item
    first: Any = items[0]
    clusters = validate(cluster_snapshot_list([{"context": "a", "snapshot": first}], META), source="clusters")
    both_refuse([items[0], clusters], [], META)  # a ClusterSnapshotList as an item
    both_refuse([*items, v1, v1], [{"node": "x", "reason": 1}], {**META, "timestamp": "no"})
    # ... and written as v1, the same: the list is checked before it is converted
    both_refuse([*items, v1], [], META, api=formats.V1)


def test_a_valid_fleet_passes_the_check_in_every_version() -> None:
    v1 = parse(SNAPSHOTS / "aicr-run-v1" / "gpu-h100-0.yaml")
    for api in formats.SUPPORTED:
        fleet = fleetdoc.FleetDocument(api_version=api)
        for d in fleet_items():
            fleet.add(b"", d)
        fleet.check(META)
    fleet = fleetdoc.FleetDocument(api_version=formats.V1)
    fleet.add(b"", v1)  # a v1 snapshot in the v1alpha1 list the run builds: refused, as it always was
    with pytest.raises(SnapshotInvalid, match=r"^fleet snapshot: not a valid snapshot: \$\.items\[0\]"):
        fleet.check(META)


def test_unknown_versions_and_formats_are_refused() -> None:
    with pytest.raises(InvalidInput, match="--api-version"):
        fleetdoc.FleetDocument(api_version="v9")
    with pytest.raises(InvalidInput, match="unknown format 'toml'"):
        list(fleetdoc.FleetDocument().chunks("toml", META))


# ---------------------------------------------------------------------------------------------- deliver


def small_fleet() -> tuple[fleetdoc.FleetDocument, list[dict[str, Any]]]:
    docs = fleet_items()[:4]
    fleet = fleetdoc.FleetDocument()
    for d in docs:
        fleet.add(b"", d)
    fleet.fail("gpu-node-99", "gone")
    return fleet, docs


@pytest.mark.parametrize("fmt", snapshot_io.FORMATS)
def test_deliver_to_a_file_writes_the_whole_list_atomically(tmp_path: Path, fmt: str) -> None:
    fleet, docs = small_fleet()
    path = tmp_path / f"fleet.{fmt}"
    path.write_text("old")
    os.chmod(path, 0o640)
    assert fleetdoc.deliver(fleet, META, snapshot_io.FilePath(str(path)), fmt) == str(path)
    assert path.read_bytes() == whole_list(docs, fleet.failures, META, formats.V1ALPHA1, fmt).encode()
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_deliver_to_stdout_writes_the_whole_list(capsys: pytest.CaptureFixture[str]) -> None:
    fleet, docs = small_fleet()
    assert fleetdoc.deliver(fleet, META, snapshot_io.Stdio(), "yaml") == "stdout"
    assert capsys.readouterr().out == whole_list(docs, fleet.failures, META, formats.V1ALPHA1, "yaml")


def test_deliver_checks_before_it_writes(tmp_path: Path) -> None:
    fleet, _ = small_fleet()
    path = tmp_path / "fleet.json"
    path.write_text("old")
    with pytest.raises(SnapshotInvalid, match=r"^fleet snapshot: not a valid snapshot: \$\.metadata\.timestamp"):
        fleetdoc.deliver(fleet, {"timestamp": "now"}, snapshot_io.FilePath(str(path)), "json")
    assert path.read_text() == "old"
    with pytest.raises(InvalidInput, match="writing a ConfigMap needs a cluster connection"):
        fleetdoc.deliver(fleet, META, snapshot_io.parse_location("cm://ns/name"), "json")


def test_a_file_written_in_chunks_is_left_untouched_when_producing_them_fails(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")

    def chunks() -> Iterator[bytes]:
        yield b"{\n"
        raise RuntimeError("serialising failed")

    with pytest.raises(RuntimeError, match="serialising failed"):
        snapshot_io.write_file_chunks(str(path), chunks())
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
    snapshot_io.write_file_chunks(str(path), iter([b"a", b"", "ü".encode()]))
    assert path.read_text() == "aü"
