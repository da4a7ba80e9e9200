"""State files for the loader's properties: valid documents written in many YAML styles,
then mutated (cut, spliced, re-encoded, salted with every YAML feature a state file refuses).

``check`` is the property: each file loads, and then as exactly what was written when it was
not mutated, or is refused with one-line problems that name this file and a line and column
inside it. Anything else raised is a failure.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from peeringd.adapters import statefile
from peeringd.core import desired
from peeringd.errors import StateFileError
from tests.reliability.runner import Case, Checked

__all__ = ["FILE", "PROPERTIES", "cases", "check"]

FILE = "/etc/peeringd/fuzz.yaml"
PROPERTIES = [
    "every file was valid or refused with problems naming the file, a line and a column inside it",
    "every problem was one printable line of at most 400 characters",
    "every unmutated file loaded as exactly the document it was written from",
    "a file cut off in the middle of a line never loaded",
]

# Lines a state file must refuse, or that make its YAML invalid; spliced in anywhere.
HOSTILE = [
    "x: &a [1, 2]",
    "y: *a",
    "<<: {mode: observe}",
    "  <<: *a",
    "adcs: !!python/object/apply:os.system [id]",
    "mode: !!binary b2JzZXJ2ZQ==",
    "name: !local x",
    "! x",
    "? [a, b]\n: c",
    "{a: 1}: b",
    "---",
    "...",
    "%YAML 1.1",
    "%TAG ! tag:example.com,2000:",
    "- item",
    "key: 'unterminated",
    'key: "unterminated',
    "key: |\n  block\n text",
    "key: >-\n",
    "@reserved",
    "`backtick",
    "{",
    "}]",
    "[[[[[[[[[[",
    "a: b: c",
    "\t",
    "\x00",
    "\x1b[31m",
    "\u202e",
    "\ufeff",
    "\r",
    "\x85",
    "\u2028",
    "\udcff",
    "# comment",
    "a" * 5000,
    "k: " + "[" * 20_000 + "]" * 20_000,
    "k: " + "{a: " * 3_000 + "1" + "}" * 3_000,
    "l0: &l0 [0,0,0,0,0,0,0,0,0]\nl1: &l1 [*l0,*l0,*l0,*l0,*l0,*l0,*l0,*l0,*l0]\n"
    "l2: &l2 [*l1,*l1,*l1,*l1,*l1,*l1,*l1,*l1,*l1]\nl3: [*l2,*l2,*l2,*l2,*l2,*l2,*l2,*l2,*l2]",
]
# What a plain scalar may not hold in block or flow context, or what would type it otherwise.
_NEEDS_QUOTES = re.compile(r"^$|^[-?:!&*|>'\"%@`#]|[,\[\]{}#]|: |^-?\d+$")


def _adc(index: int, draw: st.DrawFn) -> dict[str, Any]:
    platform = draw(st.sampled_from([None, "netscaler", "frr"]))
    credentials = draw(
        st.sampled_from(
            [
                {"passwordFile": f"secrets/adc-{index}.password"},
                {"keyFile": f"/etc/peeringd/adc-{index}.key"},
                {"passwordFile": "p", "keyFile": "k"},
            ]
        )
    )
    ssh: dict[str, Any] = {"host": f"adc-{index}.example.net", "username": "nsroot", **credentials}
    if draw(st.booleans()):
        ssh["port"] = draw(st.integers(1, 65535))
    if draw(st.booleans()):
        ssh["knownHostsFile"] = "/etc/peeringd/known_hosts"
    entry: dict[str, Any] = {
        "name": f"adc-{index}",
        "asNumber": draw(_as_numbers()),
        "peerIP": f"10.1.{index}.1",
        "ssh": ssh,
    }
    if platform is not None:
        entry["platform"] = platform
    if draw(st.booleans()):
        entry["maxPaths"] = draw(
            st.fixed_dictionaries({}, optional={"ebgp": st.integers(1, 64), "ibgp": st.integers(1, 64)})
        )
    if platform != "frr" and draw(st.booleans()):
        entry["installRoutes"] = draw(st.booleans())
    if draw(st.booleans()):
        entry["saveConfig"] = draw(st.booleans())
    return entry


def _as_numbers() -> st.SearchStrategy[int | str]:
    return st.integers(1, 2_147_483_647) | st.tuples(st.integers(1, 32767), st.integers(0, 65535)).map(
        lambda parts: f"{parts[0]}.{parts[1]}"
    )


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid state as plain data, every optional part present or not."""
    cluster: dict[str, Any] = {
        "name": draw(st.sampled_from(["prod-1", "a", "lab"])),
        "podCIDR": draw(st.sampled_from(["192.168.0.0/16", "172.16.0.0/12"])),
        "asNumber": draw(_as_numbers()),
    }
    if draw(st.booleans()):
        cluster["nodeToNodeMesh"] = draw(st.booleans())
    if draw(st.booleans()):
        cluster["nodes"] = {
            "selector": draw(st.sampled_from(["", "role=edge", "zone in (a,b), !spot"])),
            "exclude": draw(st.lists(st.sampled_from(["node-1", "node-2.x"]), unique=True)),
        }
    document: dict[str, Any] = {
        "apiVersion": "peeringd/v1",
        "kind": "PeeringState",
        "cluster": cluster,
        "adcs": [_adc(index, draw) for index in range(draw(st.integers(0, 3)))],
    }
    if draw(st.booleans()):
        document["policy"] = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "mode": st.sampled_from(["enforce", "observe"]),
                    "interval": st.sampled_from(["60s", "5m", "1h30m", 300]),
                    "maxDeletes": st.integers(0, 100),
                    "allowEmpty": st.booleans(),
                    "allowASChange": st.booleans(),
                },
            )
        )
    return document


