"""A Kubernetes API server for tests and the embedded lab: Nodes and Calico custom resources.

It serves core v1 Nodes and the cluster-scoped kinds of a directory of CRD files over plain
HTTP with the semantics the official client relies on: discovery, resourceVersion and 409
conflicts, pruning, defaulting and validation from the CRD schema (CEL rules through
cel-python), label and field selectors, watches with 410 Gone, status subresources. Tests
also get fault injection, a request journal and direct access to the store. It listens on
its own socket and talks to nothing else; it is a lab, not a conformant server: no
authentication, no namespaces, no finalizers, no server-side apply, no version conversion.

Built on aiohttp, not kmock: kmock's KubernetesEmulator has no resourceVersion, conflicts,
selectors or schemas, and its KubernetesScaffold routes through a mock DSL whose filters and
error bodies our own store would bypass rather than extend; discovery here is ~100 lines.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
import datetime
import functools
import ipaddress
import json
import logging
import re
import secrets
import socket
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, cast

import celpy
import jsonpatch
import jsonschema
from aiohttp import web
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from ruamel.yaml import YAML

__all__ = [
    "BUNDLED_CRDS",
    "WRITE_VERBS",
    "CalicoApi",
    "JournalEntry",
    "KubeApiError",
    "KubeApiServer",
]

Json = dict[str, Any]
CalicoApi = Literal["v1", "v3", "both", "none"]

# The unmodified upstream CRDs (see crds/README.md); the v3.31.7 set is in a sub-folder.
BUNDLED_CRDS: Final = Path(__file__).with_name("crds")
WRITE_VERBS: Final = ("create", "update", "patch", "delete", "deletecollection")
_FORBIDDEN_USER: Final = "system:serviceaccount:peeringd:peeringd"

_log = logging.getLogger(__name__)

_CALICO_GROUPS: Final[Mapping[str, frozenset[str]]] = {
    "v1": frozenset({"crd.projectcalico.org"}),
    "v3": frozenset({"projectcalico.org"}),
    "both": frozenset({"crd.projectcalico.org", "projectcalico.org"}),
    "none": frozenset(),
}
_ALL_CALICO_GROUPS: Final = _CALICO_GROUPS["both"]
_VERBS: Final = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
_OBJECT_META_FIELDS: Final = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_DNS1123_SUBDOMAIN: Final = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SERVER_VERSION: Final = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T00:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# Kubernetes' generated names end in five characters of this alphabet.
_NAME_SUFFIX_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"


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


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    """One request as the server received it, with the Kubernetes verb it maps to.

    `resource` is the plural, or `plural/status` for the subresource, and None for discovery
    and unknown paths; `group` is "" for the core group.
    """

    method: str
    path: str
    query: Mapping[str, str]
    verb: str
    group: str | None = None
    resource: str | None = None
    name: str | None = None


# --- Schemas: structural pruning, defaults, OpenAPI and CEL validation ----------------------

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _is_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _is_int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


@_FORMATS.checks("cidr")
def _is_cidr(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return False
    return "/" in value


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or _RFC3339.fullmatch(value) is not None


def _json_schema(openapi: Any) -> Any:
    """The OpenAPI v3 schema as JSON Schema draft 4: `nullable` and Go regexps translated."""
    if isinstance(openapi, list):
        return [_json_schema(item) for item in openapi]
    if not isinstance(openapi, dict):
        return openapi
    schema = {key: _json_schema(value) for key, value in openapi.items()}
    if schema.get("nullable") is True and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        # Go accepts "^(?i)..."; Python wants global flags first.
        schema["pattern"] = re.sub(r"^\^\(\?([imsU]+)\)", r"(?\1)^", pattern)
    return schema


def _field(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _shown(value: Any) -> str:
    """A value as Kubernetes shows it in a message: JSON scalars, type names for the rest."""
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _cause(reason: str, field: str, message: str) -> Json:
    return {"reason": reason, "message": message, "field": field}


def _schema_causes(error: jsonschema.ValidationError) -> list[Json]:
    """Kubernetes' wording for one JSON Schema error."""
    field = _field(error.absolute_path)
    value, limit = cast(Any, error.instance), cast(Any, error.validator_value)
    in_body = f"{field} in body"
    match error.validator:
        case "required":
            present = value if isinstance(value, dict) else {}
            return [
                _cause("FieldValueRequired", _field([*error.absolute_path, p]), "Required value")
                for p in limit
                if p not in present
            ]
        case "type":
            got = _type_name(value)
            expected = limit if isinstance(limit, str) else limit[0]
            message = f'Invalid value: "{got}": {in_body} must be of type {expected}: "{got}"'
            return [_cause("FieldValueTypeInvalid", field, message)]
        case "enum":
            supported = ", ".join(json.dumps(v) for v in limit)
            message = f"Unsupported value: {_shown(value)}: supported values: {supported}"
            return [_cause("FieldValueNotSupported", field, message)]
        case "format":
            shown = json.dumps(str(value))
            message = f"Invalid value: {_shown(value)}: {in_body} must be of type {limit}: {shown}"
            return [_cause("FieldValueInvalid", field, message)]
        case "maxLength":
            return [_cause("FieldValueTooLong", field, f"Too long: may not be more than {limit} bytes")]
        case "maxItems":
            message = f"Too many: {len(value)}: must have at most {limit} items"
            return [_cause("FieldValueTooMany", field, message)]
        case "minLength":
            detail = f"should be at least {limit} chars long"
        case "minItems":
            detail = f"should have at least {limit} items"
        case "pattern":
            detail = f"should match '{limit}'"
        case "maximum":
            detail = f"should be less than or equal to {limit}"
        case "minimum":
            detail = f"should be greater than or equal to {limit}"
        case _:
            detail = error.message
    return [_cause("FieldValueInvalid", field, f"Invalid value: {_shown(value)}: {in_body} {detail}")]


