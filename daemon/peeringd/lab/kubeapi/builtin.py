"""The built-in kinds (Node, Namespace, Secret, Lease) and their hand-written admission.

A built-in kind has no OpenAPI schema here: what the real server's typed decoding, defaulting
and validation do is written out by hand, only as far as the lab needs. Decoding drops
unknown fields (reported like a CRD's pruned fields) and refuses a value of the wrong JSON
type with a 400, as Go's decoder does; validation returns causes for a 422, worded as the
server words them. Node has no admission at all (any spec and status is kept).

Not modelled: the type-specific keys of Secret types (kubernetes.io/tls needs tls.crt...),
Namespace finalization (a deleted Namespace and its objects go at once, see the store).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from peeringd.lab.kubeapi.errors import Json, bad_request, cause, shown
from peeringd.lab.kubeapi.kinds import Kind

__all__ = [
    "IMMORTAL_NAMESPACES",
    "INITIAL_NAMESPACES",
    "KINDS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "SECRETS",
    "Builtin",
    "namespace_object",
]

# What kube-apiserver creates at start; the first three may never be deleted.
INITIAL_NAMESPACES: Final = ("default", "kube-node-lease", "kube-public", "kube-system")
IMMORTAL_NAMESPACES: Final = frozenset({"default", "kube-public", "kube-system"})

_MAX_SECRET_SIZE: Final = 1024 * 1024
_CONFIG_KEY: Final = r"[-._a-zA-Z0-9]+"
# metav1.MicroTime is RFC 3339 with exactly six fractional digits.
_MICRO_TIME: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")
_MICRO_TIME_LAYOUT: Final = "2006-01-02T15:04:05.000000Z07:00"
_LEASE_STRATEGIES: Final = ("OldestEmulationVersion",)


@dataclasses.dataclass(frozen=True)
class _Struct:
    """A Go struct as JSON sees it: field name to a nested struct or a Go type name."""

    name: str
    fields: Mapping[str, _Struct | str]


Validator = Callable[[Json, "Json | None"], list[Json]]
Defaulter = Callable[[Json, "Json | None"], None]


@dataclasses.dataclass(frozen=True)
class Builtin:
    """A built-in kind's admission: decode (prune and type-check), default, validate.

    `label_names`: names are RFC 1123 labels (Namespaces), not subdomains.
    """

    struct: _Struct
    default: Defaulter
    validate: Validator
    label_names: bool = False

    def decode(self, obj: Json, kind: Kind) -> list[str]:
        """Drop unknown fields of `obj` (metadata aside) in place and return them; a value of
        the wrong JSON type raises a 400 worded as Go's decoder words it."""
        unknown: list[str] = []
        try:
            _decode(obj, self.struct, "", unknown)
        except _Undecodable as error:
            raise bad_request(
                f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: {error}'
            ) from None
        return unknown


_TYPE_AND_METADATA: Final = frozenset({"apiVersion", "kind", "metadata"})


class _Undecodable(Exception):
    """A value Go's JSON decoder would not take; the message is the decoder's."""


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _decode(value: Json, struct: _Struct, path: str, unknown: list[str]) -> None:
    """Check `value` against `struct` in place: unknown fields and nulls are dropped."""
    for key in list(value):
        if not path and key in _TYPE_AND_METADATA:
            continue  # checked for every kind by the store
        field_path = f"{path}.{key}" if path else key
        expected = struct.fields.get(key)
        if expected is None:
            unknown.append(field_path)
            del value[key]
            continue
        item = value[key]
        if item is None:  # JSON null is Go's zero value: absent
            del value[key]
            continue
        wrong = _mistyped(item, expected)
        if wrong is not None:
            raise _Undecodable(
                f"json: cannot unmarshal {_json_type(wrong[0])} into Go struct field"
                f" {struct.name}.{field_path} of type {wrong[1]}"
            )
        if isinstance(expected, _Struct):
            _decode(item, expected, field_path, unknown)
        elif expected == "MicroTime":
            if _MICRO_TIME.fullmatch(item) is None:
                raise _Undecodable(f'parsing time "{item}" as "{_MICRO_TIME_LAYOUT}": cannot parse "{item}"')
            # Stored as Go encodes it again: in UTC, with a Z.
            moment = datetime.datetime.fromisoformat(item).astimezone(datetime.UTC)
            value[key] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif expected == "map[string][]byte":
            for data in item.values():
                offset = _base64_error(data)
                if offset is not None:
                    raise _Undecodable(f"illegal base64 data at input byte {offset}")


