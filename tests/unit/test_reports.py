"""Reports CI systems read: JUnit XML parsed as GitLab/GitHub reporters read it, and markdown that stays within
GitHub's limits (1 MiB step summary, 64 KB comment) with every table well-formed, however large the input."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from kubectl_aicr import diff as engine
from kubectl_aicr import snapshot_io
from kubectl_aicr.policy.engine import CheckResult, check
from kubectl_aicr.policy.model import policy_from_doc
from kubectl_aicr.reports import PR_COMMENT_BYTES, STEP_SUMMARY_BYTES, check_report, diff_report, markdown

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
TODAY = dt.date(2026, 6, 1)


def load(name: str) -> dict[str, Any]:
    return snapshot_io.load(snapshot_io.FilePath(str(SNAPSHOTS / name)))


NODE_A = load("node-a.yaml")
DRIFT = load("node-a-drift.yaml")
FLEET = load("fleet-20.yaml")["items"]

POLICY = {
    "apiVersion": "aicr.nvidia.com/v1alpha1",
    "kind": "Policy",
    "metadata": {"name": "h100"},
    "rules": [
        {"id": "driver", "type": "GPU", "subtype": "smi", "key": "driver", "expect": {"version": ">= 570.86, < 571"}},
        {"id": "pool", "type": "K8s", "subtype": "labels", "key": "pool", "expect": {"equals": "training"}},
        {"id": "ecc", "type": "GPU", "subtype": "gpu-*", "key": "ecc-mode-current", "expect": {"equals": "Enabled"}},
    ],
    "waivers": [
        {
            "rule": "pool",
            "nodes": ["gpu-node-13"],
            "reason": "inference pilot",
            "owner": "ml-infra",
            "expires": "2026-12-31",
        },
        {"rule": "driver", "nodes": ["gpu-node-99"], "reason": "gone", "owner": "me", "expires": "2026-12-31"},
    ],
}


def fleet_result(snaps: list[dict[str, Any]] = FLEET, doc: dict[str, Any] = POLICY) -> CheckResult:
    return check(policy_from_doc(doc, "policy.yaml"), snaps, today=TODAY, sources=["fleet-20.yaml"])


def big_fleet(n: int, long: int = 0) -> list[dict[str, Any]]:
    """``n`` nodes made from the fleet fixture; every node gets a wrong driver (``long`` extra characters)."""
    out = []
    for i in range(n):
        s = copy.deepcopy(FLEET[i % len(FLEET)])
        name = f"gpu-node-{i:05d}"
        s["metadata"]["source-node"] = name
        smi = s["measurements"][0]["subtypes"][0]["data"]
        smi["driver"] = "550.54.15" + ("-" + "x" * long if long else "")
        out.append(s)
    return out


@functools.lru_cache(maxsize=1)
def big_result() -> CheckResult:
    """5,000 wrong drivers (long readings) and 250 wrong pools: far more than either markdown limit holds."""
    return fleet_result(big_fleet(5000, long=250))


# ============================================================================ JUnit


def parse_junit(text: str) -> ET.Element:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    total = {k: 0 for k in ("tests", "failures", "errors", "skipped")}
    for suite in root:
        assert suite.tag == "testsuite" and suite.get("name")
        cases = suite.findall("testcase")
        counts = {
            "tests": len(cases),
            "failures": sum(1 for c in cases if c.find("failure") is not None),
            "errors": sum(1 for c in cases if c.find("error") is not None),
            "skipped": sum(1 for c in cases if c.find("skipped") is not None),
        }
        assert {k: int(suite.get(k, "-1")) for k in counts} == counts
        for k in total:
            total[k] += counts[k]
        for c in cases:
            assert c.get("classname") and c.get("name")
            outcomes = [e for e in c if e.tag in ("failure", "error", "skipped")]
            assert len(outcomes) <= 1
            for e in outcomes:
                assert e.get("message")
    assert {k: int(root.get(k, "-1")) for k in total} == total
    return root


def test_check_junit_one_testcase_per_rule_and_node() -> None:
    root = parse_junit(check_report.render(fleet_result(), "junit"))
    cases = root.findall("./testsuite/testcase")
    by_name = {c.get("name"): c for c in cases}
    # 3 rules x 20 nodes, plus the stale waiver
    assert len(cases) == 61 and root.get("failures") == "1" and root.get("skipped") == "2"
    fail = by_name["driver on gpu-node-07"].find("failure")
    assert fail is not None and fail.get("type") == "error"
    assert fail.get("message") == "GPU/smi/driver: 575.51.03, expected version >= 570.86, < 571"
    waived = by_name["pool on gpu-node-13"].find("skipped")
    assert waived is not None
    assert waived.get("message") == "waived: inference pilot (owner ml-infra, expires 2026-12-31)"
    assert by_name["pool on gpu-node-13"].get("classname") == "pool"
    stale = by_name["waivers[1] (driver)"].find("skipped")
    assert stale is not None and "stale" in (stale.get("message") or "")
    assert by_name["ecc on gpu-node-01"].find("failure") is None


def test_junit_stays_valid_xml_with_control_characters_in_readings() -> None:
    snaps = copy.deepcopy(FLEET[:2])
    snaps[0]["measurements"][0]["subtypes"][0]["data"]["driver"] = "5\x00\x1b[31m\ufffe\U0001f600"
    snaps[1]["metadata"]["source-node"] = "gpu\x01node\x0b"
    root = parse_junit(check_report.render(fleet_result(snaps), "junit"))
    msg = root.find("./testsuite/testcase/failure")
    assert msg is not None and "\x00" not in (msg.get("message") or "") and "5\\u0000" in (msg.get("message") or "")
    names = [c.get("name") for c in root.iter("testcase")]
    assert "driver on gpu\\x01node\\x0b" in names


def test_list_failures_are_junit_errors() -> None:
    p = policy_from_doc(POLICY, "policy.yaml")
    r = check(p, FLEET, today=TODAY, failures=[{"node": "gpu-node-21", "reason": "ErrImagePull"}])
    root = parse_junit(check_report.render(r, "junit"))
    assert root.get("errors") == "1" and not r.compliant


def test_diff_junit_two_snapshots_and_fleet() -> None:
    result = engine.diff_snapshots(NODE_A, DRIFT, base_source="a.yaml", current_source="b.yaml")
    root = parse_junit(diff_report.render(result, "junit"))
    names = [c.get("name") for c in root.iter("testcase")]
    assert "GPU/smi" in names and "OS/sysctl" in names and int(root.get("failures", "0")) == len(names)
    smi = next(c for c in root.iter("testcase") if c.get("name") == "GPU/smi").find("failure")
    assert smi is not None and "~ driver: 570.86.15 -> 575.51.03" in (smi.text or "")
    same = parse_junit(diff_report.render(engine.diff_snapshots(NODE_A, NODE_A), "junit"))
    assert same.get("tests") == "1" and same.get("failures") == "0"
    fleet = parse_junit(diff_report.render_fleet(engine.group_by_configuration(FLEET), "junit"))
    failed = sorted(c.get("name") or "" for c in fleet.iter("testcase") if c.find("failure") is not None)
    assert fleet.get("tests") == "20" and failed == ["gpu-node-07", "gpu-node-13"]


# ============================================================================ markdown

_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def assert_well_formed(text: str) -> list[list[str]]:
    """Every table: a header, a separator right after it, then rows with the header's number of cells; a blank
    line before and after each table. Returns the tables."""
    lines = text.split("\n")
    tables: list[list[str]] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("|"):
            i += 1
            continue
        assert i == 0 or lines[i - 1] == "", f"no blank line before the table at line {i}"
        block = []
        while i < len(lines) and lines[i].startswith("|"):
            block.append(lines[i])
            i += 1
        assert len(block) >= 3, f"a table without rows: {block[:2]}"
        assert re.fullmatch(r"\|(---\|)+", block[1]), block[1]
        width = len(_CELL_SPLIT.split(block[0]))
        for r in block:
            assert r.endswith(" |") or r == block[1], r
            assert len(_CELL_SPLIT.split(r)) == width, r
        assert i == len(lines) or lines[i] == "", f"no blank line after the table at line {i}"
        tables.append(block)
    return tables


def test_check_markdown_small() -> None:
    text = check_report.render(fleet_result(), "markdown")
    tables = assert_well_formed(text)
    assert text.startswith("### ❌ kubectl aicr check: not compliant: 1 violation on 1 node")
    assert (
        "| error | `driver` | `gpu-node-07` | `GPU/smi/driver` | 575.51.03, expected version >= 570.86, < 571 |" in text
    )
    assert (
        "| `pool` | `gpu-node-13` | `K8s/labels/pool` | inference, expected training | inference pilot | ml-infra "
        "| 2026-12-31 |" in text
    )
    assert len(tables) == 4 and "Left out" not in text


@pytest.mark.parametrize("fmt, limit", [("markdown", PR_COMMENT_BYTES), ("markdown-summary", STEP_SUMMARY_BYTES)])
def test_check_markdown_is_capped_and_counts_what_it_left_out(fmt: str, limit: int) -> None:
    r = big_result()
    total = r.summary()["violations"]
    text = check_report.render(r, fmt)
    assert len(text.encode("utf-8")) <= limit
    assert len(text.encode("utf-8")) > limit * 0.9  # the room is used
    tables = assert_well_formed(text)
    shown = len(tables[1]) - 2
    m = re.search(
        r"\*Left out to fit ([\d,]+) bytes: ([\d,]+) more violations(, [^;]+)?; "
        r"run with `-o json` for the full report\.\*\n\Z",
        text,
    )
    assert m is not None and int(m.group(1).replace(",", "")) == limit, text[-500:]
    assert shown + int(m.group(2).replace(",", "")) == total == 5250


def test_cap_never_breaks_a_table_whatever_the_cut() -> None:
    rows = [markdown.row([f"`k{i}`", "x" * (i % 97)]) for i in range(400)]
    text = "\n".join(
        [
            "### title",
            "",
            *markdown.header(["Key", "Value"]),
            *rows,
            "",
            "#### next",
            "",
            *markdown.header(["A", "B"]),
            *rows[:50],
            "",
        ]
    )
    full = len(text.encode())
    for limit in range(700, full + 200, 97):
        out = markdown.cap(text, limit)
        assert len(out.encode()) <= limit or out == text
        assert_well_formed(out)
        if out != text:
            assert re.search(
                r"\*… truncated to fit [\d,]+ bytes: [\d,]+ more table rows and [\d,]+ more lines not "
                r"shown; run with `-o json` for the full report\.\*\n\Z",
                out,
            )


def test_diff_markdown_is_capped_for_a_comment_and_fits_a_summary() -> None:
    current = copy.deepcopy(NODE_A)
    sysctl = next(
        s for m in current["measurements"] if m["type"] == "OS" for s in m["subtypes"] if s["subtype"] == "sysctl"
    )["data"]
    for i in range(3000):
        sysctl[f"/proc/sys/net/ipv4/conf/eth{i}/some_long_setting_name"] = "v" * 150
    result = engine.diff_snapshots(NODE_A, current)
    comment = diff_report.render(result, "markdown")
    assert len(comment.encode()) <= PR_COMMENT_BYTES and "truncated to fit 65,536 bytes" in comment
    assert_well_formed(comment)
    summary = diff_report.render(result, "markdown-summary")
    assert len(summary.encode()) <= STEP_SUMMARY_BYTES
    assert_well_formed(summary)


def test_text_report_escapes_terminal_controls() -> None:
    snaps = copy.deepcopy(FLEET[:2])
    snaps[0]["measurements"][0]["subtypes"][0]["data"]["driver"] = "575\x1b]0;pwned\x07"
    text = check_report.render(fleet_result(snaps), "text")
    assert "\x1b" not in text and "\x07" not in text and "\\u001b" in text or "\\x1b" in text


def test_json_report_shape() -> None:
    import json

    doc = json.loads(check_report.render(fleet_result(), "json"))
    assert doc["compliant"] is False and doc["summary"]["checks"] == 60
    failing = [c for c in doc["checks"] if c["status"] == "fail"]
    assert failing == [
        {
            "rule": "driver",
            "node": "gpu-node-07",
            "severity": "error",
            "status": "fail",
            "checked": 1,
            "violations": [
                {
                    "path": "GPU/smi/driver",
                    "message": "575.51.03, expected version >= 570.86, < 571",
                    "actual": "575.51.03",
                    "missing": False,
                    "waived": False,
                    "waiver": None,
                    "expired_waiver": None,
                }
            ],
        }
    ]
    assert [w["stale"] for w in doc["waivers"]] == [False, True]
