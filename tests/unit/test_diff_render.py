"""Renderers of diff results: the text report, the documented json/yaml structure, markdown for pull requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.model import Measurement, build_snapshot, missing, reading
from kubectl_aicr import snapshot_io
from kubectl_aicr.diff import DiffOptions, diff_snapshots, group_by_configuration
from kubectl_aicr.diff import render as diff_render
from kubectl_aicr.diff.render import format_value
from kubectl_aicr.reports.markdown import code_span as md_code

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"


def load(name: str) -> dict[str, Any]:
    return snapshot_io.load(snapshot_io.FilePath(str(SNAPSHOTS / name)))


def drift_result() -> Any:
    return diff_snapshots(
        load("node-a.yaml"), load("node-a-drift.yaml"), base_source="node-a.yaml", current_source="node-a-drift.yaml"
    )


def test_text_report_groups_by_measurement_and_subtype() -> None:
    text = diff_render.render_text(drift_result())
    assert (
        text
        == """\
base:    node-a.yaml (node gpu-node-01, 2026-03-20T18:04:11Z)
current: node-a-drift.yaml (node gpu-node-01, 2026-03-21T09:30:00Z)

GPU
  smi
    ~ driver: 570.86.15 -> 575.51.03
    ~ gpu.gsp-firmware-version: 570.86.15 -> 575.51.03
  ~ gpu-1: status ok -> error (GPU 0000:28:00.0 fell off the bus (Xid 79)), 15 keys no longer reported
OS
  sysctl
    + /proc/sys/kernel/nmi_watchdog: "0"
    ~ /proc/sys/vm/swappiness: "60" -> "10"
  kmod
    - nvidia_peermem: true
SystemD
  kubelet.service
    ~ NRestarts: 0 -> 3
  - docker.service (subtype removed, 3 keys)
K8s
  labels
    + nvidia.com/mig.config: all-disabled | pending
  policy
    ~ driver.version: 570.86.16 -> 575.51.03
+ NodeTopology (measurement added: 2 subtypes, 4 keys)

