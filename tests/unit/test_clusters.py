"""Fleets of clusters without a cluster: the ClusterSnapshotList (model, both JSON Schemas, the quick check, validate),
``diff --across-clusters`` and ``diff A B`` of two of them on documents built from real fixtures, and
``snapshot --context a --context b`` / ``--all-contexts`` against contexts whose servers are not there (every
cluster recorded as a failure, the kubeconfig's bytes unchanged). The runs against live clusters:
tests/e2e/test_multicontext_cluster.py."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from collector.model import cluster_snapshot_list, is_cluster_list
from kubectl_aicr import clusters, formats, kube, quickschema, schema
from kubectl_aicr.cli import main
from kubectl_aicr.diff.clusters import PER_CLUSTER, across_clusters, pairs
from kubectl_aicr.errors import AGENT_FAILED, AicrError, InvalidInput, NotFound, Unavailable

SNAPSHOTS = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots"


def load(name: str) -> Any:
    return yaml.safe_load((SNAPSHOTS / name).read_text())


def fleet_of_clusters(failures: bool = True) -> dict[str, Any]:
    items = [
        {"context": "prod", "snapshot": load("node-a.yaml")},
        {"context": "staging", "snapshot": load("node-a-drift.yaml")},
        {"context": "fleet", "snapshot": load("fleet-20.yaml")},
    ]
    fails = [{"context": "lab", "reason": "the cluster could not be reached"}] if failures else []
    return dict(cluster_snapshot_list(items, {"version": "test"}, failures=fails))


def run(*args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        return code, out.getvalue().decode(), err.getvalue().decode()


# ---------------------------------------------------------------------------------------------- the document


def test_a_cluster_snapshot_list_of_fixtures_is_valid_and_keeps_the_order_given() -> None:
    doc = fleet_of_clusters()
    assert is_cluster_list(doc)
    assert [i["context"] for i in doc["items"]] == ["prod", "staging", "fleet"]
    assert schema.problems(doc) == []
    assert "failures" not in cluster_snapshot_list([], {})


def test_the_newer_version_holds_clusters_too() -> None:
    doc = fleet_of_clusters()
    for item in doc["items"]:
        item["snapshot"] = formats.convert(item["snapshot"], formats.V1)
    doc["apiVersion"] = formats.V1
    assert schema.problems(doc) == []
    doc["items"][0]["snapshot"]["apiVersion"] = formats.V1ALPHA1  # one version per document
    assert schema.problems(doc)


@pytest.mark.parametrize(
    "spoil, expected",
    [
        (lambda d: d["items"].append({"context": "prod", "snapshot": load("node-a.yaml")}), "duplicate context"),
        (lambda d: d["failures"].append({"context": "staging", "reason": "x"}), "duplicate context 'staging'"),
        (lambda d: d["items"][0].update(extra=1), "$.items[0]: Additional properties"),
        (lambda d: d["items"][1].pop("context"), "$.items[1]: 'context' is a required property"),
        (lambda d: d["items"][0].update(context=""), "$.items[0].context"),
        (lambda d: d["failures"][0].pop("reason"), "$.failures[0]: 'reason' is a required property"),
        (lambda d: d["items"][2]["snapshot"]["items"][0].pop("measurements"), "$.items[2].snapshot.items[0]"),
        (lambda d: d["items"][0]["snapshot"]["measurements"][0]["subtypes"][0]["data"].update(x=[1]), "data.x"),
        (lambda d: d["items"][0]["snapshot"]["measurements"].append({"type": "GPU"}), "duplicate measurement"),
    ],
)
def test_a_broken_cluster_snapshot_list_is_refused_with_its_path(spoil: Any, expected: str) -> None:
    doc = fleet_of_clusters()
    spoil(doc)
    found = schema.problems(doc)
    assert any(expected in p for p in found), found
    with pytest.raises(InvalidInput):
        schema.validate(doc, source="doc")


def test_the_quick_check_agrees_with_jsonschema_on_cluster_lists() -> None:
    from jsonschema import Draft202012Validator

    for api in (formats.V1ALPHA1, formats.V1):
        quick = quickschema.compile(schema.schema(api))
        full = Draft202012Validator(schema.schema(api), format_checker=quickschema.format_checker())
        good = fleet_of_clusters()
        if api != formats.V1ALPHA1:
            good["apiVersion"] = api
            for item in good["items"]:
                item["snapshot"] = formats.convert(item["snapshot"], api)
        bad_item = copy.deepcopy(good)
        bad_item["items"][0]["snapshot"] = {"kind": "ClusterSnapshotList", "items": []}  # no nesting
        bad_failure = copy.deepcopy(good)
        bad_failure["failures"][0]["node"] = "n"
        for doc, valid in ((good, True), (bad_item, False), (bad_failure, False)):
            assert quick(doc) is valid
            assert (not list(full.iter_errors(doc))) is valid


def test_validate_names_the_clusters(tmp_path: Path) -> None:
    path = tmp_path / "clusters.yaml"
    path.write_text(yaml.safe_dump(fleet_of_clusters()))
    code, out, _ = run("validate", str(path))
    assert code == 0
    assert "valid ClusterSnapshotList (3 cluster snapshots, 1 failed)" in out


# ---------------------------------------------------------------------------------------------- diff


def test_across_clusters_compares_every_node_with_the_first_cluster() -> None:
    result = across_clusters([("c.yaml", fleet_of_clusters())])
    assert result.mode == "--across-clusters" and result.chosen == "context prod"
    assert result.baseline is not None and result.baseline.reference == "prod/gpu-node-01"
    deviating = {d.node for d in result.deviations}
    assert "staging/gpu-node-01" in deviating
    assert "fleet/gpu-node-07" in deviating  # the fixture's odd driver
    assert "fleet/gpu-node-01" in result.baseline.nodes
    assert [(f.node, f.reason) for f in result.failures] == [("lab", "the cluster could not be reached")]
    assert result.drift


def test_across_clusters_with_a_baseline_context() -> None:
    result = across_clusters([("c.yaml", fleet_of_clusters())], baseline="staging")
    assert result.baseline is not None and result.baseline.reference == "staging/gpu-node-01"
    assert "prod/gpu-node-01" in {d.node for d in result.deviations}
    with pytest.raises(InvalidInput, match="--baseline 'nope'"):
        across_clusters([("c.yaml", fleet_of_clusters())], baseline="nope")
    with pytest.raises(InvalidInput, match="lab"):
        across_clusters([("c.yaml", fleet_of_clusters())], baseline="lab")  # a failed cluster has no snapshot


def test_across_clusters_compares_the_server_version_but_not_the_cluster_size() -> None:
    a = load("node-a.yaml")
    b = copy.deepcopy(a)
    for m in b["measurements"]:
        for s in m["subtypes"] if m["type"] == "K8s" else []:
            if s["subtype"] == "cluster":
                s["data"]["node-count"] = 600
    same = cluster_snapshot_list([{"context": "x", "snapshot": a}, {"context": "y", "snapshot": b}], {})
    assert not across_clusters([("s", same)]).drift  # a bigger cluster is not drift
    assert any(p.startswith("K8s/cluster/") for p in PER_CLUSTER)
    for m in b["measurements"]:
        for s in m["subtypes"] if m["type"] == "K8s" else []:
            if s["subtype"] == "server":
                s["data"]["version"] = "v1.34.0"
    other = cluster_snapshot_list([{"context": "x", "snapshot": a}, {"context": "y", "snapshot": b}], {})
    result = across_clusters([("s", other)])
    assert [d.node for d in result.deviations] == ["y/gpu-node-01"]
    assert [c.path for c in result.deviations[0].changes] == ["K8s/server/version"]


def test_a_node_that_failed_in_a_cluster_is_named_by_context_and_node() -> None:
    doc = fleet_of_clusters(failures=False)
    doc["items"][2]["snapshot"]["failures"] = [{"node": "gpu-node-99", "reason": "ImagePullBackOff"}]
    result = across_clusters([("c", doc)])
    assert [f.node for f in result.failures] == ["fleet/gpu-node-99"]


def test_pairs_of_two_cluster_lists_match_contexts_and_nodes() -> None:
    base = fleet_of_clusters()
    current = fleet_of_clusters()
    current["items"] = [current["items"][0], current["items"][2]]  # staging gone
    current["items"][1]["snapshot"]["items"].pop()  # one node of the fleet gone
    p = pairs("a", base, "b", current)
    assert p.only_base == ["staging", "fleet/gpu-node-20"] and p.only_current == []
    assert [label for label, _, _ in p.both][:2] == ["prod", "fleet/gpu-node-01"]
    with pytest.raises(InvalidInput, match="not a ClusterSnapshotList"):
        pairs("a", base, "node-a.yaml", load("node-a.yaml"))


@pytest.fixture
def documents(tmp_path: Path) -> dict[str, str]:
    paths = {}
    same = fleet_of_clusters(failures=False)
    same["items"] = [same["items"][0], {"context": "copy", "snapshot": load("node-a-rerun.yaml")}]
    for name, doc in (("clusters", fleet_of_clusters()), ("same", same)):
        paths[name] = str(tmp_path / f"{name}.yaml")
        Path(paths[name]).write_text(yaml.safe_dump(doc))
    return paths


def test_diff_across_clusters_exit_codes_and_formats(documents: dict[str, str]) -> None:
    code, out, _ = run("diff", "--across-clusters", documents["clusters"])
    assert code == 1 and "reference prod/gpu-node-01" in out and "(context prod)" in out
    code, out, _ = run("diff", "--across-clusters", documents["same"])
    assert code == 0 and "no drift" in out
    code, out, _ = run("diff", "--across-clusters", documents["clusters"], "--baseline", "fleet", "-o", "json")
    doc = json.loads(out)
    assert code == 1 and doc["mode"] == "--across-clusters" and doc["chosen"] == "context fleet"
    code, out, _ = run("diff", "--across-clusters", documents["clusters"], "-o", "markdown")
    assert out.startswith("### kubectl aicr diff --across-clusters:")
    code, out, _ = run("diff", "--across-clusters", documents["clusters"], "-o", "junit")
    assert code == 1 and "<testsuites" in out
    assert run("diff", "--across-clusters", documents["clusters"], "--exit-zero")[0] == 0


def test_diff_refuses_mixed_kinds_and_flags(documents: dict[str, str]) -> None:
    a = str(SNAPSHOTS / "node-a.yaml")
    for args, expected in [
        (("--across-clusters", a), "is a Snapshot, not a ClusterSnapshotList"),
        (("--across-nodes", documents["clusters"]), "--across-clusters"),
        ((documents["clusters"], a), "not a ClusterSnapshotList"),
        ((a, documents["clusters"]), "not a ClusterSnapshotList"),
        (("--baseline", "prod", a, a), "--baseline CONTEXT goes with --across-clusters"),
        (("--across-clusters", "--across-nodes", a), "pick one"),
        (("--across-clusters", documents["clusters"], "--baseline", "nope"), "no cluster snapshot of that context"),
    ]:
        code, _, err = run("diff", *args)
        assert code == 2, (args, err)
        assert expected in err, (args, err)


def test_diff_of_two_cluster_lists_context_by_context(documents: dict[str, str]) -> None:
    code, out, _ = run("diff", documents["clusters"], documents["clusters"])
    assert code == 0 and "== context prod ==" in out and "== context fleet/gpu-node-20 ==" in out
    code, out, _ = run("diff", documents["clusters"], documents["same"], "-o", "json")
    doc = json.loads(out)
    assert code == 1 and doc["drift"] is True
    assert doc["only_in_base"][0] == "staging" and doc["only_in_current"] == ["copy"]
    assert [c["context"] for c in doc["contexts"]] == ["prod"] and doc["contexts"][0]["drift"] is False
    code, _, err = run("diff", documents["clusters"], documents["same"], "-o", "junit")
    assert code == 2 and "-o junit" in err


# ---------------------------------------------------------------------------------------------- snapshot


def kubeconfig(path: Path, contexts: dict[str, str], current: str) -> Path:
    """A kubeconfig with one context per ``{name: server}``, each its own cluster and user."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"c-{n}", "cluster": {"server": s}} for n, s in contexts.items()],
        "users": [{"name": f"u-{n}", "user": {"token": "t"}} for n in contexts],
        "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": f"u-{n}"}} for n in contexts],
        "current-context": current,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_pick_contexts(tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path / "config", {"b": "https://127.0.0.1:1", "a": "https://127.0.0.1:1"}, "a")
    assert clusters.pick_contexts((), True, str(cfg)) == ("b", "a")  # the kubeconfig's order
    assert clusters.pick_contexts(("a",), False, str(cfg)) is None  # one context: the single-cluster path
    assert clusters.pick_contexts((), False, str(cfg)) is None
    assert clusters.pick_contexts(("a", "b"), False, None) == ("a", "b")
    for given, all_, expected in [
        (("a",), True, "--all-contexts"),
        (("a", "a"), False, "given twice"),
        (("a", ""), False, "must not be empty"),
    ]:
        with pytest.raises(InvalidInput, match=expected):
            clusters.pick_contexts(given, all_, str(cfg))


