"""Reading and writing a snapshot location are symmetric: ``snapshot_io.load`` and ``snapshot_io.save`` take the same
location and the same lazy ``connect``, which is called only for ``cm://``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from collector.model import Measurement, build_snapshot, reading
from kubectl_aicr import snapshot_io
from kubectl_aicr.errors import InvalidInput
from kubectl_aicr.kube import Kube


def doc() -> dict[str, Any]:
    return build_snapshot(
        {"timestamp": "2026-11-27T06:00:00Z", "version": "0.1.0", "source-node": "gpu-1"},
        [Measurement("OS", [reading("release", {"ID": "ubuntu"}, source="/etc/os-release")])],
    )


def never() -> Kube:
    raise AssertionError("a file or stdio location must not connect to a cluster")


@pytest.mark.parametrize("fmt", snapshot_io.FORMATS)
def test_a_file_saved_loads_back_without_connecting(tmp_path: Path, fmt: str) -> None:
    dest = snapshot_io.FilePath(str(tmp_path / f"s.{fmt}"))
    assert snapshot_io.save(doc(), dest, fmt, connect=never) == dest.path
    assert snapshot_io.load(dest, connect=never) == doc()
    assert list(tmp_path.iterdir()) == [tmp_path / f"s.{fmt}"]  # atomic: no temporary file left


def test_stdout_saved_loads_back_from_stdin(capsys: pytest.CaptureFixture[str]) -> None:
    assert snapshot_io.save(doc(), snapshot_io.Stdio(), "json", connect=never) == "stdout"
    text = capsys.readouterr().out
    assert json.loads(text) == doc()
    assert snapshot_io.load(snapshot_io.Stdio(), stdin=io.BytesIO(text.encode()), connect=never) == doc()


def test_a_configmap_needs_a_connection_both_ways() -> None:
    ref = snapshot_io.ConfigMapRef("ns", "x")
    with pytest.raises(InvalidInput, match="^cm://ns/x: writing a ConfigMap needs a cluster connection"):
        snapshot_io.save(doc(), ref, "yaml")
    with pytest.raises(InvalidInput, match="^cm://ns/x: reading a ConfigMap needs a cluster connection"):
        snapshot_io.load(ref)
