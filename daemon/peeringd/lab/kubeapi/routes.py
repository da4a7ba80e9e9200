"""What a request's URL addresses: a discovery document, or a kind in a namespace or across all,
with the Kubernetes verb the method and URL make."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from peeringd.lab.kubeapi.errors import Json
from peeringd.lab.kubeapi.kinds import Kind, Registry

__all__ = ["Target", "target"]


@dataclasses.dataclass(frozen=True)
class Target:
    """What a request addresses: a discovery document or a kind (plus name, subresource, and the
    namespace of a namespaced kind: None across namespaces). No kind and no document: no such
    path (404)."""

    verb: str
    kind: Kind | None = None
    name: str | None = None
    subresource: str | None = None
    document: Json | None = None
    namespace: str | None = None


def target(registry: Registry, method: str, path: str, query: Mapping[str, str]) -> Target:
    """Resolve `/api/v1/...` and `/apis/GROUP/VERSION/...`, with `namespaces/NS/` before the
    plural of a namespaced kind; across namespaces a namespaced kind has only its collection."""
    parts = [part for part in path.split("/") if part]
    if method == "GET":
        document = registry.document(parts)
        if document is not None:
            return Target("get", document=document)
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Target(method.lower())
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        scoped = registry.at(group, version, rest[2])
        if scoped is not None and scoped.namespaced:
            namespace, rest = rest[1], rest[2:]
    kind = registry.at(group, version, rest[0]) if 1 <= len(rest) <= 3 else None
    name = rest[1] if len(rest) >= 2 else None
    subresource = rest[2] if len(rest) == 3 else None
    if kind is None or subresource not in (None, "status") or (subresource and not kind.has_status):
        return Target(method.lower())
    if kind.namespaced and namespace is None and name is not None:
        return Target(method.lower())
    verb = _verb(method, name, _is_true(query.get("watch")))
    return Target(verb or method.lower(), kind, name, subresource, namespace=namespace)


def _verb(method: str, name: str | None, watch: bool) -> str | None:
    collection = name is None
    match method:
        case "GET":
            return ("watch" if watch else "list") if collection else "get"
        case "POST" if collection:
            return "create"
        case "PUT" if not collection:
            return "update"
        case "PATCH" if not collection:
            return "patch"
        case "DELETE":
            return "deletecollection" if collection else "delete"
    return None


def _is_true(value: str | None) -> bool:
    return value in ("1", "true", "True")