def test_kubeconfig_contexts_merges_files_in_order_the_first_naming_a_context_winning(tmp_path: Path) -> None:
    first = kubeconfig(tmp_path / "first", {"b": "https://127.0.0.1:1", "a": "https://127.0.0.1:1"}, "b")
    second = kubeconfig(tmp_path / "second", {"c": "https://127.0.0.1:2", "a": "https://127.0.0.1:2"}, "c")
    odd = yaml.safe_load(second.read_text())
    odd["contexts"] += ["not-a-mapping", {"context": {}}, {"name": ""}, {"name": 7}]  # each skipped
    second.write_text(yaml.safe_dump(odd))
    assert kube.kubeconfig_contexts([str(first), str(second)]) == ("b", "a", "c")
    assert kube.kubeconfig_contexts([str(second), str(first)]) == ("c", "a", "b")
    env = {"KUBECONFIG": os.pathsep.join([str(first), str(tmp_path / "missing"), str(second)])}
    assert kube.kubeconfig_contexts(kube.kubeconfig_paths(None, env)) == ("b", "a", "c")
    empty = tmp_path / "empty"
    empty.write_text("")
    assert kube.kubeconfig_contexts([str(empty)]) == ()
    with pytest.raises(InvalidInput, match="has no contexts"):
        clusters.list_contexts(str(empty))
    before = (first.read_bytes(), second.read_bytes())
    assert clusters.list_contexts(str(second)) == ("c", "a")
    assert (first.read_bytes(), second.read_bytes()) == before  # only read


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\x00\xff\xfe binary", "not a text file"),
        (b"contexts: [unclosed", "cannot be read"),
        (b"- a\n- list\n", "not a kubeconfig mapping"),
    ],
)
def test_kubeconfig_contexts_refuses_a_bad_file_as_connecting_does(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    bad = tmp_path / "config"
    bad.write_bytes(content)
    with pytest.raises(InvalidInput) as listed:
        kube.kubeconfig_contexts([str(bad)])
    with pytest.raises(InvalidInput) as resolved:
        kube.resolve_context([str(bad)], "a")  # what connecting to a context of the same file says
    assert expected in listed.value.message and str(bad) in listed.value.message
    assert listed.value.message == resolved.value.message and listed.value.hint == resolved.value.hint
    with pytest.raises(InvalidInput, match=expected):
        clusters.pick_contexts((), True, str(bad))


def test_kubeconfig_contexts_refuses_contexts_that_are_not_a_list_and_a_missing_kubeconfig(tmp_path: Path) -> None:
    bad = tmp_path / "config"
    bad.write_text("contexts: 5\n")
    with pytest.raises(InvalidInput, match="'contexts' is not a list"):
        kube.kubeconfig_contexts([str(bad)])
    with pytest.raises(NotFound, match="does not exist"):
        clusters.list_contexts(str(tmp_path / "nope"))


def test_clusters_uses_only_public_names_of_kube() -> None:
    import ast

    tree = ast.parse(Path(clusters.__file__).read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "kubectl_aicr.kube"
        for alias in node.names
    ]
    assert "kubeconfig_contexts" in imported
    assert [name for name in imported if name.startswith("_")] == []


def test_failures_and_exit_codes_as_a_fleet_of_nodes() -> None:
    ok = clusters.ClusterResult("a", document={"kind": "Snapshot"})
    down = clusters.ClusterResult("b", error=Unavailable("cannot reach https://127.0.0.1:1"))
    gone = clusters.ClusterResult("c", error=NotFound("context 'c' not found"))
    clusters.raise_for_failures([ok])
    with pytest.raises(AicrError) as partial:
        clusters.raise_for_failures([ok, down])
    assert partial.value.exit_code == AGENT_FAILED
    assert partial.value.details == ["b: cannot reach https://127.0.0.1:1"]
    with pytest.raises(AicrError) as none:
        clusters.raise_for_failures([down, gone])
    assert none.value.exit_code == Unavailable.exit_code  # every cluster failed: the first one's code
    assert "first: b:" in none.value.message and len(none.value.details) == 2


def test_snapshot_of_unreachable_contexts_records_each_and_never_touches_the_kubeconfig(tmp_path: Path) -> None:
    cfg = kubeconfig(tmp_path / "config", {"one": "https://127.0.0.1:1", "two": "https://127.0.0.1:1"}, current="one")
    before = cfg.read_bytes()
    out = tmp_path / "clusters.json"
    args = ["snapshot", "--kubeconfig", str(cfg), "--timeout", "3s", "--request-timeout", "1", "--format", "json"]
    code, _, err = run(*args, "--context", "two", "--context", "missing", "-o", str(out))
    assert code == Unavailable.exit_code, err  # every cluster failed: the first one's (two: unreachable) code
    assert "[aicr] two: " in err or "two:" in err
    doc = json.loads(out.read_text())
    assert doc["kind"] == "ClusterSnapshotList" and doc["items"] == []
    assert [f["context"] for f in doc["failures"]] == ["two", "missing"]
    assert "not found" in doc["failures"][1]["reason"]
    assert schema.problems(doc) == []
    code, _, err = run(*args, "--all-contexts", "-o", str(out))
    assert code == Unavailable.exit_code, err
    assert [f["context"] for f in json.loads(out.read_text())["failures"]] == ["one", "two"]
    assert cfg.read_bytes() == before


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--local"], "--local"),
        (["--dry-run=client"], "--dry-run=client"),
        (["-o", "cm://ns/name"], "one of several clusters"),
        (["--cluster", "c-one"], "--cluster"),
        (["--all-contexts"], "--all-contexts"),
    ],
)
def test_snapshot_refuses_single_cluster_flags_with_several_contexts(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    cfg = kubeconfig(tmp_path / "config", {"one": "https://127.0.0.1:1", "two": "https://127.0.0.1:1"}, "one")
    code, _, err = run("snapshot", "--kubeconfig", str(cfg), "--context", "one", "--context", "two", *extra)
    assert code == 2, err
    assert expected in err