@st.composite
def rendered(draw: st.DrawFn, document: dict[str, Any]) -> str:
    """``document`` as YAML: block or flow, keys in any order, plain or quoted, commented."""
    indent = draw(st.sampled_from([2, 4]))
    lines: list[str] = []
    if draw(st.booleans()):
        lines.append("# yaml-language-server: $schema=./peering.schema.json")
    if draw(st.booleans()):
        lines.append("---")
    _block(draw, document, 0, indent, lines)
    if draw(st.booleans()):
        lines.append("...")
    return "\n".join(lines) + "\n"


def _block(draw: st.DrawFn, mapping: dict[str, Any], depth: int, indent: int, lines: list[str]) -> None:
    pad = " " * depth
    keys = list(mapping)
    if draw(st.booleans()):
        keys = draw(st.permutations(keys))
    for key in keys:
        value = mapping[key]
        if draw(st.integers(0, 9)) == 0:
            lines.append(f"{pad}# about {key}")
        if isinstance(value, dict | list) and value and draw(st.integers(0, 3)) != 0:
            lines.append(f"{pad}{key}:")
            if isinstance(value, dict):
                _block(draw, value, depth + indent, indent, lines)
            else:
                item_pad = pad + (" " * indent if draw(st.booleans()) else "")
                for item in value:
                    _item(draw, item, item_pad, indent, lines)
        else:
            comment = "  # note" if draw(st.integers(0, 9)) == 0 else ""
            lines.append(f"{pad}{key}: {_flow(draw, value)}{comment}")


def _item(draw: st.DrawFn, item: Any, pad: str, indent: int, lines: list[str]) -> None:
    if not isinstance(item, dict) or draw(st.integers(0, 3)) == 0:
        lines.append(f"{pad}- {_flow(draw, item)}")
        return
    inner: list[str] = []
    _block(draw, item, len(pad) + 2, indent, inner)
    while inner[0].lstrip().startswith("#"):  # a comment cannot open the item
        lines.append(inner.pop(0))
    lines.append(f"{pad}- {inner[0].lstrip()}")
    lines.extend(inner[1:])


