"""Pure parts of the agent deployment: flag parsing, manifests, pod/Job state classification, node matching."""

from __future__ import annotations

import pytest

from kubectl_aicr.deploy import classify, flags, spec
from kubectl_aicr.deploy.access import required
from kubectl_aicr.deploy.flags import TOLERATE_ALL, Toleration
from kubectl_aicr.errors import InvalidInput

# ------------------------------------------------------------------ flags


def test_node_selectors() -> None:
    assert flags.parse_node_selectors(["nvidia.com/gpu.present=true", "a=b"]) == {
        "nvidia.com/gpu.present": "true",
        "a": "b",
    }
    assert flags.parse_node_selectors(["empty="]) == {"empty": ""}


@pytest.mark.parametrize("bad", ["novalue", "=x", "bad key=x", "k=bad value", "UPPER.Prefix/x=1", "a=1,a=2"])
def test_bad_node_selectors(bad: str) -> None:
    items = bad.split(",") if "," in bad else [bad]
    with pytest.raises(InvalidInput, match="--node-selector"):
        flags.parse_node_selectors(items)


def test_tolerations() -> None:
    assert flags.parse_tolerations([]) == [TOLERATE_ALL]
    assert flags.parse_tolerations(["nvidia.com/gpu=present:NoSchedule", "dedicated:NoExecute", "k"]) == [
        Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"),
        Toleration("dedicated", "Exists", None, "NoExecute"),
        Toleration("k", "Exists", None, None),
    ]
    assert TOLERATE_ALL.to_dict() == {"operator": "Exists"}


@pytest.mark.parametrize("bad", ["k=v:Sometimes", ":NoSchedule", "=v:NoSchedule", "k=bad value:NoSchedule"])
def test_bad_tolerations(bad: str) -> None:
    with pytest.raises(InvalidInput, match="--toleration"):
        flags.parse_tolerations([bad])