def _mistyped(value: Any, expected: _Struct | str) -> tuple[Any, str] | None:
    """None when `value` decodes into `expected`; else the offending value and its Go type."""
    if isinstance(expected, _Struct):
        return None if isinstance(value, dict) else (value, expected.name)
    if expected.startswith("map[string]"):
        if not isinstance(value, dict):
            return value, expected
        element = "[]uint8" if expected.endswith("[]byte") else "string"
        return next(((item, element) for item in value.values() if not isinstance(item, str)), None)
    if expected.startswith("[]"):
        if not isinstance(value, list):
            return value, expected
        if expected == "[]string":
            return next(((item, "string") for item in value if not isinstance(item, str)), None)
        return None
    if expected == "int32":
        fits = isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31
        return None if fits else (value, expected)
    if expected == "bool":
        return None if isinstance(value, bool) else (value, expected)
    return None if isinstance(value, str) else (value, expected)  # string types, MicroTime


def _base64_error(text: str) -> int | None:
    """Where standard base64 `text` breaks (Go's "input byte"); None when it decodes."""
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        bad = next((i for i, c in enumerate(text) if not (c.isascii() and (c.isalnum() or c in "+/="))), None)
        return bad if bad is not None else len(text) - (len(text) % 4 or 4)
    return None


def _nothing(_: Json, __: Json | None) -> None:
    return None


def _valid(_: Json, __: Json | None) -> list[Json]:
    return []


# Namespace


def _default_namespace(obj: Json, old: Json | None) -> None:
    """A new Namespace is Active and carries the "kubernetes" finalizer; its spec changes only
    through /finalize (not served), so an update keeps the old one."""
    if old is not None:
        if "spec" in old:
            obj["spec"] = old["spec"]
        else:
            obj.pop("spec", None)
        return
    finalizers = obj.setdefault("spec", {}).setdefault("finalizers", [])
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")
    obj["status"] = {"phase": "Active"}


def namespace_object(name: str) -> Json:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


# Secret


def _default_secret(obj: Json, _: Json | None) -> None:
    """stringData is write-only: merged into data (over it) and dropped; the type defaults to Opaque."""
    plain = obj.pop("stringData", None) or {}
    if plain:
        data = obj.setdefault("data", {})
        data.update({key: base64.b64encode(value.encode()).decode() for key, value in plain.items()})
    if not obj.get("type"):
        obj["type"] = "Opaque"


def _validate_secret(obj: Json, old: Json | None) -> list[Json]:
    causes: list[Json] = []
    data: Mapping[str, str] = obj.get("data") or {}
    for key in data:
        if len(key) > 253 or re.fullmatch(_CONFIG_KEY, key) is None:
            message = (
                f"Invalid value: {shown(key)}: a valid config key must consist of alphanumeric"
                " characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name',"
                f" regex used for validation is '{_CONFIG_KEY}')"
            )
            causes.append(cause("FieldValueInvalid", f"data[{key}]", message))
    if sum(len(base64.b64decode(value)) for value in data.values()) > _MAX_SECRET_SIZE:
        message = f"Too long: must have at most {_MAX_SECRET_SIZE} bytes"
        causes.append(cause("FieldValueTooLong", "data", message))
    if old is None:
        return causes
    if obj.get("type") != old.get("type"):
        message = f"Invalid value: {shown(obj.get('type'))}: field is immutable"
        causes.append(cause("FieldValueInvalid", "type", message))
    if old.get("immutable"):
        forbidden = "Forbidden: field is immutable when `immutable` is set"
        if not obj.get("immutable"):
            causes.append(cause("FieldValueForbidden", "immutable", forbidden))
        if (obj.get("data") or {}) != (old.get("data") or {}):
            causes.append(cause("FieldValueForbidden", "data", forbidden))
    return causes


