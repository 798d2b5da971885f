"""The policy model, loader and engine on the real fixture snapshots: version order, every operator, node
selection by label, waivers (accepted, expired, stale), ``policy init`` and the shipped JSON Schema; every bad
policy is one clear line naming its place."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubectl_aicr import snapshot_io
from kubectl_aicr.policy import schema_text
from kubectl_aicr.policy.engine import FAIL, PASS, WAIVED, CheckResult, check
from kubectl_aicr.policy.init import build_policy, policy_text
from kubectl_aicr.policy.model import PolicyInvalid, parse_policy_text, policy_from_doc
from kubectl_aicr.policy.versions import parse_range, parse_version

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"
TODAY = dt.date(2026, 6, 1)


def load(name: str) -> dict[str, Any]:
    return snapshot_io.load(snapshot_io.FilePath(str(SNAPSHOTS / name)))


NODE_A = load("node-a.yaml")
DRIFT = load("node-a-drift.yaml")
FLEET = load("fleet-20.yaml")["items"]


def policy(*rules: dict[str, Any], waivers: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"apiVersion": "aicr.nvidia.com/v1alpha1", "kind": "Policy", "rules": list(rules), **top}
    if waivers is not None:
        doc["waivers"] = waivers
    return doc


def rule(rid: str, type_: str, subtype: str, key: str | None, **expect: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"id": rid, "type": type_, "subtype": subtype, "expect": expect}
    if key is not None:
        r["key"] = key
    return r


def run(doc: dict[str, Any], snaps: list[dict[str, Any]], today: dt.date = TODAY) -> CheckResult:
    return check(policy_from_doc(doc, "policy.yaml"), snaps, today=today)


def bad(doc: Any, snaps: list[dict[str, Any]] | None = None) -> str:
    with pytest.raises(PolicyInvalid) as e:
        text = doc if isinstance(doc, bytes) else yaml.safe_dump(doc).encode()
        p = parse_policy_text(text, "policy.yaml")
        check(p, snaps if snaps is not None else [NODE_A], today=TODAY)
    assert e.value.exit_code == 2
    assert "\n" not in e.value.message
    return e.value.message


# ============================================================================ versions


@pytest.mark.parametrize(
    "a, b", [("570.124.06", "570.86.15"), ("10.0", "9.9.9"), ("v1.33.5-eks-3025e55", "1.33"), ("575.51.03", "575.51")]
)
def test_natural_version_order(a: str, b: str) -> None:
    va, vb = parse_version(a), parse_version(b)
    assert va is not None and vb is not None and va > vb
    assert a > b or a < b  # (as text some are in the other order: that is the point)


def test_string_order_would_be_wrong_but_range_is_right() -> None:
    assert "570.124.06" < "570.86.15"  # text order
    assert parse_range(">= 570.86").contains("570.124.06") is True
    assert parse_range(">= 570.86, < 571").contains("575.51.03") is False
    assert parse_range("570.86").contains("570.86.0") is True
    assert parse_range("!= 570.86.15").contains("570.86.15") is False
    assert parse_range(">= 1.30").contains("not a version") is None


@pytest.mark.parametrize("text", [">= 570..1", ">= ", "", ">= 570,", "~> 5", ">= 5.x", "=> 5"])
def test_bad_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_range(text)


# ============================================================================ bad policies: one line, with the place


def test_not_yaml() -> None:
    assert bad(b"rules: [\n  - id: x\n").startswith("policy.yaml: not valid YAML: ")


def test_unknown_operator() -> None:
    msg = bad(policy(rule("a", "GPU", "smi", "driver", greater_than=570)))
    assert msg.startswith("policy.yaml: rules[0].expect: unknown operator 'greater_than' (known: equals, one-of, ")


def test_bad_version_range_names_the_rule_path() -> None:
    rules = [rule(f"r{i}", "GPU", "smi", "driver", present=True) for i in range(3)]
    rules.append(rule("r3", "GPU", "smi", "driver", version=">= 570..1"))
    msg = bad(policy(*rules))
    assert msg.startswith("policy.yaml: rules[3].expect.version: '>= 570..1' is not a version range (")


def test_rule_matching_nothing_is_an_error_unless_optional() -> None:
    msg = bad(policy(rule("typo", "GPU", "smi", "drivr", equals="570.86.15")))
    assert msg == ("policy.yaml: rules[0] (typo): GPU/smi/drivr matches no key in any of the 1 selected snapshot(s)")
    r = run(policy({**rule("typo", "GPU", "smi", "drivr", equals="570.86.15"), "optional": True}), [NODE_A])
    assert r.compliant and r.cases[0].status == PASS


def test_rule_selecting_no_node_is_an_error() -> None:
    msg = bad(policy({**rule("a", "GPU", "smi", "driver", present=True), "nodes": {"labels": {"pool": "nope"}}}))
    assert msg == "policy.yaml: rules[0] (a): nodes: selects none of the 1 node(s) (pool=nope)"


@pytest.mark.parametrize(
    "drop, expected",
    [
        ("reason", "policy.yaml: waivers[0]: reason is required"),
        (
            "expires",
            "policy.yaml: waivers[0]: expires is required (YYYY-MM-DD): every accepted deviation is reviewed again",
        ),
        ("owner", "policy.yaml: waivers[0]: owner is required"),
    ],
)
def test_waiver_without_reason_owner_or_expiry(drop: str, expected: str) -> None:
    w = {"rule": "a", "reason": "canary", "owner": "me", "expires": "2026-12-31"}
    del w[drop]
    assert bad(policy(rule("a", "GPU", "smi", "driver", present=True), waivers=[w])) == expected


@pytest.mark.parametrize(
    "doc, expected",
    [
        (
            policy(
                rule("a", "GPU", "smi", "driver", present=True),
                waivers=[{"rule": "b", "reason": "x", "owner": "me", "expires": "2026-12-31"}],
            ),
            "policy.yaml: waivers[0].rule: no rule has the id 'b'",
        ),
        (
            policy(
                rule("a", "GPU", "smi", "driver", present=True),
                waivers=[{"rule": "a", "reason": "x", "owner": "me", "expires": "next year"}],
            ),
            "policy.yaml: waivers[0].expires: 'next year' is not a date (YYYY-MM-DD)",
        ),
        (
            policy(
                rule("a", "GPU", "smi", "driver", present=True),
                waivers=[{"rule": "a", "reason": "  ", "owner": "me", "expires": "2026-12-31"}],
            ),
            "policy.yaml: waivers[0].reason: must not be empty",
        ),
        (
            policy(
                rule("a", "GPU", "smi", "driver", present=True), rule("a", "GPU", "smi", "cuda-version", present=True)
            ),
            "policy.yaml: rules[1].id: 'a' is used by another rule",
        ),
        (
            policy({**rule("a", "GPU", "smi", "driver", present=True), "severty": "error"}),
            "policy.yaml: rules[0]: unknown field 'severty' (known: id, description, severity, type, subtype, key, except, "  # noqa: E501
            "nodes, optional, expect)",
        ),
        (
            policy({**rule("a", "GPU", "smi", "driver", present=True), "severity": "fatal"}),
            "policy.yaml: rules[0].severity: 'fatal' is not a severity (one of: error, warning, info)",
        ),
        (
            policy(rule("a", "GPU", "smi", "driver", regex="(")),
            "policy.yaml: rules[0].expect.regex: '(' is not a regular expression (missing ), unterminated subpattern at "  # noqa: E501
            "position 0)",
        ),
        (
            policy(rule("a", "GPU", "smi", "driver", range={"min": 5, "max": 1})),
            "policy.yaml: rules[0].expect.range: min 5 is greater than max 1",
        ),
        (
            policy(rule("a", "GPU", "smi", "driver", absent=True, equals=1)),
            "policy.yaml: rules[0].expect: absent cannot be combined with other operators",
        ),
        (
            policy(rule("a", "GPU", "smi", None, equals=1)),
            "policy.yaml: rules[0]: key is required (a glob: 'driver', 'gpu.*', '*')",
        ),
        (
            {"apiVersion": "aicr.nvidia.com/v1alpha1", "kind": "Snapshot", "rules": []},
            "policy.yaml: kind: expected 'Policy', got 'Snapshot'",
        ),
        (policy(), "policy.yaml: rules: expected a non-empty list of rules"),
    ],
)
def test_other_bad_policies(doc: dict[str, Any], expected: str) -> None:
    assert bad(doc) == expected


def test_duplicate_keys_and_multiple_documents_are_refused() -> None:
    assert "appears twice" in bad(b"kind: Policy\nkind: Policy\n")
    assert bad(b"kind: Policy\n---\nkind: Policy\n") == "policy.yaml: expected one YAML document, found 2"


def test_error_messages_cannot_steer_the_terminal() -> None:
    msg = bad(policy(rule("a", "GPU", "smi", "driver", version=">= 5\x1b[2J")))
    assert "\x1b" not in msg and "\\x1b" in msg


# ============================================================================ operators on real snapshots


def test_equals_compares_by_meaning() -> None:
    # node-a-drift writes gpu-count as the string '2' and kmod nvidia as 'true': the same readings.
    r = run(
        policy(
            rule("n", "GPU", "smi", "gpu-count", equals=2),
            rule("k", "OS", "kmod", "nvidia", equals=True),
            rule("d", "GPU", "smi", "driver", equals="570.86.15"),
        ),
        [DRIFT],
    )
    assert [(c.rule.id, c.status) for c in r.cases] == [("n", PASS), ("k", PASS), ("d", FAIL)]
    assert r.cases[2].violations[0].message == "575.51.03, expected 570.86.15"


def test_one_of_range_regex_present_absent() -> None:
    r = run(
        policy(
            rule("os", "OS", "release", "VERSION_ID", **{"one-of": ["22.04", "24.04"]}),
            rule("mem", "GPU", "gpu-*", "memory-total-mib", range={"min": 80000}),
            rule("power", "GPU", "gpu-*", "power-limit-enforced-w", range={"max": 600}),
            rule("kernel", "OS", "sysctl", "/proc/sys/kernel/osrelease", regex=r"6\.8\.0-\d+-aws"),
            rule("peermem", "OS", "kmod", "nvidia_peermem", present=True),
            rule("nouveau", "OS", "kmod", "nouveau", absent=True),
            rule("docker", "SystemD", "docker.service", "*", absent=True),
        ),
        [NODE_A],
    )
    status = {c.rule.id: c.status for c in r.cases}
    assert status == {
        "os": PASS,
        "mem": PASS,
        "power": FAIL,
        "kernel": PASS,
        "peermem": PASS,
        "nouveau": PASS,
        "docker": FAIL,
    }
    power = next(c for c in r.cases if c.rule.id == "power")
    assert [v.path for v in power.violations] == [
        "GPU/gpu-0/power-limit-enforced-w",
        "GPU/gpu-1/power-limit-enforced-w",
    ]
    assert power.violations[0].message == "700.0, expected value <= 600"
    docker = next(c for c in r.cases if c.rule.id == "docker")
    assert len(docker.violations) == 3  # ActiveState, LoadState, SubState


def test_missing_key_and_unavailable_subtype_are_violations() -> None:
    r = run(
        policy(
            rule("peermem", "OS", "kmod", "nvidia_peermem", present=True),
            rule("gpu1", "GPU", "gpu-1", "ecc-mode-current", equals="Enabled"),
        ),
        [DRIFT],
    )
    msgs = [c.violations[0].message for c in r.cases]
    assert msgs == [
        "missing: no key nvidia_peermem here",
        "missing: GPU/gpu-1 is error (GPU 0000:28:00.0 fell off the bus (Xid 79))",
    ]


def test_version_range_on_the_fleet() -> None:
    r = run(policy(rule("driver", "GPU", "smi", "driver", version=">= 570.86, < 571")), FLEET)
    assert [c.node for c in r.cases if c.status == FAIL] == ["gpu-node-07"]
    assert r.cases[6].violations[0].message == "575.51.03, expected version >= 570.86, < 571"
    assert not r.compliant and r.summary()["checks"] == 20


def test_same_on_every_node_names_the_odd_node_and_skips_identity_keys() -> None:
    # GPU serials, uuids and hostnames differ on every node: globs never pick identity or volatile keys.
    r = run(
        policy(
            rule("gpu", "GPU", "*", "*", **{"same-on-every-node": True}),
            rule("labels", "K8s", "labels", "*", **{"same-on-every-node": True}),
        ),
        FLEET,
    )
    failing = {(c.rule.id, c.node): [v.message for v in c.violations] for c in r.cases if c.status == FAIL}
    assert failing == {
        ("gpu", "gpu-node-07"): ["575.51.03 here; 570.86.15 on 19 of 20 nodes"],
        ("labels", "gpu-node-13"): ["inference here; training on 19 of 20 nodes"],
    }


def test_node_selection_by_label_and_name() -> None:
    r = run(
        policy(
            {**rule("pool", "K8s", "labels", "pool", equals="inference"), "nodes": {"labels": {"pool": "inference"}}},
            {**rule("driver", "GPU", "smi", "driver", present=True), "nodes": {"names": ["gpu-node-0*"]}},
        ),
        FLEET,
    )
    assert [(c.rule.id, c.node) for c in r.cases][:2] == [("pool", "gpu-node-13"), ("driver", "gpu-node-01")]
    assert len(r.cases) == 1 + 9 and r.compliant


def test_policy_wide_node_selector() -> None:
    r = run(
        policy(
            rule("driver", "GPU", "smi", "driver", equals="570.86.15"),
            nodes={"labels": {"node.kubernetes.io/instance-type": "p5.*", "pool": "training"}},
        ),
        FLEET,
    )
    assert len(r.cases) == 19 and [c.node for c in r.cases if c.status == FAIL] == ["gpu-node-07"]


def test_severity_and_fail_on() -> None:
    doc = policy({**rule("pool", "K8s", "labels", "pool", equals="training"), "severity": "warning"})
    p = policy_from_doc(doc, "policy.yaml")
    assert check(p, FLEET, today=TODAY).compliant  # a warning does not fail by default
    assert not check(p, FLEET, today=TODAY, fail_on="warning").compliant


# ============================================================================ waivers

DRIVER = rule("driver", "GPU", "smi", "driver", version=">= 570.86, < 571")


def test_matched_waiver_is_an_accepted_deviation() -> None:
    w = {
        "rule": "driver",
        "nodes": ["gpu-node-07"],
        "keys": ["GPU/smi/driver"],
        "reason": "575 canary",
        "owner": "gpu-platform",
        "expires": dt.date(2026, 12, 31),
    }
    r = run(policy(DRIVER, waivers=[w]), FLEET)
    assert r.compliant
    case = r.cases[6]
    assert case.status == WAIVED and case.violations[0].waiver is not None
    assert case.violations[0].waiver.reason == "575 canary"
    assert r.summary()["accepted_deviations"] == 1 and r.summary()["stale_waivers"] == 0


def test_expired_waiver_fails_and_says_so() -> None:
    w = {"rule": "driver", "nodes": ["gpu-node-07"], "reason": "575 canary", "owner": "me", "expires": "2026-05-31"}
    r = run(policy(DRIVER, waivers=[w]), FLEET)
    assert not r.compliant
    v = r.cases[6].violations[0]
    assert not v.waived and v.expired is not None and v.expired.expires == dt.date(2026, 5, 31)
    assert r.summary()["expired_waivers"] == 1
    # on its last day it still holds
    assert run(policy(DRIVER, waivers=[w]), FLEET, today=dt.date(2026, 5, 31)).compliant


def test_waiver_matching_nothing_is_stale() -> None:
    ws = [
        {"rule": "driver", "nodes": ["gpu-node-03"], "reason": "old", "owner": "me", "expires": "2026-12-31"},
        {
            "rule": "driver",
            "nodes": ["gpu-node-07"],
            "keys": ["OS/*"],
            "reason": "wrong key",
            "owner": "me",
            "expires": "2026-12-31",
        },
    ]
    r = run(policy(DRIVER, waivers=ws), FLEET)
    assert [u.stale for u in r.waivers] == [True, True] and not r.compliant


# ============================================================================ policy init


def test_init_from_a_snapshot_freezes_values_and_leaves_out_volatile_identity_cluster_wide() -> None:
    doc, notes = build_policy([NODE_A])
    text = policy_text(doc, notes, "node-a.yaml")
    for left_out in (
        "ns_last_pid",
        "boot_id",
        "MainPID",
        "ActiveEnterTimestamp",
        "kubernetes.io/hostname",
        "uuid",
        "serial",
        "/proc/sys/kernel/hostname",
        "K8s/server",
        "pcie-link-gen-current",
    ):
        assert f"{left_out}:" not in text.split("\napiVersion")[1], left_out
    assert "driver: 570.86.15" in text and "/proc/sys/vm/swappiness: '60'" in text
    p = parse_policy_text(text.encode(), "init.yaml")
    assert check(p, [NODE_A], today=TODAY).compliant
    r = check(p, [load("node-a-rerun.yaml")], today=TODAY)  # a later run of the unchanged node
    assert r.compliant
    r = check(p, [DRIFT], today=TODAY)
    paths = {v.path for c in r.cases for v in c.failing}
    assert {
        "GPU/smi/driver",
        "OS/sysctl//proc/sys/vm/swappiness",
        "OS/kmod/nvidia_peermem",
        "SystemD/kubelet.service/NRestarts",
    } <= paths


def test_init_from_a_fleet_adds_sameness_and_leaves_out_what_differs() -> None:
    doc, notes = build_policy(FLEET)
    text = policy_text(doc, notes, "fleet-20.yaml")
    header = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert (
        "readings that differ between nodes (not frozen; excepted from sameness): GPU/smi/driver, "
        "K8s/labels/pool." in header
    )
    assert all(len(line) <= 118 for line in text.splitlines() if line.startswith("#"))
    p = parse_policy_text(text.encode(), "init.yaml")
    assert any(r.expect.same for r in p.rules)
    assert check(p, FLEET, today=TODAY).compliant
    # A node whose driver moves: the sameness rule for GPU/smi catches it even though the driver is not frozen.
    odd = copy.deepcopy(FLEET)
    odd[2]["measurements"][0]["subtypes"][0]["data"]["gpu.vbios-version"] = "96.00.A5.00.02"
    r = check(p, odd, today=TODAY)
    assert {(c.rule.id, c.node) for c in r.cases if c.status == FAIL} == {
        ("gpu-smi", "gpu-node-03"),
        ("gpu-smi-same", "gpu-node-03"),
    }


# ============================================================================ the JSON Schema agrees


def _as_json(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=str))


def test_shipped_schema_accepts_init_output_and_rejects_bad_policies() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text())
    Draft202012Validator.check_schema(schema)
    v = Draft202012Validator(schema)
    for snaps in ([NODE_A], FLEET):
        doc, _ = build_policy(snaps)
        assert list(v.iter_errors(_as_json(doc))) == []
    good = policy(
        DRIVER,
        rule("x", "OS", "kmod", "nouveau", absent=True),
        waivers=[{"rule": "driver", "reason": "r", "owner": "o", "expires": "2026-12-31"}],
    )
    assert list(v.iter_errors(_as_json(good))) == []
    for broken in (
        policy(rule("a", "GPU", "smi", "driver", greater_than=1)),
        policy(rule("a", "GPU", "smi", "driver", version=">= 570..1")),
        policy(DRIVER, waivers=[{"rule": "driver", "owner": "o", "expires": "2026-12-31"}]),
        policy(DRIVER, waivers=[{"rule": "driver", "reason": "r", "owner": "o"}]),
    ):
        assert list(v.iter_errors(_as_json(broken))) != []


def test_waiver_rule_glob_covers_a_key_across_rules() -> None:
    doc = policy(
        DRIVER,
        rule("frozen", "GPU", "smi", None, values={"driver": "570.86.15"}),
        waivers=[
            {
                "rule": "*",
                "nodes": ["gpu-node-07"],
                "keys": ["GPU/smi/driver"],
                "reason": "canary",
                "owner": "me",
                "expires": "2026-12-31",
            }
        ],
    )
    r = run(doc, FLEET)
    assert r.compliant and [c.status for c in r.cases if c.node == "gpu-node-07"] == [WAIVED, WAIVED]
    assert r.waivers[0].matched == 2
    bad_glob = policy(DRIVER, waivers=[{"rule": "gpu-*", "reason": "x", "owner": "me", "expires": "2026-12-31"}])
    assert bad(bad_glob) == "policy.yaml: waivers[0].rule: no rule has the id 'gpu-*'"


@pytest.mark.parametrize(
    "name", ["aicr-run-v1/gpu-h100-0.yaml", "aicr-run-v1alpha2/gpu-h100-0.yaml", "cross-tool/original-v0.11.1.yaml"]
)
def test_init_and_check_snapshots_of_every_api_version(name: str) -> None:
    # Read as the CLI reads them (formats.normalise): v1 topology keys such as '[0000:9a:00.0].numaNode' hold a
    # '[' and are still matched exactly.
    from kubectl_aicr import formats

    snap = formats.normalise(load(name))
    doc, notes = build_policy([snap])
    p = parse_policy_text(policy_text(doc, notes, name).encode(), "init.yaml")
    r = check(p, [snap], today=TODAY)
    assert r.compliant, [v for c in r.cases for v in c.violations][:3]


def test_init_excepts_differing_keys_that_look_like_globs() -> None:
    fleet = copy.deepcopy(FLEET[:3])
    for i, s in enumerate(fleet):
        s["measurements"][1]["subtypes"][1]["data"]["[0000:9a:00.0].numaNode"] = str(i)
    doc, notes = build_policy(fleet)
    same = next(r for r in doc["rules"] if r["id"] == "os-sysctl-same")
    assert same["except"] == ["[[]0000:9a:00.0].numaNode"]
    p = parse_policy_text(policy_text(doc, notes, "x").encode(), "init.yaml")
    assert check(p, fleet, today=TODAY).compliant
