"""Permission pre-check: ask the API server (SelfSubjectAccessReview) for every permission a run needs,
before creating anything, and name each missing one."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubectl_aicr.deploy.spec import RunSpec
from kubectl_aicr.errors import Forbidden
from kubectl_aicr.kube import Kube, raise_api_error


@dataclass(frozen=True)
class Need:
    verb: str
    resource: str
    group: str = ""
    namespaced: bool = True
    subresource: str = ""
    why: str = ""

    def describe(self, namespace: str) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        full = f"{res}.{self.group}" if self.group else res
        where = f"in namespace {namespace!r}" if self.namespaced else "cluster-wide"
        return f"{self.verb} {full} {where}" + (f" ({self.why})" if self.why else "")


def required(run: RunSpec, *, create_namespace: bool) -> list[Need]:
    """What the person running ``snapshot`` needs: namespaced permissions only. The agent's Role grants
    get/patch on its staging ConfigMaps, which the user must hold to grant (Kubernetes refuses to let anyone
    grant what they do not have). Reading nodes and ClusterPolicies is optional: without it the snapshot's
    K8s node/cluster/policy subtypes say why they are missing."""
    rbac = "rbac.authorization.k8s.io"
    needs = [
        Need("create", "jobs", "batch"),
        Need("patch", "jobs", "batch"),
        Need("delete", "jobs", "batch"),
        Need("get", "jobs", "batch"),
        Need("list", "pods"),
        Need("watch", "pods"),
        Need("get", "pods", subresource="log", why="the agent's write receipt and its logs on failure"),
        Need("create", "configmaps"),
        Need("get", "configmaps"),
        Need("delete", "configmaps"),
        Need("patch", "configmaps", why="node facts for the agent; also granted to the agent"),
        Need("create", "roles", rbac),
        Need("delete", "roles", rbac),
        Need("create", "rolebindings", rbac),
        Need("delete", "rolebindings", rbac),
    ]
    if run.creates_service_account:
        needs += [Need("create", "serviceaccounts"), Need("delete", "serviceaccounts")]
    if create_namespace:
        needs += [Need("create", "namespaces", namespaced=False, why=f"namespace {run.namespace!r} does not exist")]
    return needs


def _allowed(kube: Kube, need: Need, namespace: str) -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {
            "resourceAttributes": {
                "verb": need.verb,
                "resource": need.resource,
                "group": need.group,
                "subresource": need.subresource or None,
                "namespace": namespace if need.namespaced else None,
            }
        },
    }
    resp = kube.request(kube.authz.create_self_subject_access_review, body, action="checking your permissions")
    return bool(resp.status.allowed)


def missing_permissions(kube: Kube, run: RunSpec, *, create_namespace: bool) -> list[str]:
    needs = required(run, create_namespace=create_namespace)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda n: _allowed(kube, n, run.namespace), needs))
    except Exception as e:
        raise_api_error(e, action="checking your permissions", server=kube.server)
    return [n.describe(run.namespace) for n, ok in zip(needs, results) if not ok]


def check(kube: Kube, run: RunSpec, *, create_namespace: bool, who: str = "you") -> None:
    missing = missing_permissions(kube, run, create_namespace=create_namespace)
    if missing:
        raise Forbidden(
            f"{who} lack{'s' if who != 'you' else ''} {len(missing)} permission{'s' if len(missing) > 1 else ''} "
            f"needed to run the snapshot agent; first missing: {missing[0]}",
            details=[f"missing: {m}" for m in missing],
            hint="ask a cluster admin to grant them (nothing was created)",
        )
