"""Schema validation and snapshot reading/writing on real fixtures and every kind of bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.model import Measurement, build_snapshot, missing, reading
from kubectl_aicr import snapshot_io
from kubectl_aicr.errors import InvalidInput, SnapshotInvalid
from kubectl_aicr.schema import problems, schema, validate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MOCK = FIXTURES / "snapshots" / "aicr-mock-snapshot.yaml"


def sample() -> dict:
    return build_snapshot(
        {"timestamp": "2026-11-27T06:00:00Z", "version": "0.1.0", "source-node": "gpu-1"},
        [
            Measurement("OS", [reading("release", {"ID": "ubuntu", "VERSION_ID": "22.04"}, source="/etc/os-release")]),
            Measurement(
                "GPU",
                [
                    reading(
                        "smi",
                        {"driver": "570.86.15", "gpu-count": 8, "x": 1.5, "y": True, "z": None},
                        source="nvidia-smi -q -x",
                    )
                ],
            ),
            Measurement("SystemD", [missing("containerd.service", source="systemctl", reason="no systemd")]),
        ],
    )


def test_schema_is_valid_draft_2020_12() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_built_snapshot_is_valid_and_deterministically_ordered() -> None:
    doc = sample()
    assert problems(doc) == []
    assert list(doc) == ["kind", "apiVersion", "metadata", "measurements"]
    assert [m["type"] for m in doc["measurements"]] == ["GPU", "OS", "SystemD"]
    smi = doc["measurements"][0]["subtypes"][0]
    assert list(smi["data"]) == sorted(smi["data"])
    assert smi["data"]["gpu-count"] == 8 and smi["data"]["y"] is True and smi["data"]["z"] is None
    sd = doc["measurements"][2]["subtypes"][0]
    assert sd["data"] == {} and sd["context"]["status"] == "unavailable" and sd["context"]["reason"] == "no systemd"


def test_original_tool_snapshot_loads() -> None:
    doc = snapshot_io.load(snapshot_io.FilePath(str(MOCK)))
    assert doc["measurements"][0]["type"] == "K8s"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d.update(kind="Pod"), "$.kind: 'Pod' is not a snapshot"),
        (
            lambda d: d.update(apiVersion="aicr.run/v2"),
            "$.apiVersion: 'aicr.run/v2' is not supported; supported: aicr.nvidia.com/v1alpha1, aicr.run/v1alpha2, aicr.run/v1",  # noqa: E501
        ),
        (
            lambda d: d["measurements"][0]["subtypes"][0]["data"].update(bad={"nested": 1}),
            "$.measurements[0].subtypes[0].data.bad: {'nested': 1} is not of type",
        ),
        (lambda d: d["measurements"][1].update(type="has space"), "$.measurements[1].type: 'has space' does not match"),
        (
            lambda d: d["metadata"].update(timestamp="yesterday"),
            "$.metadata.timestamp: 'yesterday' is not a 'date-time'",
        ),
        (lambda d: d.update(extra=1), "$: Additional properties are not allowed ('extra' was unexpected)"),
        (
            lambda d: d["measurements"][0]["subtypes"][0].pop("data"),
            "$.measurements[0].subtypes[0]: 'data' is a required property",
        ),
        (
            lambda d: d["measurements"][2]["subtypes"][0]["context"].update(status="weird"),
            "$.measurements[2].subtypes[0].context.status: 'weird' is not one of",
        ),
        (
            lambda d: d["measurements"].append({"type": "GPU"}),
            "$.measurements[3].type: duplicate measurement type 'GPU'",
        ),
    ],
)
def test_schema_problems_name_the_json_path(mutate, expected) -> None:
    doc = sample()
    mutate(doc)
    found = problems(doc)
    assert found and found[0].startswith(expected), found
    with pytest.raises(SnapshotInvalid) as e:
        validate(doc, source="x.yaml")
    assert e.value.exit_code == 2 and e.value.details == found


def test_every_error_is_reported_sorted_by_path() -> None:
    doc = sample()
    doc["measurements"][0]["subtypes"][0]["data"]["a"] = [1]
    doc["measurements"][1]["type"] = 7
    found = problems(doc)
    assert len(found) == 2
    assert found[0].startswith("$.measurements[0]") and found[1].startswith("$.measurements[1]")


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "empty document"),
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"a: [1, 2\n", "not valid YAML"),
        (b'{"kind": ', "not valid JSON"),
        (b"a: 1\n---\nb: 2\n", "expected one YAML document, found 2"),
        (b"x: &a [1, 2]\ny: *a\n", "YAML aliases"),
    ],
)
def test_unparseable_inputs_get_one_clear_line(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        snapshot_io.parse_document(raw, source="in.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith("in.yaml: ")


def test_yaml_and_json_round_trip_keep_types(tmp_path: Path) -> None:
    doc = sample()
    for fmt in ("yaml", "json"):
        p = tmp_path / f"s.{fmt}"
        snapshot_io.write_file_atomic(str(p), snapshot_io.dumps(doc, fmt))
        back = snapshot_io.load(snapshot_io.FilePath(str(p)))
        assert back == doc
    assert (
        yaml.safe_load((tmp_path / "s.yaml").read_text())["measurements"][0]["subtypes"][0]["data"]["driver"]
        == "570.86.15"
    )


def test_directory_missing_and_huge_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is a directory"):
        snapshot_io.load(snapshot_io.FilePath(str(tmp_path)))
    with pytest.raises(InvalidInput, match="no such file"):
        snapshot_io.load(snapshot_io.FilePath(str(tmp_path / "nope.yaml")))
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(snapshot_io.MAX_DOCUMENT_BYTES + 1)  # sparse: takes no disk space
    with pytest.raises(InvalidInput, match="larger than the"):
        snapshot_io.load(snapshot_io.FilePath(str(big)))


def test_stdin(tmp_path: Path) -> None:
    raw = json.dumps(sample()).encode()
    assert snapshot_io.load(snapshot_io.Stdio(), stdin=io.BytesIO(raw)) == sample()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("-", snapshot_io.Stdio()),
        ("", snapshot_io.Stdio()),
        ("cm://gpu-ops/baseline", snapshot_io.ConfigMapRef("gpu-ops", "baseline")),
        ("out/snap.yaml", snapshot_io.FilePath("out/snap.yaml")),
    ],
)
def test_parse_location(text: str, expected: object) -> None:
    assert snapshot_io.parse_location(text) == expected


@pytest.mark.parametrize(
    "text",
    ["cm://", "cm://ns", "cm://ns/", "cm:///name", "cm://Bad_NS/x", "cm://ns/Bad Name", "https://example.com/s.yaml"],
)
def test_bad_locations(text: str) -> None:
    with pytest.raises(InvalidInput):
        snapshot_io.parse_location(text)


def test_atomic_write_leaves_original_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "snap.yaml"
    target.write_text("precious")

    def boom(*a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(InvalidInput, match="cannot write the snapshot: disk full"):
        snapshot_io.write_file_atomic(str(target), "new content")
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["snap.yaml"]


def test_check_writable(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is a directory"):
        snapshot_io.check_writable(snapshot_io.FilePath(str(tmp_path)))
    with pytest.raises(InvalidInput, match="does not exist"):
        snapshot_io.check_writable(snapshot_io.FilePath(str(tmp_path / "no" / "x.yaml")))
    snapshot_io.check_writable(snapshot_io.FilePath(str(tmp_path / "ok.yaml")))


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubectl_aicr", *args], input=stdin, capture_output=True, timeout=60)


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    ok = run_cli("validate", str(MOCK))
    assert ok.returncode == 0 and b"valid Snapshot (2 measurements)" in ok.stdout
    bad = sample()
    bad["measurements"][0]["subtypes"][0]["data"]["l"] = [1]
    bad["kind"] = "Snapshot"
    bad["measurements"][1]["type"] = ""
    r = run_cli("validate", "-", stdin=json.dumps(bad).encode())
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "not a valid snapshot (2 errors)" in err
    assert "$.measurements[0].subtypes[0].data.l" in err and "$.measurements[1].type" in err
    r = run_cli("validate", str(tmp_path))
    assert r.returncode == 2 and r.stderr.decode().strip() == f"error: {tmp_path}: is a directory, not a snapshot file"


def test_schema_command_prints_the_shipped_schema() -> None:
    r = run_cli("schema")
    assert r.returncode == 0 and json.loads(r.stdout) == schema()


def test_help_does_not_import_kubernetes_or_jsonschema() -> None:
    code = (
        "import sys; from kubectl_aicr.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('kubernetes', 'jsonschema', 'urllib3')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "[]"
