"""The API server's errors, worded as a real server words them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from peeringd.lab.kubeapi.kinds import Kind

__all__ = [
    "MODIFIED",
    "Json",
    "KubeApiError",
    "bad_request",
    "cause",
    "conflict",
    "invalid",
    "method_not_allowed",
    "not_found",
    "path_not_found",
    "shown",
]

Json = dict[str, Any]


class KubeApiError(Exception):
    """A refusal of the API server; `status` is the Status object it answers with."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Json | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    @property
    def status(self) -> Json:
        status: Json = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def shown(value: Any) -> str:
    """A value as Kubernetes shows it in a message: JSON scalars, type names for the rest."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def cause(reason: str, field: str, message: str) -> Json:
    return {"reason": reason, "message": message, "field": field}


def not_found(kind: Kind, name: str) -> KubeApiError:
    message = f'{kind.qualified} "{name}" not found'
    return KubeApiError(404, "NotFound", message, kind.details(name))


def path_not_found() -> KubeApiError:
    return KubeApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed() -> KubeApiError:
    message = "the server does not allow this method on the requested resource"
    return KubeApiError(405, "MethodNotAllowed", message, {})


def conflict(kind: Kind, name: str, why: str) -> KubeApiError:
    message = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}'
    return KubeApiError(409, "Conflict", message, kind.details(name))


MODIFIED: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def bad_request(message: str) -> KubeApiError:
    return KubeApiError(400, "BadRequest", message)


def invalid(kind: Kind, name: str, causes: list[Json]) -> KubeApiError:
    unique = list({json.dumps(cause, sort_keys=True): cause for cause in causes}.values())
    rendered = [f"{cause['field']}: {cause['message']}" for cause in unique]
    summary = rendered[0] if len(rendered) == 1 else f"[{', '.join(rendered)}]"
    message = f'{kind.qualified_kind} "{name}" is invalid: {summary}'
    details: Json = {"name": name}
    if kind.group:
        details["group"] = kind.group
    details |= {"kind": kind.kind, "causes": unique}
    return KubeApiError(422, "Invalid", message, details)
