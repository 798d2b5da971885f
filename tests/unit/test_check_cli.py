"""``kubectl aicr check`` and ``kubectl aicr policy`` through the real entry point: exit codes 0/1/2, formats,
--output-file, waiver expiry by --date, one error line for every bad policy, and no kubernetes client (nor
jsonschema for --help) imported when it is not needed. Also ``diff -o junit|markdown-summary``."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
import yaml
from click.testing import CliRunner

from kubectl_aicr.cli import main

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
A = str(SNAPSHOTS / "node-a.yaml")
DRIFT = str(SNAPSHOTS / "node-a-drift.yaml")
FLEET = str(SNAPSHOTS / "fleet-20.yaml")

POLICY = """\
apiVersion: aicr.nvidia.com/v1alpha1
kind: Policy
metadata: {name: h100-training}
rules:
- id: gpu-driver
  type: GPU
  subtype: smi
  key: driver
  expect: {version: ">= 570.86, < 571"}
- id: ecc
  type: GPU
  subtype: gpu-*
  key: ecc-mode-current
  expect: {equals: Enabled}
- id: pool
  type: K8s
  subtype: labels
  key: pool
  severity: warning
  expect: {equals: training}
"""
WAIVER = """\
waivers:
- rule: gpu-driver
  nodes: [gpu-node-07]
  reason: canary for the 575 branch
  owner: gpu-platform@example.com
  expires: {expires}
