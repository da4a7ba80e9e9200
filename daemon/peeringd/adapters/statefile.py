"""Reads the desired-state file with ruamel.yaml and validates it into the core model.

ruamel's round-trip loader keeps the line and column of every key and value, so
each problem is reported as ``file:line:column: field: message``. Nothing here
is partial: either the whole file is valid or ``StateFileError`` lists every
problem found.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarfloat import ScalarFloat

from peeringd.core import desired
from peeringd.errors import SourceProblem, StateFileError

__all__ = ["LoadedState", "field_name", "load", "parse"]

Path_ = tuple[str | int, ...]
_NUMBER_TOKEN = re.compile(r"[-+0-9._eE]+")


@dataclass(frozen=True)
class LoadedState:
    """A valid desired state, where it came from, and where each field stands in it."""

    state: desired.PeeringState
    file: str
    sha256: str
    positions: dict[Path_, tuple[int, int]]

    def locate(self, path: Path_, message: str) -> SourceProblem:
        """A problem at ``path`` of this file, for errors found after loading (a missing key file)."""
        line, column = _nearest(self.positions, path)
        return SourceProblem(self.file, line, column, field_name(path), message)


def load(path: Path) -> LoadedState:
    """Read and validate the file at ``path``; raises StateFileError (never a traceback)."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise StateFileError(
            [SourceProblem(str(path), 1, 1, "", f"cannot read: {error.strerror}")]
        ) from error
    return parse(content, str(path))


def parse(content: bytes, file: str) -> LoadedState:
    """Validate ``content`` as the file named ``file``; raises StateFileError."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StateFileError([SourceProblem(file, 1, 1, "", f"not UTF-8 text ({error.reason})")]) from error
    document = _yaml_document(text, file)
    positions: dict[Path_, tuple[int, int]] = {(): (1, 1)}
    plain = _plain(document, (), text.splitlines(), positions)
    try:
        # Relative secret and known_hosts paths are relative to the file, not to the cwd.
        state = desired.PeeringState.model_validate(plain, context={"base": Path(file).parent})
    except pydantic.ValidationError as error:
        problems = [_problem(file, positions, item) for item in error.errors()]
        raise StateFileError(sorted(problems, key=lambda p: (p.line, p.column))) from None
    problems = [
        SourceProblem(file, *_nearest(positions, problem.path), field_name(problem.path), problem.message)
        for problem in desired.problems(state)
    ]
    if problems:
        raise StateFileError(problems)
    return LoadedState(state, file, hashlib.sha256(content).hexdigest(), positions)


def _yaml_document(text: str, file: str) -> CommentedMap:
    if not text.strip():
        raise StateFileError([SourceProblem(file, 1, 1, "", "the file is empty")])
    yaml = YAML(typ="rt")
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = error.problem or error.context or "invalid YAML"
        raise StateFileError([SourceProblem(file, line, column, "", f"invalid YAML: {reason}")]) from None
    except YAMLError as error:
        raise StateFileError([SourceProblem(file, 1, 1, "", f"invalid YAML: {error}")]) from None
    if not isinstance(document, CommentedMap):
        raise StateFileError(
            [SourceProblem(file, 1, 1, "", "the file must be a mapping with apiVersion, kind, cluster, adcs")]
        )
    return document


def _plain(node: Any, path: Path_, lines: list[str], positions: dict[Path_, tuple[int, int]]) -> Any:
    """Plain Python data from ruamel's nodes, recording each value's position on the way."""
    if isinstance(node, CommentedMap):
        result = {}
        for key in node:
            line, column = node.lc.value(key)
            positions[(*path, str(key))] = (line + 1, column + 1)
            result[key] = _plain(node[key], (*path, str(key)), lines, positions)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            line, column = node.lc.item(index)
            positions[(*path, index)] = (line + 1, column + 1)
            items.append(_plain(item, (*path, index), lines, positions))
        return items
    if isinstance(node, ScalarFloat) and path in positions:
        # No field is a float: an unquoted asdot AS (1.10) must keep its text, not become 1.1.
        line, column = positions[path]
        token = _NUMBER_TOKEN.match(lines[line - 1], column - 1)
        return token.group() if token else str(node)
    if isinstance(node, str):
        return str(node)
    return node


def _problem(file: str, positions: dict[Path_, tuple[int, int]], item: ErrorDetails) -> SourceProblem:
    loc = tuple(item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "missing":
        message = "is required"
    elif item["type"] == "extra_forbidden":
        message = "is not a field of peeringd/v1 (misspelt?)"
    elif item["type"] == "literal_error" or item["type"].endswith(("_type", "_parsing")):
        message = f"{message}, not {item['input']!r}"
    return SourceProblem(file, *_nearest(positions, loc), field_name(_without_union_tags(loc)), message)


def _without_union_tags(loc: Path_) -> Path_:
    """pydantic names the member of a union it tried (``int``, ``function-after[...]``)."""
    return tuple(part for part in loc if isinstance(part, int) or not _is_tag(part))


def _is_tag(part: str) -> bool:
    return "[" in part or part in {"int", "str", "bool", "none"}


def _nearest(positions: dict[Path_, tuple[int, int]], path: Path_) -> tuple[int, int]:
    """The position of ``path``, or of its nearest ancestor present in the file."""
    for length in range(len(path), -1, -1):
        if (position := positions.get(path[:length])) is not None:
            return position
    return (1, 1)


def field_name(path: Path_) -> str:
    """``("adcs", 0, "ssh", "host")`` as ``adcs[0].ssh.host``."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
