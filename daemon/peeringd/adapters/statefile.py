"""Reads the desired-state file and validates it into the core model.

The file is read as ruamel.yaml's parser events (libyaml's, through ruamel.yaml.clib,
where it is installed) and built into plain data here, so that every YAML feature a
state file does not need is refused where it stands, before anything is built from it:

- anchors, aliases and merge keys (``&a``, ``*a``, ``<<``): a value is written where it
  applies, so the file reads as it loads, a diff shows every ADC a change touches, and
  an alias bomb (a few lines that expand to billions of values) has nothing to expand;
- tags (``!!binary``, ``!!python/object``, ``!custom``) and directives (``%YAML``):
  the schema alone decides what a value is;
- keys that are lists or mappings, a second document, nesting deeper than the schema's;
- bytes that are not UTF-8, control and bidirectional-override characters, a file over
  1 MiB, a value over 4096 characters, and a last line without its newline (the mark of a
  file cut off while being written).

Every problem is one line, ``file:line:column: field: message``. Nothing here is
partial: either the whole file is valid or ``StateFileError`` lists what was found.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import ScalarNode

from peeringd.adapters import passwords
from peeringd.core import desired
from peeringd.errors import SourceProblem, StateFileError

__all__ = ["MAX_BYTES", "MAX_VALUE", "LoadedState", "field_name", "load", "parse"]

MAX_BYTES = 1 << 20
# The longest value a field takes is a file path (PATH_MAX).
MAX_VALUE = 4096

Path_ = tuple[str | int, ...]
Position = tuple[int, int]

# Characters that are invisible or move the text around: a reviewer would not see what loads.
_FORBIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029"
    "\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]|\r(?!\n)"
)
_FOREIGN_BOMS = {
    codecs.BOM_UTF32_LE: "UTF-32",
    codecs.BOM_UTF32_BE: "UTF-32",
    codecs.BOM_UTF16_LE: "UTF-16",
    codecs.BOM_UTF16_BE: "UTF-16",
}
_YAML_INT = "tag:yaml.org,2002:int"
_YAML_BOOL = "tag:yaml.org,2002:bool"
_YAML_NULL = "tag:yaml.org,2002:null"
# A Python repr too long for a one-line message.
_LONG_REPR = re.compile(r"""'(?:[^'\\]|\\.){60,}'|"(?:[^"\\]|\\.){60,}\"""")
_HINTS: dict[Path_, str] = {("adcs",): " (write adcs: [] for none)"}


@dataclass(frozen=True)
class LoadedState:
    """A valid desired state, where it came from, and where each field stands in it."""

    state: desired.PeeringState
    file: str
    sha256: str
    positions: dict[Path_, Position]

    def locate(self, path: Path_, message: str) -> SourceProblem:
        """A problem at ``path`` of this file, for errors found after loading (a missing key file)."""
        line, column = _nearest(self.positions, path)
        return SourceProblem(self.file, line, column, field_name(path), message)


def load(path: Path, *, secrets: bool = True) -> LoadedState:
    """Read and validate the file at ``path``, and the BGP password files it names; raises
    StateFileError (never a traceback). Without ``secrets`` (``validate``, which may run where
    the secrets are not), a password file that cannot be read is not an error, and its password
    stays unknown; one that can be read is checked all the same."""
    try:
        with path.open("rb") as stream:
            content = stream.read(MAX_BYTES + 1)  # a bigger file is refused unread
    except OSError as error:
        raise StateFileError(
            [SourceProblem(str(path), 1, 1, "", f"cannot read: {error.strerror}")]
        ) from error
    return passwords.read(parse(content, str(path)), required=secrets)


def parse(content: bytes, file: str) -> LoadedState:
    """Validate ``content`` as the file named ``file``; raises StateFileError."""
    text = _text(content, file)
    builder = _Builder(file)
    builder.build(text)
    positions = builder.positions
    try:
        # Relative secret and known_hosts paths are relative to the file, not to the cwd.
        state = desired.PeeringState.model_validate(builder.root, context={"base": Path(file).parent})
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


def _text(content: bytes, file: str) -> str:
    """``content`` as text, refused when it is too big, not UTF-8, holds a character that
    hides what loads, or was cut off in the middle of its last line."""
    if len(content) > MAX_BYTES:
        raise _refused(file, (1, 1), "the file is over 1 MiB, more than any state file needs")
    for bom, encoding in _FOREIGN_BOMS.items():
        if content.startswith(bom):
            raise _refused(file, (1, 1), f"the file is {encoding} text: save it as UTF-8")
    # Windows editors start UTF-8 files with a byte-order mark; YAML allows it there.
    content = content.removeprefix(codecs.BOM_UTF8)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        before = content[: error.start].decode("utf-8")
        where = _position(before, len(before))
        bad = content[error.start : error.end].hex(" ")
        raise _refused(file, where, f"not UTF-8 text (bytes {bad}): save the file as UTF-8") from None
    if not text.strip():
        raise _refused(file, (1, 1), "the file is empty")
    if match := _FORBIDDEN.search(text):
        raise _refused(file, _position(text, match.start()), _forbidden(match.group()))
    if not text.endswith("\n"):
        last = text.rsplit("\n", 1)[-1]
        raise _refused(
            file,
            _position(text, len(text)),
            f"the last line ({_clip(last)!r}) has no newline at its end: the file may have been "
            "cut off while being written; end it with a newline",
        )
    return text