"""


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(*args: str, stdin: Optional[bytes] = None) -> Run:
    runner = CliRunner()
    with runner.isolation(input=stdin) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def one_error_line(r: Run) -> str:
    lines = [ln for ln in r.err.splitlines() if not ln.startswith("hint: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    return lines[0]


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY)
    return p


@pytest.fixture
def waived(tmp_path: Path) -> Path:
    p = tmp_path / "waived.yaml"
    p.write_text(POLICY + WAIVER.format(expires="2026-12-31"))
    return p


# ============================================================================ exit codes


def test_compliant_exits_0(policy: Path) -> None:
    r = run("check", "--policy", str(policy), A)
    assert r.code == 0 and r.out.endswith("\ncompliant: 3 of 3 checks passed\n") and r.err == ""


def test_violation_exits_1_unless_exit_zero(policy: Path) -> None:
    r = run("check", "--policy", str(policy), FLEET)
    assert r.code == 1
    assert (
        "FAIL    gpu-driver [error] gpu-node-07: GPU/smi/driver: 575.51.03, expected version >= 570.86, < 571" in r.out
    )
    assert "WARNING pool [warning] gpu-node-13: K8s/labels/pool: inference, expected training" in r.out
    assert r.out.endswith("not compliant: 1 violation on 1 node (1 finding below --fail-on error)\n")
    assert run("check", "--policy", str(policy), FLEET, "--exit-zero").code == 0


def test_fail_on_warning(policy: Path) -> None:
    r = run("check", "--policy", str(policy), A, FLEET, "--fail-on", "warning")
    assert r.code == 1 and "2 violations on 2 nodes" in r.out


def test_waiver_turns_the_violation_into_an_accepted_deviation(waived: Path) -> None:
    r = run("check", "--policy", str(waived), FLEET, "--date", "2026-06-01")
    assert r.code == 0, r.out
    assert (
        "WAIVED  gpu-driver [error] gpu-node-07: GPU/smi/driver: 575.51.03, expected version >= 570.86, < 571" in r.out
    )
    assert (
        "accepted deviation, waivers[0]: canary for the 575 branch (owner gpu-platform@example.com, expires 2026-12-31)"
    ) in r.out
    assert "compliant: 58 of 60 checks passed (1 accepted deviation (waived); 1 finding below --fail-on error)" in r.out


def test_expired_waiver_fails_and_says_so(waived: Path) -> None:
    r = run("check", "--policy", str(waived), FLEET, "--date", "2027-01-01")
    assert r.code == 1
    assert "        waiver expired on 2026-12-31, so it no longer applies: waivers[0]: canary" in r.out
    assert "(1 finding below --fail-on error; 1 expired waiver)" in r.out


def test_stale_waiver_is_reported(waived: Path) -> None:
    r = run("check", "--policy", str(waived), A, "--date", "2026-06-01")
    assert r.code == 0
    assert "STALE   waivers[0] for gpu-driver matches no violation; remove it" in r.out and "1 stale waiver" in r.out


def test_stdin_and_several_inputs(policy: Path) -> None:
    r = run("check", "--policy", str(policy), A, "-", stdin=Path(DRIFT).read_bytes())
    assert r.code == 1 and "2 nodes" in r.out  # node-a and node-a-drift are both gpu-node-01: the second is #2
    assert "gpu-node-01#2: GPU/smi/driver: 575.51.03" in r.out


def test_policy_from_stdin(policy: Path) -> None:
    r = run("check", "--policy", "-", A, stdin=policy.read_bytes())
    assert r.code == 0 and r.out.startswith("policy: - (h100-training)\n")
    r = run("check", "--policy", "-", "-", stdin=policy.read_bytes())
    assert r.code == 2 and "would both read standard input" in one_error_line(r)


# ============================================================================ errors: exit 2, one line


@pytest.mark.parametrize(
    "text, expected",
    [
        ("rules: [\n", "error: policy.yaml: not valid YAML: "),
        (
            POLICY.replace("version:", "newer-than:"),
            "error: policy.yaml: rules[0].expect: unknown operator 'newer-than' (known: equals, one-of, version, ",
        ),
        (
            POLICY.replace('">= 570.86, < 571"', "'>= 570..1'"),
            "error: policy.yaml: rules[0].expect.version: '>= 570..1' is not a version range (",
        ),
        (
            POLICY.replace("key: driver", "key: drivr"),
            "error: policy.yaml: rules[0] (gpu-driver): GPU/smi/drivr matches no key in any of the 1 selected snapshot(s)",  # noqa: E501
        ),
        (
            POLICY + WAIVER.format(expires="2026-12-31").replace("  reason: canary for the 575 branch\n", ""),
            "error: policy.yaml: waivers[0]: reason is required",
        ),
        (
            POLICY + WAIVER.format(expires="2026-12-31").replace("  expires: 2026-12-31\n", ""),
            "error: policy.yaml: waivers[0]: expires is required (YYYY-MM-DD)",
        ),
    ],
)
def test_bad_policy_is_one_error_line_and_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    r = subprocess_run(tmp_path, "check", "--policy", "policy.yaml", A)
    assert r.code == 2 and r.out == ""
    assert one_error_line(r).startswith(expected), r.err


def subprocess_run(cwd: Path, *args: str) -> Run:
    p = subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    return Run(p.returncode, p.stdout, p.stderr)


def test_unreadable_inputs_exit_2(tmp_path: Path, policy: Path) -> None:
    r = run("check", "--policy", str(tmp_path / "nope.yaml"), A)
    assert r.code == 2 and one_error_line(r) == f"error: {tmp_path / 'nope.yaml'}: no such file"
    r = run("check", "--policy", str(policy), str(tmp_path / "nope.yaml"))
    assert r.code == 2 and one_error_line(r) == f"error: {tmp_path / 'nope.yaml'}: no such file"
    r = run("check", "--policy", str(policy), A, "--date", "tomorrow")
    assert r.code == 2 and "'tomorrow' is not a date (YYYY-MM-DD)" in r.err
    r = run("check", A)
    assert r.code == 2 and "Missing option '--policy'" in r.err


# ============================================================================ formats and --output-file


def test_json(policy: Path) -> None:
    r = run("check", "--policy", str(policy), FLEET, "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 1 and doc["compliant"] is False and doc["summary"]["checks"] == 60
    assert doc["policy"] == {"source": str(policy), "name": "h100-training"}


def test_junit_to_output_file_and_text_to_stdout(tmp_path: Path, waived: Path) -> None:
    out = tmp_path / "report.xml"
    r = run("check", "--policy", str(waived), FLEET, "-o", "junit", "--output-file", str(out), "--date", "2026-06-01")
    assert r.code == 0 and r.out.startswith("policy: ")
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "60" and root.get("skipped") == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.xml", "waived.yaml"]  # no temporary file left


@pytest.mark.parametrize("fmt, limit", [("markdown", 65536), ("markdown-summary", 1048576)])
def test_markdown(policy: Path, fmt: str, limit: int) -> None:
    r = run("check", "--policy", str(policy), FLEET, "-o", fmt)
    assert r.code == 1 and r.out.startswith("### ❌ kubectl aicr check: not compliant") and len(r.out.encode()) < limit
    assert "| error | `gpu-driver` | `gpu-node-07` | `GPU/smi/driver` |" in r.out


def test_output_file_in_a_missing_directory_fails_before_checking(tmp_path: Path, policy: Path) -> None:
    r = run("check", "--policy", str(policy), A, "--output-file", str(tmp_path / "no" / "r.xml"))
    assert r.code == 2 and r.out == ""


# ============================================================================ policy init / schema


def test_policy_init_then_check(tmp_path: Path) -> None:
    out = tmp_path / "baseline.yaml"
    r = run("policy", "init", A, "-o", str(out))
    assert r.code == 0 and r.err == f"policy with 13 rules from 1 node(s) written to {out}\n"
    assert run("check", "--policy", str(out), A).code == 0
    d = run("check", "--policy", str(out), DRIFT)
    assert d.code == 1 and "FAIL    gpu-smi [error] gpu-node-01: GPU/smi/driver: 575.51.03, expected 570.86.15" in d.out


def test_policy_init_of_a_fleet_to_stdout() -> None:
    r = run("policy", "init", FLEET, "--name", "fleet")
    assert r.code == 0 and r.out.startswith("# Starting policy written by 'kubectl aicr policy init ")
    doc = yaml.safe_load(r.out)
    assert doc["metadata"]["name"] == "fleet" and any("same-on-every-node" in x["expect"] for x in doc["rules"])


def test_policy_init_refuses_a_configmap_destination() -> None:
    r = run("policy", "init", A, "-o", "cm://ns/name")
    assert r.code == 2 and "a policy is written to a file or '-'" in one_error_line(r)


def test_policy_schema_is_the_shipped_json() -> None:
    r = run("policy", "schema")
    assert r.code == 0 and json.loads(r.out)["properties"]["kind"] == {"const": "Policy"}


def test_top_level_help_lists_check_and_policy() -> None:
    r = run("--help")
    assert "  check " in r.out and "  policy " in r.out


# ============================================================================ diff reports


def test_diff_junit_and_markdown_summary() -> None:
    r = run("diff", A, DRIFT, "-o", "junit")
    assert r.code == 1 and ET.fromstring(r.out).tag == "testsuites"
    r = run("diff", "--across-nodes", FLEET, "-o", "junit")
    root = ET.fromstring(r.out)
    assert r.code == 1 and root.get("tests") == "20" and root.get("failures") == "2"
    r = run("diff", A, DRIFT, "-o", "markdown-summary")
    assert r.code == 1 and r.out.startswith("### kubectl aicr diff: drift")


def test_diff_junit_across_tools_is_one_xml_document() -> None:
    # Facts only one tool collects are listed after a text or markdown report; nothing may follow the XML.
    ours, theirs = (str(SNAPSHOTS / "cross-tool" / n) for n in ("kubectl-aicr.yaml", "original-v0.11.1.yaml"))
    r = run("diff", ours, theirs, "-o", "junit")
    assert r.code in (0, 1) and ET.fromstring(r.out).tag == "testsuites"
    md = run("diff", ours, theirs, "-o", "markdown-summary")
    assert "#### Collected by one side only" in md.out


# ============================================================================ startup: nothing heavy imported

_PROBE = """\
import sys
from kubectl_aicr.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'urllib3', 'google', 'oauthlib', 'jsonschema'})
schema = sys.modules.get('kubectl_aicr.schema')
checked = schema is not None and schema._quick.cache_info().currsize > 0  # a schema was compiled and used
sys.stderr.write('\\nRC=%s IMPORTED=%s SCHEMA-CHECKED=%s\\n' % (code, ','.join(heavy), checked))
"""


@pytest.mark.parametrize(
    "args, rc, checked",
    [
        (["check", "--help"], 0, False),
        (["policy", "--help"], 0, False),
        (["policy", "schema"], 0, False),
        # Valid snapshots are schema-checked (by kubectl_aicr.quickschema: jsonschema loads only to explain an invalid
        # one).
        (["check", "--policy", "POLICY", FLEET], 1, True),
        (["policy", "init", A], 0, True),
    ],
)
def test_check_does_not_import_the_kubernetes_client(tmp_path: Path, args: list[str], rc: int, checked: bool) -> None:
    (tmp_path / "POLICY").write_text(POLICY)
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin"},
    )
    assert r.stderr.strip().splitlines()[-1] == f"RC={rc} IMPORTED= SCHEMA-CHECKED={checked}", r.stderr
