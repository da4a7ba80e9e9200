"""What tests do to requests, matched on the journal's record of each: faults and hooks.

A fault delays a request and may answer it with the error a real server gives for that
status; a hook runs a callback just before it (e.g. to make a client's write conflict).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from peeringd.lab.kubeapi.errors import MODIFIED, KubeApiError, conflict, not_found

if TYPE_CHECKING:
    from peeringd.lab.kubeapi.kinds import Kind

__all__ = ["Fault", "Hook", "JournalEntry", "Rule", "injected"]

_FORBIDDEN_USER: Final = "system:serviceaccount:peeringd:peeringd"


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    """One request as the server received it, with the Kubernetes verb it maps to.

    `resource` is the plural, or `plural/status` for the subresource, and None for discovery
    and unknown paths; `group` is "" for the core group; `namespace` is the URL's, None across
    namespaces and for cluster-scoped kinds; `user_agent` tells the clients apart.
    """

    method: str
    path: str
    query: Mapping[str, str]
    verb: str
    group: str | None = None
    resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    user_agent: str | None = None


def injected(status: int, entry: JournalEntry, kind: Kind | None) -> KubeApiError:
    """The error a real server answers with `status` for this request."""
    name = entry.name
    target = kind.qualified if kind is not None else entry.path
    details = kind.details(name) if kind is not None else {}
    match status:
        case 401:
            return KubeApiError(401, "Unauthorized", "Unauthorized")
        case 403:
            named = f' "{name}"' if name is not None else ""
            scope = f'in the namespace "{entry.namespace}"' if entry.namespace else "at the cluster scope"
            message = (
                f'{target}{named} is forbidden: User "{_FORBIDDEN_USER}" cannot {entry.verb}'
                f' resource "{entry.resource}" in API group "{entry.group or ""}" {scope}'
            )
            return KubeApiError(403, "Forbidden", message, details)
        case 404 if kind is not None:
            return not_found(kind, name or "")
        case 409 if kind is not None:
            return conflict(kind, name or "", MODIFIED)
        case 429:
            message = "Too many requests, please try again later."
            details = {"retryAfterSeconds": 1}
            return KubeApiError(429, "TooManyRequests", message, details, {"Retry-After": "1"})
        case 500:
            details["causes"] = [{"message": "injected fault"}]
            return KubeApiError(500, "InternalError", "Internal error occurred: injected fault", details)
        case 503:
            message = "the server is currently unable to handle the request"
            return KubeApiError(503, "ServiceUnavailable", message, details)
        case 504:
            message = "the server was unable to return a response in the time allotted"
            return KubeApiError(504, "Timeout", message, details)
    return KubeApiError(status, "Unknown", f"injected fault {status}", details)


@dataclasses.dataclass
class Rule:
    """Something to do to the next `remaining` requests that match."""

    verb: str
    resource: str
    name: str | None
    remaining: int

    def matches(self, entry: JournalEntry) -> bool:
        return (
            self.remaining > 0
            and self.verb == entry.verb
            and self.resource == entry.resource
            and self.name in (None, entry.name)
        )


@dataclasses.dataclass
class Fault(Rule):
    status: int | None = None
    delay: float = 0.0


@dataclasses.dataclass
class Hook(Rule):
    callback: Callable[[JournalEntry], None]
