"""Label and field selectors of lists and watches, parsed as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from peeringd.lab.kubeapi.errors import Json, bad_request

__all__ = ["selector"]

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
        raise bad_request(f"unable to parse requirement: {text.strip()!r}")
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
        raise bad_request(f"unable to parse requirement: {op} needs an integer, not {value!r}")
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
        raise bad_request(f"invalid field selector: {text.strip()!r}")
    field, op, value = match.groups()
    if field not in ("metadata.name", "metadata.namespace"):
        raise bad_request(f'field label not supported: "{field}"')
    key = field.removeprefix("metadata.")
    if op == "!=":
        return lambda obj: obj["metadata"].get(key, "") != value
    return lambda obj: obj["metadata"].get(key, "") == value


def selector(query: Mapping[str, str]) -> Callable[[Json], bool]:
    """The labelSelector and fieldSelector of a list or watch, as one predicate."""
    labels = [
        _label_requirement(part) for part in _split_top_level(query.get("labelSelector", "")) if part.strip()
    ]
    fields = [_field_requirement(part) for part in query.get("fieldSelector", "").split(",") if part.strip()]

    def matches(obj: Json) -> bool:
        object_labels = obj["metadata"].get("labels") or {}
        return all(r(object_labels) for r in labels) and all(f(obj) for f in fields)

    return matches
