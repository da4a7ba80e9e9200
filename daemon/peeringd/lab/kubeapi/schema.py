"""CRD schemas applied as the API server applies structural schemas: pruning, defaults,
OpenAPI validation (jsonschema) and the CEL rules of `x-kubernetes-validations` (cel-python)."""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any, Final, cast

import celpy
import jsonschema
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError

from peeringd.lab.kubeapi.errors import Json, cause, shown

__all__ = ["Schema"]

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


def _schema_causes(error: jsonschema.ValidationError) -> list[Json]:
    """Kubernetes' wording for one JSON Schema error."""
    field = _field(error.absolute_path)
    value, limit = cast(Any, error.instance), cast(Any, error.validator_value)
    in_body = f"{field} in body"
    match error.validator:
        case "required":
            present = value if isinstance(value, dict) else {}
            return [
                cause("FieldValueRequired", _field([*error.absolute_path, p]), "Required value")
                for p in limit
                if p not in present
            ]
        case "type":
            got = _type_name(value)
            expected = limit if isinstance(limit, str) else limit[0]
            message = f'Invalid value: "{got}": {in_body} must be of type {expected}: "{got}"'
            return [cause("FieldValueTypeInvalid", field, message)]
        case "enum":
            supported = ", ".join(json.dumps(v) for v in limit)
            message = f"Unsupported value: {shown(value)}: supported values: {supported}"
            return [cause("FieldValueNotSupported", field, message)]
        case "format":
            quoted = json.dumps(str(value))
            message = f"Invalid value: {shown(value)}: {in_body} must be of type {limit}: {quoted}"
            return [cause("FieldValueInvalid", field, message)]
        case "maxLength":
            return [cause("FieldValueTooLong", field, f"Too long: may not be more than {limit} bytes")]
        case "maxItems":
            message = f"Too many: {len(value)}: must have at most {limit} items"
            return [cause("FieldValueTooMany", field, message)]
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
    return [cause("FieldValueInvalid", field, f"Invalid value: {shown(value)}: {in_body} {detail}")]


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
            message = f"Invalid value: {shown(value)}: rule evaluation error: {error}"
            causes.append(cause("FieldValueInvalid", field, message))
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
        causes.append(cause(reason, field, rendered))
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


class Schema:
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
            return [*causes, cause("FieldValueInvalid", "<nil>", message)]
        return causes + _cel_causes(obj, _ABSENT if old is None else old, self._openapi, [])
