"""RBAC: Roles, ClusterRoles and their bindings as stored kinds, and SubjectAccessReviews
answered from them as the API server's RBAC authorizer answers.

The lab authorizes no request of its own (every client may do everything); a
SubjectAccessReview asks what the RBAC objects stored here allow a subject, so tests
can show that a Role and RoleBinding (``peeringd rbac``) let calico-node read a Secret.

Modelled: rules of Roles (in their namespace) and ClusterRoles (everywhere, or in the
namespace of a RoleBinding that refers to one), ``*`` in apiGroups, resources and verbs,
resourceNames, subjects of kind User, Group and ServiceAccount. Not modelled: aggregated
ClusterRoles, nonResourceURLs, subresources, the escalation checks on writing RBAC objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from peeringd.lab.kubeapi.builtin import Builtin, _Struct
from peeringd.lab.kubeapi.errors import Json, bad_request
from peeringd.lab.kubeapi.kinds import Kind

__all__ = [
    "CLUSTER_ROLES",
    "CLUSTER_ROLE_BINDINGS",
    "KINDS",
    "REVIEW_PATH",
    "ROLES",
    "ROLE_BINDINGS",
    "review",
]

REVIEW_PATH: Final = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
_GROUP: Final = "rbac.authorization.k8s.io"

Objects = Callable[[Kind, "str | None"], list[Json]]


def _as_is(_: Json, __: Json | None) -> None:
    return None


def _accepted(_: Json, __: Json | None) -> list[Json]:
    return []


_RULES: Final = _Struct("Role", {"rules": "[]PolicyRule", "aggregationRule": "AggregationRule"})
_BINDING: Final = _Struct(
    "RoleBinding",
    {
        "roleRef": _Struct("RoleRef", {"apiGroup": "string", "kind": "string", "name": "string"}),
        "subjects": "[]Subject",
    },
)


def _kind(plural: str, kind: str, struct: _Struct, *, namespaced: bool) -> Kind:
    return Kind(
        group=_GROUP,
        version="v1",
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        short_names=(),
        has_status=False,
        schema=None,
        namespaced=namespaced,
        builtin=Builtin(struct, _as_is, _accepted),
    )


ROLES: Final = _kind("roles", "Role", _RULES, namespaced=True)
ROLE_BINDINGS: Final = _kind("rolebindings", "RoleBinding", _BINDING, namespaced=True)
CLUSTER_ROLES: Final = _kind("clusterroles", "ClusterRole", _RULES, namespaced=False)
CLUSTER_ROLE_BINDINGS: Final = _kind("clusterrolebindings", "ClusterRoleBinding", _BINDING, namespaced=False)
KINDS: Final = (ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS)


def review(body: Json, objects: Objects) -> Json:
    """The SubjectAccessReview ``body`` with its status: whether the stored RBAC objects allow
    its user (and groups) the request its resourceAttributes describe."""
    spec = body.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("resourceAttributes"), dict):
        raise bad_request("spec.resourceAttributes: Required value: a resource request is needed")
    attributes: Mapping[str, Any] = spec["resourceAttributes"]
    user, groups = str(spec.get("user", "")), [str(group) for group in spec.get("groups") or ()]
    namespace = str(attributes.get("namespace", ""))
    reason = next(
        (
            f"RBAC: allowed by {binding} of {role}"
            for binding, role, rules in _bound_rules(user, groups, namespace, objects)
            if any(_allows(rule, attributes) for rule in rules)
        ),
        None,
    )
    status: Json = {"allowed": reason is not None}
    if reason is not None:
        status["reason"] = reason
    return {**body, "status": status}


def _bound_rules(
    user: str, groups: list[str], namespace: str, objects: Objects
) -> Iterator[tuple[str, str, list[Json]]]:
    """The rules bound to the subject: through ClusterRoleBindings, then the RoleBindings of
    ``namespace``; each with the binding and role that give it, for the reason."""
    bindings: list[tuple[Json, str | None]] = [(b, None) for b in objects(CLUSTER_ROLE_BINDINGS, None)]
    if namespace:
        bindings += [(b, namespace) for b in objects(ROLE_BINDINGS, namespace)]
    for binding, scope in bindings:
        if not any(_matches(subject, user, groups, scope) for subject in binding.get("subjects") or ()):
            continue
        ref = binding.get("roleRef") or {}
        kind = CLUSTER_ROLES if ref.get("kind") == "ClusterRole" else ROLES
        role = next(
            (
                r
                for r in objects(kind, scope if kind is ROLES else None)
                if r["metadata"]["name"] == ref.get("name")
            ),
            None,
        )
        if role is not None:
            name = f"{binding['kind']} {binding['metadata']['name']}"
            yield name, f"{kind.kind} {ref.get('name')}", role.get("rules") or []


def _matches(subject: Json, user: str, groups: list[str], binding_namespace: str | None) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user)
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        account_namespace = subject.get("namespace") or binding_namespace
        return user == f"system:serviceaccount:{account_namespace}:{name}"
    return False


def _allows(rule: Json, attributes: Mapping[str, Any]) -> bool:
    def has(field: str, value: object) -> bool:
        listed = rule.get(field) or []
        return "*" in listed or value in listed

    names = rule.get("resourceNames") or []
    return (
        has("apiGroups", attributes.get("group", ""))
        and has("resources", attributes.get("resource", ""))
        and has("verbs", attributes.get("verb", ""))
        and (not names or attributes.get("name") in names)
    )
