"""Permission pre-check: ask the API server for every permission a run needs, before creating anything, and name
each missing one.

One request answers the usual case: a SelfSubjectRulesReview lists the rules that grant the user anything in the
run's namespace, and a namespaced permission those rules grant (by RBAC's matching: verb, API group, resource or
subresource, no resource names) is held. Everything else is asked one SelfSubjectAccessReview each, all at once, as
before: a permission the rules do not grant (so every refusal is the access review's own verdict, with the same
message), a cluster-wide one (a RoleBinding's rules appear in the namespace's list but grant nothing outside it),
and every permission when the list is incomplete (an authorizer that cannot list rules, such as a webhook, which
may also deny what RBAC grants) or the rules review is not answered (a server that refuses or lacks it)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from kubectl_aicr.deploy.spec import RunSpec
from kubectl_aicr.errors import AicrError, Forbidden
from kubectl_aicr.kube import Kube, answer_of, raise_api_error

ACTION = "checking your permissions"


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


def _access_review(need: Need, namespace: str) -> dict[str, Any]:
    return {
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


def _allowed(kube: Kube, need: Need, namespace: str) -> bool:
    body = _access_review(need, namespace)
    answer = kube.call_json(kube.authz.create_self_subject_access_review, body, action=ACTION)
    return bool(((answer or {}).get("status") or {}).get("allowed"))


def by_access_reviews(kube: Kube, needs: Sequence[Need], namespace: str) -> list[bool]:
    """Whether each of ``needs`` is held, by one SelfSubjectAccessReview each (sent at once)."""
    if not needs:
        return []
    try:
        with ThreadPoolExecutor(max_workers=min(8, len(needs))) as pool:
            return list(pool.map(lambda n: _allowed(kube, n, namespace), needs))
    except Exception as e:
        raise_api_error(e, action=ACTION, server=kube.server)


def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def rule_grants(rule: dict[str, Any], need: Need) -> bool:
    """Whether one resource rule of a SelfSubjectRulesReview grants ``need`` on any object (RBAC's own matching:
    ``*`` matches every verb, group and resource, ``pods/log`` or ``*/log`` the subresource; a rule limited to
    named objects grants nothing a request without a name asks)."""
    if rule.get("resourceNames"):
        return False
    resources = rule.get("resources")
    if not _has(rule.get("verbs"), need.verb) or not _has(rule.get("apiGroups"), need.group):
        return False
    if not isinstance(resources, list):
        return False
    if need.subresource:
        combined, any_resource = f"{need.resource}/{need.subresource}", f"*/{need.subresource}"
        return "*" in resources or combined in resources or any_resource in resources
    return "*" in resources or need.resource in resources


def granted_by_rules(rules_review: Any, needs: Sequence[Need]) -> list[bool]:
    """For each of ``needs``: True when the rules review's answer grants it for certain (namespaced, rules
    complete), False when an access review must decide."""
    status = (rules_review or {}).get("status") if isinstance(rules_review, dict) else None
    if not isinstance(status, dict) or status.get("incomplete") is not False:
        return [False] * len(needs)
    rules = [r for r in status.get("resourceRules") or [] if isinstance(r, dict)]
    return [n.namespaced and any(rule_grants(r, n) for r in rules) for n in needs]


def rules_review(kube: Kube, namespace: str) -> Any:
    """The SelfSubjectRulesReview of ``namespace``; None when the server answers it with a refusal (or does not
    know it): the access reviews then decide everything. A failure to get any answer is raised as before."""
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectRulesReview",
        "spec": {"namespace": namespace},
    }
    try:
        return kube.call_json(kube.authz.create_self_subject_rules_review, body, action=ACTION)
    except AicrError as e:
        said = answer_of(e)
        if said is not None and 400 <= said.status < 500 and said.status not in (408, 429):
            return None
        raise


def missing_permissions(kube: Kube, run: RunSpec, *, create_namespace: bool) -> list[str]:
    needs = required(run, create_namespace=create_namespace)
    granted = granted_by_rules(rules_review(kube, run.namespace), needs)
    ask = [n for n, ok in zip(needs, granted) if not ok]
    verdicts = iter(by_access_reviews(kube, ask, run.namespace))
    held = [ok or next(verdicts) for ok in granted]
    return [n.describe(run.namespace) for n, ok in zip(needs, held) if not ok]


def check(kube: Kube, run: RunSpec, *, create_namespace: bool, who: str = "you") -> None:
    missing = missing_permissions(kube, run, create_namespace=create_namespace)
    if missing:
        raise Forbidden(
            f"{who} lack{'s' if who != 'you' else ''} {len(missing)} permission{'s' if len(missing) > 1 else ''} "
            f"needed to run the snapshot agent; first missing: {missing[0]}",
            details=[f"missing: {m}" for m in missing],
            hint="ask a cluster admin to grant them (nothing was created)",
        )
