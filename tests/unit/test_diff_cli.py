"""``kubectl aicr diff`` through the real entry point: exit codes, every output format, stdin, ConfigMaps, bad input,
--across-nodes, and that the kubernetes client is never imported for files."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
import yaml
from click.testing import CliRunner

from kubectl_aicr.cli import main

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
A = str(SNAPSHOTS / "node-a.yaml")
RERUN = str(SNAPSHOTS / "node-a-rerun.yaml")
DRIFT = str(SNAPSHOTS / "node-a-drift.yaml")
FLEET = str(SNAPSHOTS / "fleet-20.yaml")


@dataclass
class Run:
    code: int
    out: str
    err: str


def run(*args: str, stdin: Optional[bytes] = None, env: Optional[dict[str, str]] = None) -> Run:
    """``main()`` exactly as the console script runs it (errors -> exit codes), with captured streams."""
    runner = CliRunner()
    with runner.isolation(input=stdin, env=env) as (out, err, _):
        try:
            main(["diff", *args])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def one_error_line(r: Run) -> str:
    lines = [ln for ln in r.err.splitlines() if not ln.startswith("hint: ")]
    assert len(lines) == 1, r.err
    assert lines[0].startswith("error: "), r.err
    return lines[0]


# ============================================================================ exit codes and formats


def test_identical_inputs_exit_0() -> None:
    r = run(A, A)
    assert r.code == 0 and r.out.endswith("\nno drift\n") and r.err == ""


def test_volatile_only_differences_exit_0_and_show_with_include_volatile() -> None:
    r = run(A, RERUN)
    assert r.code == 0 and "no drift (24 differences in volatile or ignored keys not shown" in r.out
    r = run(A, RERUN, "--include-volatile")
    assert r.code == 1 and "~ MainPID: 1234 -> 2291" in r.out and "~ timestamp: " in r.out


def test_drift_exits_1_unless_exit_zero() -> None:
    r = run(A, DRIFT)
    assert r.code == 1 and "drift: 6 changed, 3 added, 2 removed" in r.out
    assert run(A, DRIFT, "--exit-zero").code == 0


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_formats(fmt: str) -> None:
    r = run(A, DRIFT, "-o", fmt)
    doc = json.loads(r.out) if fmt == "json" else yaml.safe_load(r.out)
    assert r.code == 1 and doc["drift"] is True and doc["summary"]["changed"] == 6
    assert doc["base"]["source"] == A and doc["current"]["source"] == DRIFT
    r = run(A, A, "--output", fmt)
    doc = json.loads(r.out) if fmt == "json" else yaml.safe_load(r.out)
    assert r.code == 0 and doc["drift"] is False and doc["changes"] == []


def test_markdown_format() -> None:
    r = run(A, DRIFT, "-o", "markdown")
    assert r.code == 1 and r.out.startswith("### kubectl aicr diff: drift") and "| Change | Subtype |" in r.out


def test_colour_flag() -> None:
    assert "\x1b[" not in run(A, DRIFT).out  # not a terminal
    assert "\x1b[" in run(A, DRIFT, "--color", "always").out
    assert "\x1b[" not in run(A, DRIFT, "--color", "always", "-o", "json").out
    assert "\x1b[" not in run(A, DRIFT, "--color", "never").out


def test_ignore_and_only_flags() -> None:
    doc = json.loads(run(A, DRIFT, "-o", "json", "--only", "OS", "--only", "SystemD/kubelet.service").out)
    assert [(c["type"], c["subtype"], c["key"]) for c in doc["changes"]] == [
        ("OS", "sysctl", "/proc/sys/kernel/nmi_watchdog"),
        ("OS", "sysctl", "/proc/sys/vm/swappiness"),
        ("OS", "kmod", "nvidia_peermem"),
        ("SystemD", "kubelet.service", "NRestarts"),
    ]
    assert doc["options"]["only"] == ["OS", "SystemD/kubelet.service"]
    r = run(A, DRIFT, "-o", "json", "--only", "OS", "--ignore", "OS/sysctl/*", "--ignore", "*/kmod/nvidia_*")
    # hidden: sysctl's 2 real and 5 volatile differences, kmod's nvidia_peermem
    assert r.code == 0 and json.loads(r.out)["summary"]["ignored"] == 8


def test_stdin_as_either_input() -> None:
    data = Path(DRIFT).read_bytes()
    r = run(A, "-", stdin=data)
    assert r.code == 1 and "current: - (node gpu-node-01" in r.out
    r = run("-", A, "-o", "json", stdin=Path(A).read_bytes())
    assert r.code == 0 and json.loads(r.out)["base"]["source"] == "-"


def test_original_tool_snapshots_are_accepted() -> None:
    r = run(str(SNAPSHOTS / "original-h100.yaml"), str(SNAPSHOTS / "original-h100-readback.json"))
    assert r.code == 0
    r = run(str(SNAPSHOTS / "original-mock-snapshot.yaml"), str(SNAPSHOTS / "original-h100.yaml"))
    assert r.code == 1 and "  - helm (subtype removed, 38 keys)\n" in r.out


# ============================================================================ bad input: exit 2, one clear line

BAD_CASES = {
    "missing": (None, "no such file"),
    "directory": ("DIR", "is a directory, not a snapshot file"),
    "empty": (b"", "empty document"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
    "not yaml": (b"measurements: [\n  - {type: GPU\n", "not valid YAML"),
    "not json": (b'{"measurements": [}', "not valid JSON"),
    "not a snapshot": (b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "'Pod' is not a snapshot"),
    "no measurements": (b"foo: bar\n", "not a snapshot: it has neither 'kind' nor 'measurements'"),
    "schema invalid": (
        b"measurements:\n- type: GPU\n  subtypes:\n  - subtype: smi\n    data: {driver: [1, 2]}\n",
        "not a valid snapshot: $.measurements[0].subtypes[0].data.driver",
    ),
    "two documents": (b"measurements: []\n---\nmeasurements: []\n", "expected one YAML document, found 2"),
    "yaml alias": (b"x: &a {data: {}}\nmeasurements:\n- type: GPU\n  subtypes: [*a]\n", "aliases"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
@pytest.mark.parametrize("side", ["base", "current"])
def test_bad_input_exits_2_with_one_line(case: str, side: str, tmp_path: Path) -> None:
    content, expected = BAD_CASES[case]
    path = tmp_path / "input.yaml"
    if content == "DIR":
        path = tmp_path
    elif content is not None:
        path.write_bytes(content)
    args = (str(path), A) if side == "base" else (A, str(path))
    r = run(*args)
    assert r.code == 2 and r.out == ""
    line = one_error_line(r)
    assert expected in line and str(path) in line


def test_snapshot_list_is_not_a_snapshot_for_two_way_diff() -> None:
    r = run(A, FLEET)
    assert r.code == 2 and "is a SnapshotList of 20 node(s), not a single snapshot" in one_error_line(r)
    assert f"hint: compare its nodes with 'kubectl aicr diff --across-nodes {FLEET}'" in r.err


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            (A,),
            "expected BASE and CURRENT, got 1 argument(s); to compare the nodes of a SnapshotList use --across-nodes",
        ),
        ((A, A, A), "expected BASE and CURRENT, got 3 argument(s)"),
        (("-", "-"), "only one input may be '-'"),
        ((A, "http://example.com/x.yaml"), "unsupported location"),
        ((A, "cm://Bad_NS/x"), "is not a valid namespace name"),
        ((A, A, "--only", ""), "--only '': expected TYPE or TYPE/SUBTYPE"),
        ((A, A, "--ignore", " "), "--ignore: an empty pattern"),
        ((A, A, "-o", "html"), "Invalid value for '-o' / '--output'"),
        (("--across-nodes",), "--across-nodes needs a SnapshotList file"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], expected: str) -> None:
    r = run(*args)
    assert r.code == 2 and expected in r.err and r.out == ""


# ========================================================================== ConfigMaps (a fake API behind kube.connect)


class _FakeCore:
    def __init__(self, store: dict[tuple[str, str], dict[str, str]]) -> None:
        self.store = store
        self.reads: list[tuple[str, str]] = []

    def read_namespaced_config_map(self, name: str, namespace: str, **_: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        self.reads.append((namespace, name))
        if (namespace, name) not in self.store:
            raise ApiException(status=404, reason="Not Found")
        return type("CM", (), {"data": self.store[(namespace, name)], "binary_data": None})()


@pytest.fixture
def fake_cluster(monkeypatch: pytest.MonkeyPatch) -> _FakeCore:
    core = _FakeCore({("gpu-ops", "baseline"): {"snapshot.yaml": Path(A).read_text(), "format": "yaml"}})
    from kubectl_aicr.kube import Kube

    # A real Kube (its call wrapper, error mapping and timeouts) in front of the fake CoreV1Api.
    kube = type("FakeKube", (Kube,), {"core": core})(None, "default", None, "https://fake", 5.0)
    connects: list[Any] = []

    def connect(opts: Any) -> Any:
        connects.append(opts)
        return kube

    monkeypatch.setattr("kubectl_aicr.kube.connect", connect)
    core.connects = connects  # type: ignore[attr-defined]
    return core


def test_configmap_input(fake_cluster: _FakeCore) -> None:
    r = run("cm://gpu-ops/baseline", DRIFT, "--context", "prod", "--request-timeout", "5")
    assert r.code == 1 and "base:    cm://gpu-ops/baseline (node gpu-node-01" in r.out
    assert fake_cluster.reads == [("gpu-ops", "baseline")]
    opts = fake_cluster.connects[0]  # type: ignore[attr-defined]
    assert (opts.context, opts.request_timeout) == ("prod", 5.0)


def test_missing_configmap_exits_2(fake_cluster: _FakeCore) -> None:
    r = run(A, "cm://gpu-ops/nope")
    assert r.code == 2
    assert one_error_line(r) == "error: cm://gpu-ops/nope: ConfigMap 'nope' not found in namespace 'gpu-ops'"


def test_files_never_connect(fake_cluster: _FakeCore) -> None:
    assert run(A, DRIFT).code == 1
    assert fake_cluster.connects == []  # type: ignore[attr-defined]


# ============================================================================ --across-nodes


def test_across_nodes_reports_the_two_deviating_nodes() -> None:
    r = run("--across-nodes", FLEET)
    assert r.code == 1 and r.out.endswith("drift: 2 of 20 nodes deviate from the baseline\n")
    doc = json.loads(run("--across-nodes", FLEET, "-o", "json").out)
    assert [(d["node"], [(c["type"], c["subtype"], c["key"]) for c in d["changes"]]) for d in doc["deviations"]] == [
        ("gpu-node-07", [("GPU", "smi", "driver")]),
        ("gpu-node-13", [("K8s", "labels", "pool")]),
    ]
    assert run("--across-nodes", FLEET, "--ignore", "GPU/smi/driver", "--ignore", "K8s/labels/pool").code == 0
    assert run("--across-nodes", FLEET, "--exit-zero").code == 0


def test_across_nodes_with_snapshot_files_and_failures(tmp_path: Path) -> None:
    assert run("--across-nodes", A, RERUN).code == 0  # same node, volatile differences only
    r = run("--across-nodes", A, DRIFT, "-o", "json")
    assert r.code == 1 and json.loads(r.out)["summary"]["configurations"] == 2
    fleet = yaml.safe_load(Path(FLEET).read_text())
    fleet["items"] = [i for i in fleet["items"] if i["metadata"]["source-node"] not in ("gpu-node-07", "gpu-node-13")]
    fleet["failures"] = [{"node": "gpu-node-21", "reason": "pod unschedulable: Insufficient nvidia.com/gpu"}]
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    r = run("--across-nodes", str(path))
    assert r.code == 1 and "gpu-node-21: pod unschedulable" in r.out
    fleet["failures"] = []
    path.write_text(yaml.safe_dump(fleet))
    assert run("--across-nodes", str(path)).code == 0
    fleet["items"] = []
    path.write_text(yaml.safe_dump(fleet))
    r = run("--across-nodes", str(path))
    assert r.code == 2 and "no node snapshots to compare" in one_error_line(r)


# ============================================================================ --list-ignored, the exit code returned


def test_list_ignored_prints_every_rule_with_its_kind_and_reason() -> None:
    from collector import keys

    r = run("--list-ignored")
    assert r.code == 0 and r.err == ""
    lines = r.out.splitlines()
    assert lines[0].split() == ["KIND", "PATTERN", "(TYPE/SUBTYPE/KEY)", "REASON"]
    for rule in keys.RULES:
        first = next(ln for ln in lines if ln.split()[1:2] == [rule.patterns[0]] and ln.split()[0] == rule.kind)
        assert first.endswith(rule.reason)
        assert all(any(ln.split() == [p] for ln in lines) for p in rule.patterns[1:]), rule
    assert "volatile      OS/sysctl//proc/sys/fs/file-nr" in r.out
    assert "Kinds:" in lines and f"  identity      {keys.KINDS['identity']}" in lines


def test_list_ignored_machine_and_markdown_forms() -> None:
    from collector import keys

    r = run("--list-ignored", "-o", "json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["kinds"] == keys.KINDS
    assert doc["rules"][0] == {
        "kind": "volatile",
        "type": "OS",
        "subtype": "sysctl",
        "keys": list(keys.RULES[0].keys),
        "patterns": list(keys.RULES[0].patterns),
        "reason": keys.RULES[0].reason,
    }
    assert len(doc["rules"]) == len(keys.RULES)
    assert yaml.safe_load(run("--list-ignored", "-o", "yaml").out) == doc
    md = run("--list-ignored", "-o", "markdown").out
    assert "| identity | `K8s/node/source-node`<br>`K8s/node/provider-id` | node name, cloud instance id |" in md


@pytest.mark.parametrize(
    "args, expected",
    [
        ((A, "--list-ignored"), "--list-ignored takes no inputs"),
        (("--list-ignored", "-o", "junit"), "not junit"),
    ],
)
def test_list_ignored_usage_errors(args: tuple[str, ...], expected: str) -> None:
    r = run(*args)
    assert r.code == 2 and expected in r.err and r.out == ""


def test_help_points_at_list_ignored_not_at_a_source_file() -> None:
    from kubectl_aicr.commands.diff import EPILOG

    assert "--list-ignored" in EPILOG and ".py" not in EPILOG


def test_the_command_returns_drift_as_errors_drift_for_main_to_apply() -> None:
    from kubectl_aicr import errors
    from kubectl_aicr.commands.diff import command

    def result(*args: str) -> object:
        with CliRunner().isolation():
            return command.main(list(args), standalone_mode=False)

    assert errors.DRIFT != errors.OK and result(A, DRIFT) == errors.DRIFT
    assert result(A, A) == errors.OK and result(A, DRIFT, "--exit-zero") == errors.OK
    assert result("--across-nodes", FLEET) == errors.DRIFT and result("--list-ignored") == errors.OK


# ============================================================================ startup: no kubernetes client

_PROBE = """\
import sys
from kubectl_aicr.cli import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'kubernetes', 'urllib3', 'google', 'oauthlib'})
sys.stderr.write('\\nRC=%s IMPORTED=%s\\n' % (code, ','.join(heavy)))
"""


@pytest.mark.parametrize(
    "args, rc",
    [
        (["diff", "--help"], 0),
        (["diff", A, DRIFT, "-o", "json"], 1),
        (["diff", "--across-nodes", FLEET], 1),
        (["diff", A, "/nonexistent.yaml"], 2),
    ],
)
def test_diff_of_files_does_not_import_the_kubernetes_client(args: list[str], rc: int) -> None:
    r = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60)
    assert r.stderr.strip().splitlines()[-1] == f"RC={rc} IMPORTED="


def test_python_dash_m_entry_point() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "kubectl_aicr", "diff", A, DRIFT, "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and json.loads(r.stdout)["summary"]["added"] == 3