@pytest.mark.parametrize(
    "text, seconds", [("5m", 300), ("90s", 90), ("1h30m", 5400), ("500ms", 0.5), ("45", 45), ("1.5m", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert flags.parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5x", "m5", "-5s", "0", "5m junk"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(InvalidInput, match="--timeout"):
        flags.parse_duration(bad)


def test_names_and_images() -> None:
    assert flags.check_name("aicr", "--job-name") == "aicr"
    for bad in ("Aicr", "-x", "x" * 41, "a_b"):
        with pytest.raises(InvalidInput):
            flags.check_name(bad, "--job-name")
    for bad in ("", "a b", "repo:"):
        with pytest.raises(InvalidInput):
            flags.check_image(bad)


# ------------------------------------------------------------------ manifests


def run(**kw: object) -> spec.RunSpec:
    base = dict(namespace="gpu-ops", run_id="abc123", tolerations=(TOLERATE_ALL,))
    base.update(kw)
    return spec.RunSpec(**base)  # type: ignore[arg-type]


def test_names_are_unique_per_run() -> None:
    a, b = run(run_id=spec.new_run_id()), run(run_id=spec.new_run_id())
    assert a.run_id != b.run_id
    for attr in ("job_name", "sa_name", "role_name", "staging_cm"):
        assert getattr(a, attr) != getattr(b, attr)


def test_job_manifest() -> None:
    j = spec.job(run())
    assert j["metadata"]["name"] == "aicr-abc123" and j["spec"]["suspend"] is True
    s = j["spec"]
    assert s["backoffLimit"] == 0 and s["ttlSecondsAfterFinished"] > 0 and s["activeDeadlineSeconds"] >= 300
    pod = s["template"]["spec"]
    assert pod["hostPID"] is True, "systemctl reaches the host's systemd only from the host PID namespace"
    assert pod["hostNetwork"] and pod["hostIPC"] and pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "aicr-abc123"
    c = pod["containers"][0]
    assert c["command"] == ["kubectl-aicr", "agent"]
    assert c["args"] == ["--output", "cm://gpu-ops/aicr-abc123-snapshot", "--run-id", "abc123"]
    assert c["securityContext"]["privileged"] is True
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in c["env"]
    assert {m["mountPath"] for m in c["volumeMounts"]} == {
        "/run/systemd",
        "/etc/os-release",
        "/etc/containerd",
        "/etc/nvidia-container-runtime",
        "/etc/cdi",
        "/var/run/cdi",
        "/boot",
    }
    assert all(m["readOnly"] for m in c["volumeMounts"])
    # The runtime/kernel-config sources may be missing on a node: no hostPath type check may refuse the pod.
    typed = {v["hostPath"]["path"]: v["hostPath"].get("type", "") for v in pod["volumes"] if "hostPath" in v}
    assert all(
        typed[p] == ""
        for p in ("/etc/containerd", "/etc/nvidia-container-runtime", "/etc/cdi", "/var/run/cdi", "/boot")
    )
    # No single-file hostPath without a type: the runtime would create a directory at a missing file's path.
    assert not any(p.startswith("/var/lib/kubelet") for p in typed)
    assert {m["name"] for m in c["volumeMounts"]} == {v["name"] for v in pod["volumes"]}
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    # No selector: prefer GPU nodes.
    pref = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert pref["preference"]["matchExpressions"][0] == {
        "key": "nvidia.com/gpu.present",
        "operator": "In",
        "values": ["true"],
    }
    assert "nodeSelector" not in pod
    # Pod and job carry the run label (cleanup and pod lookup select on it).
    assert s["template"]["metadata"]["labels"][spec.RUN_LABEL] == "abc123"


def test_job_with_selector_and_node() -> None:
    pod = spec.job(run(node_selector={"a": "b"}))["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"a": "b"} and "affinity" not in pod
    fleet = run(nodes=("gpu-7", "gpu-8"))
    t = fleet.targets
    assert [x.node for x in t] == ["gpu-7", "gpu-8"]
    assert len({x.job_name for x in t}) == 2 and len({x.staging_cm for x in t}) == 2
    job = spec.job(fleet, t[1])
    assert job["metadata"]["name"] == t[1].job_name
    pod = job["spec"]["template"]["spec"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["gpu-8"]}]
    assert pod["containers"][0]["args"][1] == f"cm://gpu-ops/{t[1].staging_cm}"
    # One Role covers every node's staging ConfigMap, and nothing else.
    assert spec.role(fleet)["rules"][0]["resourceNames"] == [x.staging_cm for x in t]


def test_rbac_is_least_privilege() -> None:
    r = run()
    role = spec.role(r)
    for rule in role["rules"]:
        assert rule["resources"] == ["configmaps"]
        assert rule["resourceNames"] == [r.staging_cm]
        assert set(rule["verbs"]) == {"get", "patch"}
    # The agent's only permission is that Role: nothing cluster-scoped is created at all.
    kinds = [m["kind"] for m in spec.manifests(r, create_namespace=False)]
    assert kinds == ["Job", "ServiceAccount", "Role", "RoleBinding", "ConfigMap"]
    m = spec.role_binding(r)
    assert m["subjects"] == [{"kind": "ServiceAccount", "name": r.sa_name, "namespace": "gpu-ops"}]
    assert m["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": r.role_name}


def test_existing_service_account_is_used_not_created() -> None:
    r = run(service_account="gpu-reader")
    assert r.sa_name == "gpu-reader" and not r.creates_service_account
    verbs = {(n.verb, n.resource) for n in required(r, create_namespace=False)}
    assert ("create", "serviceaccounts") not in verbs
    assert ("create", "serviceaccounts") in {(n.verb, n.resource) for n in required(run(), create_namespace=False)}
    assert ("create", "namespaces") in {(n.verb, n.resource) for n in required(run(), create_namespace=True)}


def test_required_permissions_carry_api_groups() -> None:
    needs = {(n.verb, n.resource, n.group) for n in required(run(), create_namespace=False)}
    assert ("create", "jobs", "batch") in needs
    assert ("create", "roles", "rbac.authorization.k8s.io") in needs
    # Nothing cluster-scoped is needed any more (reading nodes/ClusterPolicies is optional).
    assert all(n.namespaced for n in required(run(), create_namespace=False))


def test_cleanup_commands_select_the_run() -> None:
    cmds = spec.cleanup_commands(run())
    assert all("aicr.nvidia.com/run-id=abc123" in c for c in cmds)


# ------------------------------------------------------------------ pod / job states


def pod(
    phase: str = "Pending", node: str | None = None, conditions: list | None = None, cstatus: list | None = None
) -> dict:
    return {
        "metadata": {"name": "p"},
        "spec": {"nodeName": node},
        "status": {"phase": phase, "conditions": conditions or [], "containerStatuses": cstatus or []},
    }


def test_verdicts() -> None:
    assert classify.pod_verdict(pod()).state == "Pending (waiting for the scheduler)"
    v = classify.pod_verdict(
        pod(
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
                }
            ]
        )
    )
    assert v.kind == "unschedulable" and "didn't match Pod's node affinity/selector" in v.failure
    v = classify.pod_verdict(
        pod(
            node="n1",
            cstatus=[
                {
                    "image": "x/y:1",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}},
                }
            ],
        )
    )
    assert v.kind == "image" and "'x/y:1'" in v.failure and "ImagePullBackOff" in v.failure
    v = classify.pod_verdict(pod(node="n1", cstatus=[{"state": {"waiting": {"reason": "ContainerCreating"}}}]))
    assert v.failure is None and v.state == "Pending on n1 (ContainerCreating)"
    assert classify.pod_verdict(pod("Running", "n1")).state == "Running on n1"
    v = classify.pod_verdict(
        pod(
            "Failed",
            "n1",
            cstatus=[{"state": {"terminated": {"exitCode": 3, "reason": "Error", "message": "boom\nlast line"}}}],
        )
    )
    assert v.kind == "container" and v.exit_code == 3 and "exited with code 3" in v.failure and "last line" in v.failure
    assert classify.pod_verdict(pod("Succeeded", "n1")).done