def _forbidden(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if char == "\r":
        return "a carriage return without a line feed: end lines with LF or CRLF"
    if char == "\ufeff":
        return f"a byte-order mark ({code}) belongs only at the start of the file"
    if unicodedata.category(char) == "Cf" or char in "\u2028\u2029":
        name = unicodedata.name(char, code)
        return f"character {code} ({name}) is not allowed: it makes the file show otherwise than it loads"
    return f"control character {code} is not allowed"


@dataclass
class _Frame:
    """A mapping or sequence being built, and the key waiting for its value."""

    container: dict[str, Any] | list[Any]
    path: Path_
    key: str | None = None
    key_lines: dict[str, int] = field(default_factory=dict)


class _Builder:
    """Plain data from parser events, with the position of every value; refuses, at its
    position, anything a state file must not hold."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.root: Any = None
        self.positions: dict[Path_, Position] = {(): (1, 1)}
        self._stack: list[_Frame] = []
        self._documents = 0
        self._yaml = YAML(typ="safe")

    def build(self, text: str) -> None:
        try:
            for event in self._yaml.parse(text):
                self._take(event)
        except MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            reason = error.problem or error.context or "invalid YAML"
            if mark and _char_at(text, mark.line, mark.column) == "\t":
                reason += " (YAML indents with spaces, not tabs)"
            raise _refused(self.file, where, f"invalid YAML: {reason}") from None
        except YAMLError as error:
            raise _refused(self.file, (1, 1), f"invalid YAML: {str(error).splitlines()[0]}") from None
        if not isinstance(self.root, dict):
            raise _refused(
                self.file, (1, 1), "the file must be a mapping with apiVersion, kind, cluster, adcs"
            )

    def _take(self, event: Event) -> None:
        where = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, DocumentStartEvent):
            self._document(event, where)
        elif isinstance(event, CollectionEndEvent):
            self._stack.pop()
        elif isinstance(event, AliasEvent):
            raise self._refused(
                where, f"alias *{event.anchor}: anchors and aliases are not allowed; write the value out"
            )
        elif isinstance(event, ScalarEvent | CollectionStartEvent):
            self._node(event, where)

    def _document(self, event: DocumentStartEvent, where: Position) -> None:
        self._documents += 1
        if self._documents > 1:
            raise self._refused(where, "a second YAML document: a state file is one document")
        if event.version is not None or event.tags:
            raise self._refused(where, "directives (%YAML, %TAG) are not allowed: the file is YAML 1.2")

    def _node(self, event: ScalarEvent | CollectionStartEvent, where: Position) -> None:
        if event.anchor is not None:
            raise self._refused(
                where, f"anchor &{event.anchor}: anchors and aliases are not allowed; write the value out"
            )
        if event.tag is not None:
            raise self._refused(where, f"tag {event.tag}: tags are not allowed; the schema decides each type")
        parent = self._stack[-1] if self._stack else None
        if isinstance(parent, _Frame) and isinstance(parent.container, dict) and parent.key is None:
            self._key(parent, event, where)
            return
        path = self._child_path(parent)
        self.positions[path] = where
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            if len(self._stack) >= _max_depth():
                levels = _max_depth()
                raise self._refused(where, f"nested deeper than peeringd/v1 allows ({levels} levels)", path)
            container: dict[str, Any] | list[Any] = {} if isinstance(event, MappingStartEvent) else []
            self._attach(parent, container)
            self._stack.append(_Frame(container, path))
        else:
            assert isinstance(event, ScalarEvent)
            self._attach(parent, self._scalar(event, path, where))

    def _key(self, parent: _Frame, event: ScalarEvent | CollectionStartEvent, where: Position) -> None:
        if not isinstance(event, ScalarEvent):
            raise self._refused(where, "a key must be a name, not a list or mapping", parent.path)
        key = event.value
        if event.implicit[0] and key == "<<":
            raise self._refused(where, "merge keys (<<) are not allowed", parent.path)
        if len(key) > MAX_VALUE:
            raise self._refused(where, f"a key of {len(key)} characters", parent.path)
        if key in parent.key_lines:
            raise self._refused(
                where, f"appears twice (first on line {parent.key_lines[key]})", (*parent.path, key)
            )
        parent.key_lines[key] = where[0]
        parent.key = key

    def _child_path(self, parent: _Frame | None) -> Path_:
        if parent is None:
            return ()
        if isinstance(parent.container, dict):
            assert parent.key is not None
            return (*parent.path, parent.key)
        return (*parent.path, len(parent.container))

    def _attach(self, parent: _Frame | None, value: Any) -> None:
        if parent is None:
            self.root = value
        elif isinstance(parent.container, dict):
            assert parent.key is not None
            parent.container[parent.key] = value
            parent.key = None
        else:
            parent.container.append(value)

    def _scalar(self, event: ScalarEvent, path: Path_, where: Position) -> Any:
        """A plain scalar as YAML 1.2 types it, but for floats: no field is one, and an
        unquoted asdot AS (1.10) must keep its text, not become 1.1. Quoted ones are text."""
        value = event.value
        if len(value) > MAX_VALUE:
            raise self._refused(where, f"a value of {len(value)} characters (at most {MAX_VALUE})", path)
        if not event.implicit[0]:
            return value
        tag = self._yaml.resolver.resolve(ScalarNode, value, (True, False)).suffix
        if tag == _YAML_INT:
            return self._yaml.constructor.construct_yaml_int(ScalarNode(tag, value))
        if tag == _YAML_BOOL:
            return self._yaml.constructor.construct_yaml_bool(ScalarNode(tag, value))
        if tag == _YAML_NULL:
            return None
        return value

    def _refused(self, where: Position, message: str, path: Path_ = ()) -> StateFileError:
        return _refused(self.file, where, message, path)


@functools.cache
def _max_depth() -> int:
    """How deep the schema nests mappings and lists (the file's top level is 1)."""
    schema = desired.PeeringState.model_json_schema(by_alias=True)
    definitions: dict[str, Any] = schema.get("$defs", {})

    def depth(node: dict[str, Any]) -> int:
        if "$ref" in node:
            return depth(definitions[node["$ref"].rsplit("/", 1)[-1]])
        nested = [depth(alternative) for alternative in node.get("anyOf", [])]
        if "properties" in node:
            nested.append(1 + max(depth(member) for member in node["properties"].values()))
        if "items" in node:
            nested.append(1 + depth(node["items"]))
        return max(nested, default=0)

    return depth(schema)


def _position(text: str, index: int) -> Position:
    """The 1-based line and column of ``text[index]``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n")
    return lines[line][column : column + 1] if line < len(lines) else ""


def _refused(file: str, where: Position, message: str, path: Path_ = ()) -> StateFileError:
    return StateFileError([SourceProblem(file, *where, field_name(path), message)])


def _problem(file: str, positions: dict[Path_, Position], item: ErrorDetails) -> SourceProblem:
    loc = tuple(item["loc"])
    message = str(item["msg"]).removeprefix("Value error, ")
    path = _without_union_tags(loc)
    if item["type"] == "missing":
        message = "is required" + _HINTS.get(path, "")
    elif item["input"] is None and item["type"] in {"tuple_type", "model_type", "dict_type"}:
        message = "has no value" + _HINTS.get(path, "")
    elif item["type"] == "extra_forbidden":
        message = "is not a field of peeringd/v1 (misspelt?)"
    elif item["type"] == "literal_error" or item["type"].endswith(("_type", "_parsing")):
        message = f"{message}, not {_clip(item['input'])!r}"
    message = _LONG_REPR.sub(lambda match: match.group()[:40] + "…" + match.group()[-1], message)
    return SourceProblem(file, *_nearest(positions, loc), field_name(path), message)


def _clip(value: object) -> object:
    return value[:40] + "…" if isinstance(value, str) and len(value) > 60 else value


def _without_union_tags(loc: Path_) -> Path_:
    """pydantic names the member of a union it tried (``int``, ``function-after[...]``)."""
    return tuple(part for part in loc if isinstance(part, int) or not _is_tag(part))


def _is_tag(part: str) -> bool:
    return "[" in part or part in {"int", "str", "bool", "none"}


def _nearest(positions: dict[Path_, Position], path: Path_) -> Position:
    """The position of ``path``, or of its nearest ancestor present in the file."""
    for length in range(len(path), -1, -1):
        if (position := positions.get(path[:length])) is not None:
            return position
    return (1, 1)


def field_name(path: Path_) -> str:
    """``("adcs", 0, "ssh", "host")`` as ``adcs[0].ssh.host``; a key that is not a plain
    name is shown as its repr, so that the message stays one readable line."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{_shown_key(part)}" for part in path).lstrip(
        "."
    )


def _shown_key(key: str) -> str:
    return key if key.isprintable() and len(key) <= 60 and key.strip() == key else repr(_clip(key))