def _flow(draw: st.DrawFn, value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(draw, item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(draw, item) for item in value) + "]"
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", "True", "TRUE"] if value else ["false", "False", "FALSE"]))
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, str)
    style = draw(st.sampled_from(["plain", "single", "double"]))
    if style == "plain" and not _NEEDS_QUOTES.search(value):
        return value  # an unquoted asdot AS (1.10) stays text: no field is a float
    if style == "single":
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)


def _mutated(draw: st.DrawFn, text: str) -> tuple[bytes, tuple[str, ...]]:
    content = text.encode()
    mutations: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(sorted(_MUTATIONS)))
        content = _MUTATIONS[mutation](draw, content)
        mutations.append(mutation)
    return content, tuple(mutations)


def _offset(draw: st.DrawFn, content: bytes) -> int:
    return draw(st.integers(0, len(content)))


def _line_starts(content: bytes) -> list[int]:
    return [0, *(index + 1 for index, byte in enumerate(content) if byte == 0x0A)]


def _cut(draw: st.DrawFn, content: bytes) -> bytes:
    return content[: _offset(draw, content)]


def _cut_at_line_end(draw: st.DrawFn, content: bytes) -> bytes:
    return content[: draw(st.sampled_from(_line_starts(content)))]


def _splice(draw: st.DrawFn, content: bytes) -> bytes:
    at = _offset(draw, content)
    return content[:at] + draw(st.sampled_from(HOSTILE)).encode("utf-8", "surrogatepass") + content[at:]


def _insert_line(draw: st.DrawFn, content: bytes) -> bytes:
    at = draw(st.sampled_from(_line_starts(content)))
    pad = " " * draw(st.sampled_from([0, 2, 4]))
    line = (pad + draw(st.sampled_from(HOSTILE)) + "\n").encode("utf-8", "surrogatepass")
    return content[:at] + line + content[at:]


def _replace_value(draw: st.DrawFn, content: bytes) -> bytes:
    """Some line's value replaced with any text."""
    lines = content.split(b"\n")
    index = draw(st.integers(0, len(lines) - 1))
    key, colon, _ = lines[index].partition(b":")
    replacement = draw(st.text(max_size=40)).encode("utf-8", "surrogatepass")
    lines[index] = key + (colon or b":") + b" " + replacement
    return b"\n".join(lines)


def _random_bytes(draw: st.DrawFn, content: bytes) -> bytes:
    at = _offset(draw, content)
    return content[:at] + draw(st.binary(min_size=1, max_size=8)) + content[at + draw(st.integers(0, 4)) :]


def _line_shuffle(draw: st.DrawFn, content: bytes) -> bytes:
    lines = content.split(b"\n")
    first, second = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent"]))
    if action == "delete":
        del lines[first]
    elif action == "duplicate":
        lines.insert(second, lines[first])
    elif action == "swap":
        lines[first], lines[second] = lines[second], lines[first]
    elif action == "indent":
        lines[first] = b" " * draw(st.integers(1, 3)) + lines[first]
    else:
        lines[first] = lines[first].lstrip()
    return b"\n".join(lines)


def _encoding(draw: st.DrawFn, content: bytes) -> bytes:
    text = content.decode("utf-8", "surrogateescape")
    encoding = draw(st.sampled_from(["crlf", "utf-8-bom", "utf-16", "utf-32", "latin-1-accent"]))
    if encoding == "crlf":
        return content.replace(b"\n", b"\r\n")
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + content
    if encoding == "latin-1-accent":
        return content.replace(b"prod", b"pr\xf6d")
    return text.encode(encoding, "replace")


def _no_final_newline(draw: st.DrawFn, content: bytes) -> bytes:
    return content.rstrip(b"\n")


def _second_document(draw: st.DrawFn, content: bytes) -> bytes:
    return content + b"---\n" + content