# Lease


def _validate_lease(obj: Json, _: Json | None) -> list[Json]:
    spec: Json = obj.get("spec") or {}
    causes: list[Json] = []
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and duration <= 0:
        message = f"Invalid value: {duration}: must be greater than 0"
        causes.append(cause("FieldValueInvalid", "spec.leaseDurationSeconds", message))
    transitions = spec.get("leaseTransitions")
    if transitions is not None and transitions < 0:
        message = f"Invalid value: {transitions}: must be greater than or equal to 0"
        causes.append(cause("FieldValueInvalid", "spec.leaseTransitions", message))
    strategy = spec.get("strategy")
    if strategy and strategy not in _LEASE_STRATEGIES:
        supported = ", ".join(f'"{name}"' for name in _LEASE_STRATEGIES)
        message = f"Unsupported value: {shown(strategy)}: supported values: {supported}"
        causes.append(cause("FieldValueNotSupported", "spec.strategy", message))
    if spec.get("preferredHolder") and not strategy:
        message = "Forbidden: may only be specified if `strategy` is defined"
        causes.append(cause("FieldValueForbidden", "spec.preferredHolder", message))
    return causes


_NAMESPACE_STRUCT: Final = _Struct(
    "Namespace",
    {
        "spec": _Struct("NamespaceSpec", {"finalizers": "[]string"}),
        "status": _Struct("NamespaceStatus", {"phase": "string", "conditions": "[]NamespaceCondition"}),
    },
)
_SECRET_STRUCT: Final = _Struct(
    "Secret",
    {"data": "map[string][]byte", "stringData": "map[string]string", "type": "string", "immutable": "bool"},
)
_LEASE_STRUCT: Final = _Struct(
    "Lease",
    {
        "spec": _Struct(
            "LeaseSpec",
            {
                "holderIdentity": "string",
                "leaseDurationSeconds": "int32",
                "acquireTime": "MicroTime",
                "renewTime": "MicroTime",
                "leaseTransitions": "int32",
                "strategy": "string",
                "preferredHolder": "string",
            },
        )
    },
)

NODES: Final = Kind(
    group="",
    version="v1",
    plural="nodes",
    singular="node",
    kind="Node",
    short_names=("no",),
    has_status=True,
    schema=None,
)
NAMESPACES: Final = Kind(
    group="",
    version="v1",
    plural="namespaces",
    singular="namespace",
    kind="Namespace",
    short_names=("ns",),
    has_status=True,
    schema=None,
    builtin=Builtin(_NAMESPACE_STRUCT, _default_namespace, _valid, label_names=True),
)
SECRETS: Final = Kind(
    group="",
    version="v1",
    plural="secrets",
    singular="secret",
    kind="Secret",
    short_names=(),
    has_status=False,
    schema=None,
    namespaced=True,
    builtin=Builtin(_SECRET_STRUCT, _default_secret, _validate_secret),
)
LEASES: Final = Kind(
    group="coordination.k8s.io",
    version="v1",
    plural="leases",
    singular="lease",
    kind="Lease",
    short_names=(),
    has_status=False,
    schema=None,
    namespaced=True,
    builtin=Builtin(_LEASE_STRUCT, _nothing, _validate_lease),
)
KINDS: Final = (NODES, NAMESPACES, SECRETS, LEASES)
