"""The permission pre-check against the real API server's RBAC: the one SelfSubjectRulesReview (with access reviews
for what it leaves open) names exactly the permissions one SelfSubjectAccessReview per permission names, for users
granted everything, nothing, a namespace's ``edit``, wildcards, subresources, named objects only, and a
cluster-scoped permission granted through a RoleBinding (which grants it nowhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from kubernetes import client

from kubectl_aicr.deploy import access
from kubectl_aicr.deploy.spec import RunSpec
from kubectl_aicr.kube import Kube, KubeOptions, connect
from tests.controlplane.testkit import unique

pytestmark = pytest.mark.controlplane

RBAC = "rbac.authorization.k8s.io"


def _bind(rbac: client.RbacAuthorizationV1Api, namespace: str, user: str, role_kind: str, role: str) -> None:
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": unique("b")},
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
            "subjects": [{"kind": "User", "name": user, "apiGroup": RBAC}],
        },
    )


@pytest.fixture
def cluster_roles(api_client: client.ApiClient) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    rbac = client.RbacAuthorizationV1Api(api_client)
    for name in made:
        rbac.delete_cluster_role(name)
    for b in rbac.list_cluster_role_binding().items:
        if b.role_ref.name in made:
            rbac.delete_cluster_role_binding(b.metadata.name)


def _both(kube: Kube, run: RunSpec, create_namespace: bool) -> tuple[list[str], list[str]]:
    needs = access.required(run, create_namespace=create_namespace)
    by_reviews = access.by_access_reviews(kube, needs, run.namespace)
    expected = [n.describe(run.namespace) for n, ok in zip(needs, by_reviews) if not ok]
    return access.missing_permissions(kube, run, create_namespace=create_namespace), expected


def test_the_rules_review_names_what_the_access_reviews_name(
    control_plane: Any, namespace: str, api_client: client.ApiClient, cluster_roles: list[str]
) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    rules: list[dict[str, Any]] = [
        {"verbs": ["*"], "apiGroups": ["batch"], "resources": ["*"]},
        {"verbs": ["list", "watch", "create", "patch"], "apiGroups": [""], "resources": ["pods", "configmaps"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]},
        {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["only-this"]},
        {"verbs": ["create", "delete"], "apiGroups": [RBAC], "resources": ["roles", "rolebindings"]},
        {"verbs": ["create"], "apiGroups": [""], "resources": ["namespaces"]},  # bound in a namespace only
    ]
    role = unique("aicr-access-test")
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": rules})
    cluster_roles.append(role)
    wide = unique("aicr-access-wide")
    rbac.create_cluster_role(
        {"metadata": {"name": wide}, "rules": [{"verbs": ["create"], "apiGroups": [""], "resources": ["namespaces"]}]}
    )
    cluster_roles.append(wide)

    user_names = {who: unique(f"access-{who}") for who in ("nobody", "edit", "mixed", "mixed-wide")}
    users: dict[str, Path] = {who: control_plane.make_user_kubeconfig(name) for who, name in user_names.items()}
    _bind(rbac, namespace, user_names["edit"], "ClusterRole", "edit")
    for who in ("mixed", "mixed-wide"):
        _bind(rbac, namespace, user_names[who], "ClusterRole", role)
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": unique("aicr-access-wide")},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": wide},
            "subjects": [{"kind": "User", "name": user_names["mixed-wide"], "apiGroup": RBAC}],
        }
    )

    seen: dict[str, list[str]] = {}
    for who, kubeconfig in [("admin", control_plane.kubeconfig), *users.items()]:
        kube = connect(KubeOptions(kubeconfig=str(kubeconfig)))
        for create_namespace in (False, True):
            for sa in (None, "existing"):
                run = RunSpec(namespace=namespace, run_id="x", service_account=sa)
                got, expected = _both(kube, run, create_namespace)
                assert got == expected, (who, create_namespace, sa)
                seen[f"{who} {create_namespace} {sa}"] = got
    assert seen["admin True None"] == []
    # The rules review decided, where it can: every namespaced need of the admin, the jobs and logs of "mixed".
    admin = connect(KubeOptions(kubeconfig=str(control_plane.kubeconfig)))
    needs = access.required(RunSpec(namespace, "x"), create_namespace=True)
    granted = access.granted_by_rules(access.rules_review(admin, namespace), needs)
    assert granted == [n.namespaced for n in needs]
    mixed_kube = connect(KubeOptions(kubeconfig=str(users["mixed"])))
    granted = access.granted_by_rules(access.rules_review(mixed_kube, namespace), needs)
    assert {n.describe(namespace) for n, ok in zip(needs, granted) if ok} >= {
        f"create jobs.batch in namespace {namespace!r}",
        f"get pods/log in namespace {namespace!r} (the agent's write receipt and its logs on failure)",
    }
    assert len(seen["nobody True None"]) == len(access.required(RunSpec(namespace, "x"), create_namespace=True))
    assert any("roles" in m for m in seen["edit False None"])
    mixed = seen["mixed True None"]
    assert any(m.startswith("get configmaps") for m in mixed) and any(m.startswith("delete configmaps") for m in mixed)
    assert any(m.startswith("create namespaces") for m in mixed)  # a RoleBinding grants nothing cluster-wide
    assert not any(m.startswith("create namespaces") for m in seen["mixed-wide True None"])
    assert not any("jobs" in m or "pods/log" in m for m in mixed)