drift: 6 changed, 3 added, 2 removed (25 differences in volatile or ignored keys not shown; \
--include-volatile shows the volatile ones)
"""
    )
    assert "\x1b[" not in text


def test_text_colour_only_when_asked() -> None:
    coloured = diff_render.render_text(drift_result(), color=True)
    assert "\x1b[32m" in coloured and "\x1b[31m" in coloured and "\x1b[33m" in coloured  # + - ~
    import click

    assert click.unstyle(coloured) == diff_render.render_text(drift_result())


def test_text_no_drift_and_status_came_back() -> None:
    a = load("node-a.yaml")
    text = diff_render.render_text(diff_snapshots(a, a, base_source="x", current_source="y"))
    assert text.endswith("\nno drift\n")
    gone = build_snapshot({}, [Measurement("GPU", [missing("smi", source="nvidia-smi", reason="not found")])])
    smi = reading("smi", {"driver": "570", "gpu-count": 8}, source="nvidia-smi")
    back = build_snapshot({}, [Measurement("GPU", [smi])])
    text = diff_render.render_text(diff_snapshots(gone, back))
    assert "  ~ smi: status unavailable -> ok (not found), 2 keys now reported\n" in text
    text = diff_render.render_text(diff_snapshots(back, gone))
    assert "  ~ smi: status ok -> unavailable (not found), 2 keys no longer reported\n" in text


@pytest.mark.parametrize(
    "value, shown",
    [
        ("570.86.15", "570.86.15"),
        ("08", '"08"'),
        (8, "8"),
        (8.0, "8.0"),
        ("", '""'),
        (None, "null"),
        ("null", '"null"'),
        ("true", '"true"'),
        (True, "true"),
        (" padded", '" padded"'),
        ("a\tb", '"a\\tb"'),
        ("x -> y", '"x -> y"'),
        ("<nil>", "<nil>"),
        ("Ubuntu 22.04.5 LTS", "Ubuntu 22.04.5 LTS"),
    ],
)
def test_format_value_quotes_only_ambiguous_strings(value: Any, shown: str) -> None:
    assert format_value(value) == shown


def test_format_value_truncates_long_values() -> None:
    shown = format_value("x" * 1000)
    assert len(shown) < 200 and shown.endswith("… (1000 chars)")
    assert format_value("x" * 1000, max_chars=None) == "x" * 1000


def test_json_structure_is_the_documented_one() -> None:
    doc = json.loads(diff_render.render(drift_result(), "json"))
    assert list(doc) == ["drift", "summary", "changes", "base", "current", "options"]
    assert doc["drift"] is True
    assert doc["summary"] == {"added": 3, "removed": 2, "changed": 6, "ignored": 25}
    assert doc["base"] == {
        "source": "node-a.yaml",
        "node": "gpu-node-01",
        "timestamp": "2026-03-20T18:04:11Z",
        "version": "0.1.0",
    }
    assert doc["options"] == {"include_volatile": False, "ignore_identity": False, "ignore": [], "only": []}
    for c in doc["changes"]:
        assert list(c)[:7] == ["type", "subtype", "key", "change", "scope", "base", "current"]
        assert c["change"] in ("added", "removed", "changed")
    assert doc["changes"][0] == {
        "type": "GPU",
        "subtype": "smi",
        "key": "driver",
        "change": "changed",
        "scope": "key",
        "base": "570.86.15",
        "current": "575.51.03",
    }
    assert doc["changes"][2] == {
        "type": "GPU",
        "subtype": "gpu-1",
        "key": None,
        "change": "changed",
        "scope": "status",
        "base": "ok",
        "current": "error",
        "keys": 15,
        "reason": "GPU 0000:28:00.0 fell off the bus (Xid 79)",
    }
    assert doc["changes"][-1] == {
        "type": "NodeTopology",
        "subtype": None,
        "key": None,
        "change": "added",
        "scope": "measurement",
        "base": None,
        "current": None,
        "keys": 4,
        "subtypes": 2,
    }
    # readings keep their type in the machine form
    nrestarts = next(c for c in doc["changes"] if c["key"] == "NRestarts")
    assert (nrestarts["base"], nrestarts["current"]) == (0, 3)


def test_yaml_carries_the_same_structure_as_json() -> None:
    result = drift_result()
    assert yaml.safe_load(diff_render.render(result, "yaml")) == json.loads(diff_render.render(result, "json"))


def test_markdown_has_a_table_per_measurement() -> None:
    md = diff_render.render_markdown(drift_result())
    assert md.startswith("### kubectl aicr diff: drift: 6 changed, 3 added, 2 removed\n")
    assert md.count("| Change | Subtype | Key | Base | Current |") == 5
    for section in ("#### GPU", "#### OS", "#### SystemD", "#### K8s", "#### NodeTopology"):
        assert f"\n{section}\n" in md
    assert "| changed | `smi` | `driver` | `570.86.15` | `575.51.03` |" in md
    assert "| added | `labels` | `nvidia.com/mig.config` |  | `all-disabled \\| pending` |" in md  # pipe escaped
    assert "| changed | `gpu-1` | *status* (15 keys folded) | `ok` | `error` `GPU 0000:28:00.0 fell off" in md
    assert "| removed | `docker.service` | *whole subtype: 3 keys* |  |  |" in md
    assert "*25 differences in volatile or ignored keys not shown" in md
    for line in md.splitlines():
        if line.startswith("| ") and "\\|" not in line:
            assert line.count("|") == 6, line  # no cell leaks a pipe


def test_markdown_code_spans_survive_backticks_newlines_and_pipes() -> None:
    assert md_code("plain") == "`plain`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`start") == "`` `start ``"
    assert md_code("a|b") == "`a\\|b`"
    assert md_code("one\ntwo") == "`one⏎two`"
    assert md_code("") == "*(empty)*"


def test_markdown_no_drift_and_row_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    a = load("node-a.yaml")
    assert diff_render.render_markdown(diff_snapshots(a, a)).startswith("### kubectl aicr diff: no drift\n")
    monkeypatch.setattr(diff_render, "MAX_MARKDOWN_ROWS", 3)
    md = diff_render.render_markdown(drift_result())
    assert md.count("\n| changed |") + md.count("\n| added |") + md.count("\n| removed |") == 3
    assert "*… and 8 more changes (run with `-o json` for all of them).*" in md


def test_fleet_renderers() -> None:
    result = group_by_configuration(load("fleet-20.yaml")["items"])
    text = diff_render.render_fleet_text(result)
    assert text.startswith("20 nodes, 3 configurations; baseline: 18 nodes (majority), reference gpu-node-01\n")
    assert (
        "\ngpu-node-07 (configuration 2, 1 changed, 0 added, 0 removed vs gpu-node-01)\n  GPU\n    smi\n"
        "      ~ driver: 570.86.15 -> 575.51.03\n" in text
    )
    assert "      ~ pool: training -> inference\n" in text
    assert text.endswith("\ndrift: 2 of 20 nodes deviate from the baseline\n")

    doc = json.loads(diff_render.render_fleet(result, "json"))
    assert list(doc) == ["drift", "summary", "baseline", "groups", "deviations", "failures", "options"]
    assert doc["summary"] == {"nodes": 20, "configurations": 3, "deviating": 2, "failed": 0}
    assert doc["baseline"]["reference"] == "gpu-node-01" and len(doc["baseline"]["nodes"]) == 18
    assert doc["baseline"]["majority"] is True
    assert [d["node"] for d in doc["deviations"]] == ["gpu-node-07", "gpu-node-13"]
    assert doc["deviations"][0]["summary"] == {"added": 0, "removed": 0, "changed": 1}
    assert doc["deviations"][0]["changes"][0]["key"] == "driver"
    assert doc["options"]["ignore_identity"] is False  # as given; grouping forces it internally
    assert yaml.safe_load(diff_render.render_fleet(result, "yaml")) == doc

    md = diff_render.render_fleet_markdown(result)
    assert md.startswith("### kubectl aicr diff --across-nodes: 2 of 20 nodes deviate\n")
    assert "| 1 (baseline) |" in md and "#### `gpu-node-13` (configuration 3): 1 changed, 0 added, 0 removed" in md


def test_fleet_text_with_failures_and_no_drift() -> None:
    a = load("node-a.yaml")
    ok = group_by_configuration([a], DiffOptions())
    assert diff_render.render_fleet_text(ok).endswith("no drift: a single node\n")
    two = group_by_configuration([a, load("node-a-rerun.yaml")])
    assert diff_render.render_fleet_text(two).endswith("no drift: all 2 nodes share one configuration\n")
    failed = group_by_configuration([a], failures=[{"node": "gpu-9", "reason": "0/5 nodes are available"}])
    text = diff_render.render_fleet_text(failed)
    assert "\nno snapshot:\n  gpu-9: 0/5 nodes are available\n" in text
    assert text.endswith("drift: 1 node without a snapshot\n")
    assert "| `gpu-9` | `0/5 nodes are available` |" in diff_render.render_fleet_markdown(failed)