def test_job_and_event_failures() -> None:
    job = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                }
            ]
        }
    }
    assert "DeadlineExceeded" in classify.job_failure(job)
    assert classify.job_failure({"status": {}}) is None
    evs = [
        {"reason": "SuccessfulCreate", "type": "Normal"},
        {"reason": "FailedCreate", "type": "Warning", "message": "pods is forbidden: exceeded quota"},
    ]
    assert "exceeded quota" in classify.creation_failure(evs)


def node(name: str, labels: dict | None = None, taints: list | None = None, cordoned: bool = False) -> dict:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": cordoned},
    }


def test_match_nodes() -> None:
    gpu_taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    nodes = [
        node("cpu"),
        node("gpu-a", {"gpu": "yes"}),
        node("gpu-b", {"gpu": "yes"}, [gpu_taint]),
        node("gpu-c", {"gpu": "yes"}, cordoned=True),
    ]
    assert classify.match_nodes(nodes, {"gpu": "yes"}, [TOLERATE_ALL]).matching == ["gpu-a", "gpu-b", "gpu-c"]
    m = classify.match_nodes(nodes, {"gpu": "yes"}, [Toleration("other", "Exists", None, None)])
    assert m.matching == ["gpu-a"] and m.selected == 3
    assert m.blocked == {
        "gpu-b": "nvidia.com/gpu=present:NoSchedule",
        "gpu-c": "node.kubernetes.io/unschedulable:NoSchedule",
    }
    assert classify.match_nodes(nodes, {"gpu": "no"}, [TOLERATE_ALL]).selected == 0
    m = classify.match_nodes(nodes, {}, [Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule")])
    assert m.matching == ["cpu", "gpu-a", "gpu-b"]


def test_gpu_warning() -> None:
    from kubectl_aicr.deploy.run import gpu_warning

    def doc(smi: dict, capacity: int | None = None) -> dict:
        ms = [{"type": "GPU", "subtypes": [{"subtype": "smi", **smi}]}]
        if capacity is not None:
            ms.append({"type": "K8s", "subtypes": [{"subtype": "node", "data": {"gpu-capacity": capacity}}]})
        return {"metadata": {"source-node": "n1"}, "measurements": ms}

    assert gpu_warning(doc({"data": {"gpu-count": 8}, "context": {"status": "ok"}})) is None
    assert "sees no GPU" in gpu_warning(doc({"data": {"gpu-count": 0}, "context": {"status": "ok"}}))
    missing = {"data": {}, "context": {"status": "unavailable", "reason": "nvidia-smi not found"}}
    assert "come from the driver files" in gpu_warning(doc(missing, capacity=8))
    assert "node n1 shows no GPU (nvidia-smi: nvidia-smi not found)" in gpu_warning(doc(missing))


def test_run_options_check_every_flag_before_any_call() -> None:
    from kubectl_aicr.deploy import run as agent_run
    from kubectl_aicr.errors import InvalidInput

    def options(**kw: object) -> agent_run.RunOptions:
        args: dict[str, object] = dict(
            image=None,
            job_name="aicr",
            service_account=None,
            node_selector=(),
            toleration=(),
            image_pull_secret=(),
            timeout_text="5m",
            all_nodes=False,
            parallelism=4,
            no_cleanup=False,
        )
        args.update(kw)
        return agent_run.options(**args)  # type: ignore[arg-type]

    got = options(node_selector=("a=b",), toleration=("k=v:NoSchedule",), timeout_text="90s")
    assert got.image == spec.DEFAULT_IMAGE and got.node_selector == {"a": "b"} and got.timeout == 90
    assert got.tolerations == (Toleration("k", "Equal", "v", "NoSchedule"),)
    bad_flags: list[tuple[dict[str, object], str | None]] = [
        (dict(parallelism=0), "--parallelism"),
        (dict(job_name="Bad_Name"), "--job-name"),
        (dict(service_account="x/y"), "--service-account-name"),
        (dict(image_pull_secret=("UPPER",)), "--image-pull-secret"),
        (dict(timeout_text="soon"), None),
        (dict(node_selector=("novalue",)), None),
    ]
    for bad, match in bad_flags:
        with pytest.raises(InvalidInput, match=match):
            options(**bad)


def test_fleet_document_lists_nodes_and_failures_sorted() -> None:
    from kubectl_aicr.deploy.run import fleet_document

    r = spec.RunSpec(namespace="ns", run_id="abc123", nodes=("b", "a"), node_selector={"z": "1", "y": "2"})
    docs = [{"metadata": {"source-node": n}, "measurements": []} for n in ("b", "a")]
    doc = fleet_document(r, docs, [{"node": "d", "reason": "x"}, {"node": "c", "reason": "y"}])
    assert doc["kind"] == "SnapshotList" and [d["metadata"]["source-node"] for d in doc["items"]] == ["a", "b"]
    assert [f["node"] for f in doc["failures"]] == ["c", "d"]
    assert doc["metadata"]["run-id"] == "abc123" and doc["metadata"]["node-count"] == "2"
    assert doc["metadata"]["node-selector"] == "y=2,z=1"
    assert "failures" not in fleet_document(r, docs, [])