@functools.cache
def _cel_program(rule: str) -> celpy.Runner:
    environment = celpy.Environment()
    return environment.program(environment.compile(rule))


_ABSENT: Final = object()


def _cel_causes(value: Any, old: Any, schema: Json, path: list[str | int]) -> list[Json]:
    """The failed `x-kubernetes-validations` rules at and below `value`.

    Transition rules (those naming oldSelf) run only on update, where the old value exists.
    """
    causes: list[Json] = []
    for rule in schema.get("x-kubernetes-validations", ()):
        text: str = rule["rule"]
        activation: dict[str, Any] = {"self": json_to_cel(value)}
        if "oldSelf" in text:
            if old is _ABSENT:
                continue
            activation["oldSelf"] = json_to_cel(old)
        field = _field(path) or "<nil>"
        try:
            result = _cel_program(text).evaluate(activation)
        except CELEvalError as error:
            message = f"Invalid value: {_shown(value)}: rule evaluation error: {error}"
            causes.append(_cause("FieldValueInvalid", field, message))
            continue
        if isinstance(result, celtypes.BoolType) and result:
            continue
        reason = rule.get("reason", "FieldValueInvalid")
        message = rule.get("message") or f"failed rule: {text}"
        rendered = {
            "FieldValueForbidden": f"Forbidden: {message}",
            "FieldValueRequired": f"Required value: {message}",
            "FieldValueDuplicate": f"Duplicate value: {message}",
        }.get(reason, f'Invalid value: "{_type_name(value)}": {message}')
        causes.append(_cause(reason, field, rendered))
    if isinstance(value, dict):
        for key, child in schema.get("properties", {}).items():
            if key in value:
                before = old.get(key, _ABSENT) if isinstance(old, dict) else _ABSENT
                causes += _cel_causes(value[key], before, child, [*path, key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            causes += _cel_causes(item, _ABSENT, schema["items"], [*path, index])
    return causes


def _prune(value: Any, schema: Json, path: str, unknown: list[str]) -> None:
    """Drop what the structural schema does not declare, and nulls it does not allow."""
    if isinstance(value, dict):
        properties: Json = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        for key in list(value):
            child_path = f"{path}.{key}" if path else key
            if key in properties:
                child = properties[key]
            elif isinstance(additional, dict):
                child = additional
            elif preserve or additional is True:
                continue
            else:
                unknown.append(child_path)
                del value[key]
                continue
            if value[key] is None and child.get("nullable") is not True:
                del value[key]
            else:
                _prune(value[key], child, child_path, unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune(item, schema["items"], f"{path}[{index}]", unknown)


def _apply_defaults(value: Any, schema: Json) -> None:
    if isinstance(value, dict):
        for key, child in schema.get("properties", {}).items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                _apply_defaults(value[key], child)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _apply_defaults(item, schema["items"])


class _Schema:
    """One CRD version's openAPIV3Schema, applied as a structural schema is."""

    def __init__(self, openapi: Json) -> None:
        self._openapi = openapi
        self._validator = jsonschema.Draft4Validator(_json_schema(openapi), format_checker=_FORMATS)

    def prune_and_default(self, obj: Json) -> list[str]:
        """Prune then default `obj` in place (metadata aside); return the pruned fields."""
        unknown: list[str] = []
        metadata = obj.pop("metadata", None)
        _prune(obj, self._openapi, "", unknown)
        _apply_defaults(obj, self._openapi)
        if metadata is not None:
            obj["metadata"] = metadata
        return unknown

    def validate(self, obj: Json, old: Json | None) -> list[Json]:
        causes = [c for e in self._validator.iter_errors(obj) for c in _schema_causes(e)]
        if any(cause["reason"] == "FieldValueTypeInvalid" for cause in causes):
            # Like the API server: CEL rules need well-typed input.
            message = (
                'Invalid value: "object": some validation rules were not checked because the'
                " object was invalid; correct the existing errors to complete validation"
            )
            return [*causes, _cause("FieldValueInvalid", "<nil>", message)]
        return causes + _cel_causes(obj, _ABSENT if old is None else old, self._openapi, [])


# --- Kinds and discovery --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class _Kind:
    """One served resource; identity-compared, so it can key the store."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    short_names: tuple[str, ...]
    has_status: bool
    schema: _Schema | None  # None for the built-in Node, which has no CRD

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`bgppeers.crd.projectcalico.org`, or `nodes` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def is_custom(self) -> bool:
        return self.schema is not None

    def details(self, name: str | None) -> Json:
        details: Json = {"name": name} if name is not None else {}
        if self.group:
            details["group"] = self.group
        details["kind"] = self.plural
        return details

    def api_resources(self) -> list[Json]:
        resource: Json = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": False,
            "kind": self.kind,
            "verbs": list(_VERBS),
        }
        if self.short_names:
            resource["shortNames"] = list(self.short_names)
        resources = [resource]
        if self.has_status:
            status_verbs = ["get", "patch", "update"]
            resources.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": False,
                    "kind": self.kind,
                    "verbs": status_verbs,
                }
            )
        return resources


_NODE_KIND: Final = _Kind(
    group="",
    version="v1",
    plural="nodes",
    singular="node",
    kind="Node",
    short_names=("no",),
    has_status=True,
    schema=None,
)


def _load_kinds(directory: Path, calico_api: CalicoApi) -> list[_Kind]:
    """The Node kind plus the served versions of the CRDs in `directory` (not recursive)."""
    if calico_api not in _CALICO_GROUPS:
        raise ValueError(f"calico_api must be one of {sorted(_CALICO_GROUPS)}, not {calico_api!r}")
    wanted = _CALICO_GROUPS[calico_api]
    yaml = YAML(typ="safe", pure=True)
    kinds = [_NODE_KIND]
    for path in sorted(directory.glob("*.yaml")):
        crd = yaml.load(path)
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        group = spec["group"]
        if group in _ALL_CALICO_GROUPS and group not in wanted:
            continue
        if spec.get("scope") != "Cluster":
            raise ValueError(f"{path}: only cluster-scoped kinds are served")
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            kinds.append(
                _Kind(
                    group=group,
                    version=version["name"],
                    plural=names["plural"],
                    singular=names.get("singular", names["kind"].lower()),
                    kind=names["kind"],
                    short_names=tuple(names.get("shortNames", ())),
                    has_status="status" in (version.get("subresources") or {}),
                    schema=_Schema(version["schema"]["openAPIV3Schema"]),
                )
            )
    missing = wanted - {kind.group for kind in kinds}
    if missing:
        raise ValueError(f"{directory} has no CRDs of {', '.join(sorted(missing))}")
    return kinds


class _Registry:
    """The served kinds, found by URL, by `plural.group` and by apiVersion and kind."""

    def __init__(self, kinds: list[_Kind]) -> None:
        self.kinds = kinds
        self._by_url = {(k.group, k.version, k.plural): k for k in kinds}
        self._by_name = {k.qualified: k for k in kinds}
        self._by_type = {(k.api_version, k.kind): k for k in kinds}
        self.groups: dict[str, list[str]] = {}
        for kind in kinds:
            versions = self.groups.setdefault(kind.group, [])
            if kind.version not in versions:
                versions.append(kind.version)

    def at(self, group: str, version: str, plural: str) -> _Kind | None:
        return self._by_url.get((group, version, plural))

    def named(self, resource: str) -> _Kind:
        try:
            return self._by_name[resource]
        except KeyError:
            served = ", ".join(sorted(self._by_name))
            raise ValueError(f"{resource!r} is not served; served: {served}") from None

    def typed(self, api_version: str, kind: str) -> _Kind:
        try:
            return self._by_type[(api_version, kind)]
        except KeyError:
            raise ValueError(f"{api_version} {kind} is not served") from None

    def document(self, parts: list[str]) -> Json | None:
        """The discovery document at a path, or None when the path is not discovery."""
        match parts:
            case []:
                paths = ["/api", "/api/v1", "/apis", "/version"]
                for group, versions in self.groups.items():
                    if group:
                        paths += [f"/apis/{group}"] + [f"/apis/{group}/{v}" for v in versions]
                return {"paths": sorted(paths)}
            case ["version"]:
                return dict(_SERVER_VERSION)
            case ["api"]:
                address = {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                return {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [address],
                }
            case ["api", "v1"]:
                return self._resource_list("", "v1")
            case ["apis"]:
                groups = [self._group(g) for g in self.groups if g]
                return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
            case ["apis", group] if group in self.groups and group:
                return {"kind": "APIGroup", "apiVersion": "v1", **self._group(group)}
            case ["apis", group, version] if version in self.groups.get(group, ()) and group:
                return self._resource_list(group, version)
        return None

    def _group(self, group: str) -> Json:
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in self.groups[group]]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _resource_list(self, group: str, version: str) -> Json:
        kinds = [k for k in self.kinds if (k.group, k.version) == (group, version)]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [resource for kind in kinds for resource in kind.api_resources()],
        }


# --- Errors with the API server's wording ---------------------------------------------------


def _not_found(kind: _Kind, name: str) -> KubeApiError:
    message = f'{kind.qualified} "{name}" not found'
    return KubeApiError(404, "NotFound", message, kind.details(name))


def _path_not_found() -> KubeApiError:
    return KubeApiError(404, "NotFound", "the server could not find the requested resource", {})


def _conflict(kind: _Kind, name: str, why: str) -> KubeApiError:
    message = f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}'
    return KubeApiError(409, "Conflict", message, kind.details(name))


_MODIFIED: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def _bad_request(message: str) -> KubeApiError:
    return KubeApiError(400, "BadRequest", message)


def _invalid(kind: _Kind, name: str, causes: list[Json]) -> KubeApiError:
    unique = list({json.dumps(cause, sort_keys=True): cause for cause in causes}.values())
    rendered = [f"{cause['field']}: {cause['message']}" for cause in unique]
    summary = rendered[0] if len(rendered) == 1 else f"[{', '.join(rendered)}]"
    message = f'{kind.qualified_kind} "{name}" is invalid: {summary}'
    details: Json = {"name": name}
    if kind.group:
        details["group"] = kind.group
    details |= {"kind": kind.kind, "causes": unique}
    return KubeApiError(422, "Invalid", message, details)


def _injected(status: int, entry: JournalEntry, kind: _Kind | None) -> KubeApiError:
    """The error a real server answers with `status` for this request."""
    name = entry.name
    target = kind.qualified if kind is not None else entry.path
    details = kind.details(name) if kind is not None else {}
    match status:
        case 401:
            return KubeApiError(401, "Unauthorized", "Unauthorized")
        case 403:
            named = f' "{name}"' if name is not None else ""
            message = (
                f'{target}{named} is forbidden: User "{_FORBIDDEN_USER}" cannot {entry.verb}'
                f' resource "{entry.resource}" in API group "{entry.group or ""}"'
                " at the cluster scope"
            )
            return KubeApiError(403, "Forbidden", message, details)
        case 404 if kind is not None:
            return _not_found(kind, name or "")
        case 409 if kind is not None:
            return _conflict(kind, name or "", _MODIFIED)
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


# --- Selectors ------------------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"""\s*(?:
        !\s*(?P<absent>[^\s!=<>(),]+)
      | (?P<key>[^\s!=<>(),]+)\s*(?:
            (?P<op>==|=|!=|<|>)\s*(?P<value>[^\s!=<>(),]*)
          | (?P<set_op>in|notin)\s*\((?P<values>[^()]*)\)
        )?
    )\s*""",
    re.VERBOSE,
)


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: `a in (x,y),b` is two requirements."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


_Requirement = Callable[[Mapping[str, str]], bool]


def _label_requirement(text: str) -> _Requirement:
    match = _REQUIREMENT.fullmatch(text)
    if match is None or (match["key"] in ("in", "notin") and not match["op"]):
        raise _bad_request(f"unable to parse requirement: {text.strip()!r}")
    if match["absent"]:
        absent = match["absent"]
        return lambda labels: absent not in labels
    key = match["key"]
    if match["set_op"]:
        values = {v.strip() for v in match["values"].split(",")}
        if match["set_op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    op, value = match["op"], match["value"]
    if op is None:
        return lambda labels: key in labels
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if not value.lstrip("-").isdigit():
        raise _bad_request(f"unable to parse requirement: {op} needs an integer, not {value!r}")
    bound = int(value)

    def compare(labels: Mapping[str, str]) -> bool:
        got = labels.get(key, "")
        if not got.lstrip("-").isdigit():
            return False
        return int(got) > bound if op == ">" else int(got) < bound

    return compare


def _field_requirement(text: str) -> Callable[[Json], bool]:
    match = re.fullmatch(r"\s*([^\s!=]+)\s*(==|=|!=)\s*(\S*)\s*", text)
    if match is None:
        raise _bad_request(f"invalid field selector: {text.strip()!r}")
    field, op, value = match.groups()
    if field not in ("metadata.name", "metadata.namespace"):
        raise _bad_request(f'field label not supported: "{field}"')
    key = field.removeprefix("metadata.")
    if op == "!=":
        return lambda obj: obj["metadata"].get(key, "") != value
    return lambda obj: obj["metadata"].get(key, "") == value


def _selector(query: Mapping[str, str]) -> Callable[[Json], bool]:
    """The labelSelector and fieldSelector of a list or watch, as one predicate."""
    labels = [
        _label_requirement(part) for part in _split_top_level(query.get("labelSelector", "")) if part.strip()
    ]
    fields = [_field_requirement(part) for part in query.get("fieldSelector", "").split(",") if part.strip()]

    def matches(obj: Json) -> bool:
        object_labels = obj["metadata"].get("labels") or {}
        return all(r(object_labels) for r in labels) and all(f(obj) for f in fields)

    return matches


# --- The store ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Event:
    resource_version: int
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    obj: Json
    old: Json | None


@dataclasses.dataclass(eq=False)
class _Watcher:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[_Event | None] = dataclasses.field(default_factory=asyncio.Queue)

    def push(self, event: _Event | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


class _Expired(Exception):
    """The watch asked for events older than the history keeps."""


class _Collection:
    def __init__(self, history_limit: int) -> None:
        self.objects: dict[str, Json] = {}
        self.history: collections.deque[_Event] = collections.deque(maxlen=history_limit)
        self.compacted = 0  # the newest resourceVersion no longer in the history
        self.watchers: set[_Watcher] = set()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(kind: _Kind, obj: Json) -> Json:
    """What a change of bumps metadata.generation."""
    ignored = ("metadata", "status") if kind.has_status else ("metadata",)
    return {key: value for key, value in obj.items() if key not in ignored}


def _with_status(obj: Json, status_from: Json) -> Json:
    """A copy of `obj` with the status of `status_from`: what a status subresource keeps apart."""
    result = copy.deepcopy({key: value for key, value in obj.items() if key != "status"})
    if "status" in status_from:
        result["status"] = copy.deepcopy(status_from["status"])
    return result


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch; `target` is not modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


class _Store:
    """The objects of every kind, one resourceVersion counter, histories and watchers.

    Thread-safe: HTTP handlers and direct callers both go through the lock. Stored objects
    are never mutated, so readers may serialise them outside the lock.
    """

    def __init__(self, kinds: Iterable[_Kind], history_limit: int) -> None:
        self._lock = threading.RLock()
        self._resource_version = 1  # like etcd's: never 0, which watches read as "any"
        self._collections = {kind: _Collection(history_limit) for kind in kinds}

    # Reads

    def get(self, kind: _Kind, name: str) -> Json | None:
        with self._lock:
            return self._collections[kind].objects.get(name)

    def snapshot(self, kind: _Kind) -> tuple[list[Json], int]:
        """Every object sorted by name (as etcd keys are), and the list's resourceVersion."""
        with self._lock:
            objects = self._collections[kind].objects
            return [objects[name] for name in sorted(objects)], self._resource_version

    # Writes

    def create(
        self,
        kind: _Kind,
        body: Json,
        *,
        dry_run: bool = False,
        field_validation: str = "Warn",
        keep_status: bool = False,
    ) -> tuple[Json, list[str]]:
        """Store a new object; `body` becomes the store's. Returns it and the warnings."""
        with self._lock:
            objects = self._collections[kind].objects
            metadata = body.setdefault("metadata", {})
            if not isinstance(metadata, dict):
                raise _bad_request("metadata must be an object")
            if metadata.get("resourceVersion"):
                message = "resourceVersion should not be set on objects to be created"
                raise KubeApiError(500, "InternalError", f"Internal error occurred: {message}")
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = self._generated_name(objects, metadata["generateName"])
            if kind.has_status and kind.is_custom and not keep_status:
                body.pop("status", None)
            warnings = _admit(kind, body, None, field_validation)
            name = metadata["name"]
            if name in objects:
                message = f'{kind.qualified} "{name}" already exists'
                raise KubeApiError(409, "AlreadyExists", message, kind.details(name))
            metadata.pop("generation", None)
            metadata |= {"uid": str(uuid.uuid4()), "creationTimestamp": _now()}
            if kind.is_custom:
                metadata["generation"] = 1
            return (body if dry_run else self._commit(kind, "ADDED", body, None)), warnings

    def update(
        self,
        kind: _Kind,
        name: str,
        body: Json,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
        direct: bool = False,
    ) -> tuple[Json, list[str]]:
        """Replace an object; `direct` skips the resourceVersion check and status rules."""
        with self._lock:
            old = self._collections[kind].objects.get(name)
            if old is None:
                raise _not_found(kind, name)
            metadata = body.setdefault("metadata", {})
            if not isinstance(metadata, dict):
                raise _bad_request("metadata must be an object")
            metadata.setdefault("name", name)
            if metadata["name"] != name:
                raise _bad_request(
                    f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})"
                )
            expected = metadata.get("resourceVersion")
            if expected and not direct and expected != old["metadata"]["resourceVersion"]:
                raise _conflict(kind, name, _MODIFIED)
            if subresource == "status":
                body = _with_status(old, body)
            elif kind.has_status and not direct:
                body = _with_status(body, old)
            warnings = _admit(kind, body, old, field_validation)
            for key in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                body["metadata"].pop(key, None)
                if key in old["metadata"]:
                    body["metadata"][key] = old["metadata"][key]
            if body == old:
                return old, warnings  # a no-op write stores nothing, like etcd's
            if kind.is_custom and _spec_part(kind, body) != _spec_part(kind, old):
                body["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
            return (body if dry_run else self._commit(kind, "MODIFIED", body, old)), warnings

    def patch(
        self,
        kind: _Kind,
        name: str,
        content_type: str,
        patch: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str = "Warn",
    ) -> tuple[Json, list[str]]:
        with self._lock:
            old = self._collections[kind].objects.get(name)
            if old is None:
                raise _not_found(kind, name)
            if content_type == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise _bad_request("a JSON patch must be a list of operations")
                try:
                    patched = jsonpatch.JsonPatch(patch).apply(old)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                    message = f"the server rejected our request due to an error in our request: {error}"
                    raise KubeApiError(422, "Invalid", message, kind.details(name)) from None
            else:
                if not isinstance(patch, dict):
                    raise _bad_request("a merge patch must be a JSON object")
                patched = _merge_patch(old, patch)
            if not isinstance(patched, dict):
                raise _bad_request("the patched object is not a JSON object")
            return self.update(
                kind,
                name,
                patched,
                subresource=subresource,
                dry_run=dry_run,
                field_validation=field_validation,
            )

    def delete(
        self,
        kind: _Kind,
        name: str,
        *,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Json:
        """Remove an object and return its last state, with the deletion's resourceVersion."""
        with self._lock:
            old = self._collections[kind].objects.get(name)
            if old is None:
                raise _not_found(kind, name)
            for key, label in (("resourceVersion", "ResourceVersion"), ("uid", "UID")):
                wanted = (preconditions or {}).get(key)
                if wanted and wanted != old["metadata"].get(key):
                    got = old["metadata"].get(key)
                    why = (
                        f"the {label} in the precondition ({wanted}) does not match the"
                        f" {label} in record ({got}). The object might have been modified"
                    )
                    raise _conflict(kind, name, why)
            return old if dry_run else self._commit(kind, "DELETED", None, old)

    def put(self, kind: _Kind, obj: Json) -> Json:
        """Create or replace whatever the object's state, status included; no version check."""
        with self._lock:
            name = (obj.get("metadata") or {}).get("name")
            if name is not None and name in self._collections[kind].objects:
                return self.update(kind, name, obj, direct=True)[0]
            obj.get("metadata", {}).pop("resourceVersion", None)
            return self.create(kind, obj, keep_status=True)[0]

    # Watches

    def subscribe(self, kind: _Kind, watcher: _Watcher, since: int | None) -> list[_Event]:
        """Register a watcher; return what it must see first.

        Without `since`, synthetic ADDED events for every object; otherwise the history
        after `since`, or _Expired when the history no longer reaches back that far.
        """
        with self._lock:
            collection = self._collections[kind]
            if since is None:
                objects = collection.objects
                backlog = [
                    _Event(int(objects[n]["metadata"]["resourceVersion"]), "ADDED", objects[n], None)
                    for n in sorted(objects)
                ]
            elif since < collection.compacted:
                raise _Expired(f"too old resource version: {since} ({collection.compacted + 1})")
            else:
                backlog = [event for event in collection.history if event.resource_version > since]
            collection.watchers.add(watcher)
            return backlog

    def unsubscribe(self, kind: _Kind, watcher: _Watcher) -> None:
        with self._lock:
            self._collections[kind].watchers.discard(watcher)

    def end_watches(self) -> None:
        with self._lock:
            for collection in self._collections.values():
                for watcher in collection.watchers:
                    watcher.push(None)

    # Internals

    def _commit(
        self,
        kind: _Kind,
        event_type: Literal["ADDED", "MODIFIED", "DELETED"],
        new: Json | None,
        old: Json | None,
    ) -> Json:
        self._resource_version += 1
        collection = self._collections[kind]
        version = str(self._resource_version)
        if new is None:
            assert old is not None  # a deletion has an old object
            stored = {**old, "metadata": {**old["metadata"], "resourceVersion": version}}
            del collection.objects[old["metadata"]["name"]]
        else:
            new["metadata"]["resourceVersion"] = version
            stored = collection.objects[new["metadata"]["name"]] = new
        event = _Event(self._resource_version, event_type, stored, old)
        if len(collection.history) == collection.history.maxlen:
            collection.compacted = collection.history[0].resource_version
        collection.history.append(event)
        for watcher in collection.watchers:
            watcher.push(event)
        return stored

    @staticmethod
    def _generated_name(objects: Mapping[str, Json], prefix: str) -> str:
        while True:
            name = prefix + "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            if name not in objects:
                return name


def _admit(kind: _Kind, obj: Json, old: Json | None, field_validation: str) -> list[str]:
    """Check, prune, default and validate `obj` in place; return the warnings.

    Raises 400 for a wrong kind or (Strict) unknown fields and 422 for invalid objects.
    """
    api_version, kind_name = obj.get("apiVersion"), obj.get("kind")
    if kind.is_custom and (not api_version or not kind_name):
        raise _bad_request(f"Object 'Kind' is missing in '{json.dumps(obj)[:200]}'")
    # The typed decoder of built-in kinds fills in a missing apiVersion and kind.
    if api_version not in (None, kind.api_version):
        raise _bad_request(
            f"the API version in the data ({api_version}) does not match the expected API"
            f" version ({kind.api_version})"
        )
    if kind_name not in (None, kind.kind):
        raise _bad_request(
            f"the kind in the data ({kind_name}) does not match the expected kind ({kind.kind})"
        )
    obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
    metadata: Json = obj["metadata"]
    unknown = [f"metadata.{key}" for key in metadata if key not in _OBJECT_META_FIELDS]
    for field in unknown:
        del metadata[field.removeprefix("metadata.")]
    if kind.schema is not None:
        unknown += kind.schema.prune_and_default(obj)
    if unknown and field_validation == "Strict":
        fields = ", ".join(f'unknown field "{field}"' for field in unknown)
        raise _bad_request(f"strict decoding error: {fields}")
    name = metadata.get("name") or ""
    causes = _name_causes(name)
    if kind.schema is not None:
        causes += kind.schema.validate(obj, old)
    if causes:
        raise _invalid(kind, name, causes)
    # Type, then metadata, then the rest, as the server writes them: easier to read in the lab.
    rest = {key: obj.pop(key) for key in list(obj) if key not in ("apiVersion", "kind", "metadata")}
    obj.update({"metadata": obj.pop("metadata"), **rest})
    return [f'unknown field "{field}"' for field in unknown] if field_validation == "Warn" else []


def _name_causes(name: Any) -> list[Json]:
    if not name:
        message = "Required value: name or generateName is required"
        return [_cause("FieldValueRequired", "metadata.name", message)]
    if not isinstance(name, str) or len(name) > 253:
        message = f"Invalid value: {_shown(name)}: must be no more than 253 characters"
        return [_cause("FieldValueInvalid", "metadata.name", message)]
    if re.fullmatch(_DNS1123_SUBDOMAIN, name) is None:
        message = (
            f"Invalid value: {_shown(name)}: a lowercase RFC 1123 subdomain must consist of lower"
            " case alphanumeric characters, '-' or '.', and must start and end with an"
            " alphanumeric character (e.g. 'example.com', regex used for validation is"
            f" '{_DNS1123_SUBDOMAIN}')"
        )
        return [_cause("FieldValueInvalid", "metadata.name", message)]
    return []


# --- HTTP -----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Rule:
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
class _Fault(_Rule):
    status: int | None = None
    delay: float = 0.0


@dataclasses.dataclass
class _Hook(_Rule):
    callback: Callable[[JournalEntry], None]


@dataclasses.dataclass(frozen=True)
class _Target:
    """What a request addresses: a discovery document or a kind (plus name, subresource)."""

    verb: str
    kind: _Kind | None = None
    name: str | None = None
    subresource: str | None = None
    document: Json | None = None


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


def _json_response(document: Json, status: int = 200, warnings: Iterable[str] = ()) -> web.Response:
    headers = [("Warning", f"299 - {json.dumps(warning)}") for warning in warnings]
    body = json.dumps(document, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def _error_response(error: KubeApiError) -> web.Response:
    response = _json_response(error.status, error.code)
    response.headers.update(error.headers)
    return response


class KubeApiServer:
    """A Kubernetes API server on a background thread with its own asyncio loop.

    Use as a context manager (or `start()` / `stop()`); `url` and `write_kubeconfig()` tell
    clients where it is. `crds` is a directory of CRD YAML files (default: the bundled
    v3.32.1 set); `calico_api` picks which Calico groups are served: "v1"
    (crd.projectcalico.org/v1, a default install), "v3" (projectcalico.org/v3 native CRDs),
    "both" (the aggregated API server over the v1 CRDs; here the two groups are separate
    stores) or "none" (Calico not installed). CRDs of other groups are always served.
    `history_limit` bounds the watch history per kind (older watches get 410 Gone) and
    `journal_limit` the request journal (the oldest entries go first).

    The direct-access methods (`put`, `get`, `objects`, `delete`), the journal, `inject_fault`
    and `before_request` are thread-safe and may be used before `start()`.
    """

    def __init__(
        self,
        crds: Path | str = BUNDLED_CRDS,
        calico_api: CalicoApi = "v1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        history_limit: int = 10_000,
        journal_limit: int = 100_000,
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be at least 1")
        self._registry = _Registry(_load_kinds(Path(crds), calico_api))
        self._store = _Store(self._registry.kinds, history_limit)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._journal: collections.deque[JournalEntry] = collections.deque(maxlen=journal_limit)
        self._faults: list[_Fault] = []
        self._hooks: list[_Hook] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None

    # Lifecycle

    def __enter__(self) -> KubeApiServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind the socket and serve on a background thread; return once it accepts."""
        if self._thread is not None:
            raise RuntimeError("the server has already been started")
        sock = socket.create_server(
            (self._host, self._port),
            family=socket.AF_INET6 if ":" in self._host else socket.AF_INET,
        )
        self._port = sock.getsockname()[1]
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, args=(sock, started), name="kubeapi", daemon=True)
        self._thread.start()
        started.result()

    def stop(self) -> None:
        """End every watch, close the socket and stop the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`; a wildcard host is reached through the loopback."""
        if self._thread is None:
            raise RuntimeError("the server has not been started")
        wildcards = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 (mapped away)
        host = wildcards.get(self._host, self._host)
        return f"http://[{host}]:{self._port}" if ":" in host else f"http://{host}:{self._port}"

    def write_kubeconfig(self, path: Path, *, context: str = "peeringd-lab") -> Path:
        """Write a kubeconfig whose current context points at this server; return `path`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "preferences": {},
        }
        path = Path(path)
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        return path

    # Direct access (no HTTP; watches see these writes)

    def put(self, obj: Mapping[str, Any]) -> Json:
        """Create or replace `obj` (found by apiVersion and kind), status included.

        No resourceVersion check; schema pruning, defaults and validation still apply
        (KubeApiError 422 when invalid). Returns a copy of the stored object.
        """
        kind = self._registry.typed(obj.get("apiVersion", ""), obj.get("kind", ""))
        return copy.deepcopy(self._store.put(kind, copy.deepcopy(dict(obj))))

    def get(self, resource: str, name: str) -> Json | None:
        """A copy of the object, or None; `resource` is e.g. `bgppeers.crd.projectcalico.org`."""
        return copy.deepcopy(self._store.get(self._registry.named(resource), name))

    def objects(self, resource: str) -> list[Json]:
        """Copies of every object of `resource`, sorted by name."""
        return copy.deepcopy(self._store.snapshot(self._registry.named(resource))[0])

    def delete(self, resource: str, name: str) -> bool:
        """Delete the object; False when there was none."""
        try:
            self._store.delete(self._registry.named(resource), name)
        except KubeApiError:
            return False
        return True

    # Journal

    @property
    def journal(self) -> list[JournalEntry]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._journal)

    def count(self, *verbs: str, resource: str | None = None, group: str | None = None) -> int:
        """How many requests had one of `verbs` (all when none) on `resource` in `group`."""
        return sum(
            1
            for entry in self.journal
            if (not verbs or entry.verb in verbs)
            and resource in (None, entry.resource)
            and group in (None, entry.group)
        )

    def clear_journal(self) -> None:
        with self._lock:
            self._journal.clear()

    # Faults and hooks

    def inject_fault(
        self,
        verb: str,
        resource: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` matching requests wait `delay` seconds, then fail with `status`.

        `verb` is a Kubernetes verb (get, list, watch, create, update, patch, delete,
        deletecollection); `resource` a plural or `plural/status`; `name` narrows to one
        object. Without `status` the delayed request is then served normally. The error
        bodies are a real server's (401, 403 with RBAC wording for peeringd's service
        account, 404, 409, 429 with Retry-After, 500, 503, 504).
        """
        if status is None and delay <= 0:
            raise ValueError("a fault needs a status, a delay or both")
        with self._lock:
            self._faults.append(_Fault(verb, resource, name, times, status=status, delay=delay))

    def before_request(
        self,
        verb: str,
        resource: str,
        callback: Callable[[JournalEntry], None],
        *,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """Run `callback` on the server thread just before the next `times` matching requests.

        E.g. `put()` a newer version of an object before a client's update, which then gets
        409 Conflict. An exception in the callback answers the request with a 500. The
        callback blocks the server: it may use the direct-access methods, never HTTP.
        """
        with self._lock:
            self._hooks.append(_Hook(verb, resource, name, times, callback=callback))

    # Serving

    def _serve(self, sock: socket.socket, started: concurrent.futures.Future[None]) -> None:
        assert self._loop is not None  # set by start()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start_site(sock))
        except BaseException as error:
            sock.close()
            started.set_exception(error)
            self._loop.close()
            return
        started.set_result(None)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _start_site(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def _shutdown(self) -> None:
        assert self._stopping is not None  # set by start()
        assert self._runner is not None
        self._stopping.set()
        self._store.end_watches()
        await self._runner.cleanup()

    def _target(self, request: web.Request) -> _Target:
        parts = [part for part in request.path.split("/") if part]
        if request.method == "GET":
            document = self._registry.document(parts)
            if document is not None:
                return _Target("get", document=document)
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return _Target(request.method.lower())
        kind = self._registry.at(group, version, rest[0]) if 1 <= len(rest) <= 3 else None
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) == 3 else None
        if kind is None or subresource not in (None, "status") or (subresource and not kind.has_status):
            return _Target(request.method.lower())
        verb = _verb(request.method, name, _is_true(request.query.get("watch")))
        return _Target(verb or request.method.lower(), kind, name, subresource)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        target = self._target(request)
        kind = target.kind
        resource = None
        if kind is not None:
            resource = f"{kind.plural}/{target.subresource}" if target.subresource else kind.plural
        entry = JournalEntry(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            verb=target.verb,
            group=kind.group if kind is not None else None,
            resource=resource,
            name=target.name,
        )
        try:
            await self._before(entry, kind)
            if target.document is not None:
                return _json_response(target.document)
            if kind is None:
                raise _path_not_found()
            return await self._serve_resource(request, target, kind)
        except KubeApiError as error:
            return _error_response(error)
        except Exception as error:  # a lab server answers every request, even on its own bugs
            _log.exception("kubeapi: %s %s failed", request.method, request.path_qs)
            message = f"Internal error occurred: {error}"
            return _error_response(KubeApiError(500, "InternalError", message))

    async def _before(self, entry: JournalEntry, kind: _Kind | None) -> None:
        """Journal the request, run its callbacks, then its fault if any."""
        with self._lock:
            self._journal.append(entry)
            hooks = [hook for hook in self._hooks if hook.matches(entry)]
            fault = next((fault for fault in self._faults if fault.matches(entry)), None)
            for rule in [*hooks, *([fault] if fault is not None else [])]:
                rule.remaining -= 1
            self._hooks = [hook for hook in self._hooks if hook.remaining > 0]
            self._faults = [fault for fault in self._faults if fault.remaining > 0]
        for hook in hooks:
            hook.callback(entry)
        if fault is not None:
            if fault.delay > 0:
                assert self._stopping is not None  # set by start()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), fault.delay)
            if fault.status is not None:
                raise _injected(fault.status, entry, kind)

    async def _serve_resource(self, request: web.Request, target: _Target, kind: _Kind) -> web.StreamResponse:
        query = request.query
        name, subresource = target.name, target.subresource
        dry_run = _dry_run(query.getall("dryRun", []))
        field_validation = query.get("fieldValidation", "Warn")
        if field_validation not in ("Ignore", "Warn", "Strict"):
            raise _bad_request(
                f'Unsupported value: "{field_validation}": supported values: "Ignore", "Warn", "Strict"'
            )
        match target.verb:
            case "get":
                assert name is not None  # a get has a name
                obj = self._store.get(kind, name)
                if obj is None:
                    raise _not_found(kind, name)
                return _json_response(obj)
            case "list":
                return _json_response(self._list(kind, query))
            case "watch":
                return await self._watch(request, kind)
            case "create":
                body = await _json_object(request)
                obj, warnings = self._store.create(
                    kind, body, dry_run=dry_run, field_validation=field_validation
                )
                return _json_response(obj, 201, warnings)
            case "update":
                assert name is not None  # an update has a name
                body = await _json_object(request)
                obj, warnings = self._store.update(
                    kind,
                    name,
                    body,
                    subresource=subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                )
                return _json_response(obj, 200, warnings)
            case "patch":
                assert name is not None  # a patch has a name
                content_type = _patch_type(request.content_type, kind)
                patch = await _json_body(request)
                obj, warnings = self._store.patch(
                    kind,
                    name,
                    content_type,
                    patch,
                    subresource=subresource,
                    dry_run=dry_run,
                    field_validation=field_validation,
                )
                return _json_response(obj, 200, warnings)
            case "delete":
                assert name is not None  # a delete has a name
                options = await _json_object(request, required=False)
                dry_run = dry_run or _dry_run(options.get("dryRun") or [])
                deleted = self._store.delete(
                    kind, name, preconditions=options.get("preconditions"), dry_run=dry_run
                )
                return _json_response(deleted if kind.is_custom else _success(kind, deleted))
            case "deletecollection":
                matches = _selector(query)
                for obj in self._store.snapshot(kind)[0]:
                    if matches(obj) and not dry_run:
                        with contextlib.suppress(KubeApiError):  # deleted meanwhile
                            self._store.delete(kind, obj["metadata"]["name"])
                return _json_response(_success(kind, None))
        raise KubeApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _list(self, kind: _Kind, query: Mapping[str, str]) -> Json:
        matches = _selector(query)
        objects, resource_version = self._store.snapshot(kind)
        items = [obj for obj in objects if matches(obj)]
        metadata: Json = {"resourceVersion": str(resource_version)}
        token = query.get("continue")
        if token:
            try:
                start = json.loads(base64.urlsafe_b64decode(token))["start"]
            except (ValueError, KeyError, TypeError):
                raise _bad_request("continue key is not valid") from None
            items = [obj for obj in items if obj["metadata"]["name"] > start]
        limit_text = query.get("limit", "") or "0"
        if not limit_text.isdigit():
            raise _bad_request(f'Invalid value: "{limit_text}": limit must be a number')
        limit = int(limit_text)
        if 0 < limit < len(items):
            last = items[limit - 1]["metadata"]["name"]
            state = json.dumps({"rv": resource_version, "start": last}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(state).decode()
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "apiVersion": kind.api_version,
            "kind": f"{kind.kind}List",
            "metadata": metadata,
            "items": items,
        }

    async def _watch(self, request: web.Request, kind: _Kind) -> web.StreamResponse:
        query = request.query
        matches = _selector(query)
        since_text = query.get("resourceVersion", "")
        if since_text not in ("", "0") and not since_text.isdigit():
            raise _bad_request(f'Invalid value: "{since_text}": resourceVersion must be an integer')
        since = int(since_text) if since_text not in ("", "0") else None
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        watcher = _Watcher(loop)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        try:
            backlog = self._store.subscribe(kind, watcher, since)
        except _Expired as expired:
            await response.prepare(request)
            gone = KubeApiError(410, "Expired", str(expired)).status
            await response.write(_event_line("ERROR", gone))
            return response
        try:
            await response.prepare(request)
            for past in backlog:
                await _send(response, past, matches)
            deadline = None if timeout is None else loop.time() + timeout
            while True:
                try:
                    async with asyncio.timeout_at(deadline):  # None: no deadline
                        event = await watcher.queue.get()
                except TimeoutError:
                    break
                if event is None:
                    break
                await _send(response, event, matches)
        except ConnectionError:
            pass  # the client went away
        finally:
            self._store.unsubscribe(kind, watcher)
        return response


def _event_line(event_type: str, obj: Json) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def _send(response: web.StreamResponse, event: _Event, matches: Callable[[Json], bool]) -> None:
    """Send what this watcher sees of `event`: objects entering or leaving its selector
    appear as ADDED or DELETED, as they do on a real server."""
    now = matches(event.obj)
    if event.type == "DELETED":
        seen = "DELETED" if now else None
    else:
        before = event.old is not None and matches(event.old)
        seen = {(True, True): "MODIFIED", (True, False): "ADDED", (False, True): "DELETED"}.get((now, before))
    if seen is not None:
        await response.write(_event_line(seen, event.obj))


def _success(kind: _Kind, deleted: Json | None) -> Json:
    details = kind.details(None if deleted is None else deleted["metadata"]["name"])
    if deleted is not None:
        details["uid"] = deleted["metadata"]["uid"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


def _dry_run(values: Iterable[str]) -> bool:
    values = list(values)
    if any(value != "All" for value in values):
        raise _bad_request(f'Unsupported value: {json.dumps(values)}: supported values: "All"')
    return bool(values)


def _patch_type(content_type: str, kind: _Kind) -> str:
    if content_type in ("application/merge-patch+json", "application/json-patch+json"):
        return content_type
    if content_type == "application/strategic-merge-patch+json" and not kind.is_custom:
        # Treated as a merge patch: lists are replaced, not merged by key.
        return "application/merge-patch+json"
    accepted = "application/json-patch+json, application/merge-patch+json"
    if not kind.is_custom:
        accepted += ", application/strategic-merge-patch+json"
    message = "the body of the request was in an unknown format - accepted media types include: " + accepted
    raise KubeApiError(415, "UnsupportedMediaType", message)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        raise _bad_request(f"the request body is not JSON: {raw[:100]!r}") from None


async def _json_object(request: web.Request, *, required: bool = True) -> Json:
    if not required and not await request.read():
        return {}
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise _bad_request("the request body must be a JSON object")
    return body