def _oversize(draw: st.DrawFn, content: bytes) -> bytes:
    return content + b"#" * (statefile.MAX_BYTES - len(content) + draw(st.integers(1, 10))) + b"\n"


def _unicode_junk(draw: st.DrawFn, content: bytes) -> bytes:
    at = _offset(draw, content)
    return (
        content[:at] + draw(st.text(min_size=1, max_size=20)).encode("utf-8", "surrogatepass") + content[at:]
    )


_MUTATIONS = {
    "cut": _cut,
    "cut-at-line-end": _cut_at_line_end,
    "splice-hostile": _splice,
    "insert-hostile-line": _insert_line,
    "replace-value": _replace_value,
    "random-bytes": _random_bytes,
    "move-lines": _line_shuffle,
    "re-encode": _encoding,
    "no-final-newline": _no_final_newline,
    "second-document": _second_document,
    "over-1-MiB": _oversize,
    "unicode-junk": _unicode_junk,
}


@st.composite
def _written(draw: st.DrawFn) -> Case[tuple[bytes, dict[str, Any]]]:
    document = draw(documents())
    content, mutations = _mutated(draw, draw(rendered(document)))
    return Case((content, document), mutations)


def cases() -> st.SearchStrategy[Case[tuple[bytes, dict[str, Any]]]]:
    """Mostly written-then-mutated files; some bytes and text from nowhere."""
    anything: st.SearchStrategy[Case[tuple[bytes, dict[str, Any]]]] = st.one_of(
        st.binary(max_size=200).map(lambda data: Case((data, {}), ("random-bytes-file",))),
        st.text(max_size=200).map(
            lambda text: Case((text.encode("utf-8", "surrogatepass"), {}), ("random-text-file",))
        ),
    )
    return st.one_of(_written(), _written(), _written(), anything)


def check(case: Case[tuple[bytes, dict[str, Any]]]) -> Checked:
    """The loader's properties for one file (AssertionError when one breaks)."""
    content, document = case.data
    started = time.perf_counter()
    try:
        loaded = statefile.parse(content, FILE)
    except StateFileError as error:
        seconds = time.perf_counter() - started
        _check_problems(error, content)
        return Checked(f"refused: {_reason(error)}", seconds)
    seconds = time.perf_counter() - started
    assert content.endswith(b"\n"), "a file whose last line has no newline (cut off?) loaded"
    if not document:
        return Checked("valid", seconds)
    written = desired.PeeringState.model_validate(document, context={"base": Path(FILE).parent})
    if not case.mutations:
        assert written == loaded.state, "the file did not load as what was written"
    if written == loaded.state:
        return Checked("valid, as written", seconds)
    if "cut-at-line-end" in case.mutations:
        return Checked("valid but less than written: cut at a line end (the documented limit)", seconds)
    return Checked("valid, otherwise than written: a mutation that is itself a valid edit", seconds)


def _check_problems(error: StateFileError, content: bytes) -> None:
    assert error.problems, "a refusal without a problem"
    lines = content.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "replace").split("\n")
    for problem in error.problems:
        shown = str(problem)
        assert problem.file == FILE, shown
        assert 1 <= problem.line <= len(lines), shown
        assert 1 <= problem.column <= len(lines[problem.line - 1]) + 1, shown
        assert shown.isprintable(), shown
        assert len(shown) <= 400, shown
        assert problem.message, shown


def _reason(error: StateFileError) -> str:
    """The first problem's kind: its message without values, numbers and names."""
    message = error.problems[0].message
    if message.startswith("the last line"):
        return "the last line has no newline at its end"
    message = re.sub(r"'[^']*'|\"[^\"]*\"|\([^)]*\)|tag:\S+|[&*!]\S+|U\+[0-9A-F]+|\d+", "…", message)
    return message.split(":")[0][:60] if not message.startswith("invalid YAML") else message[:60]
