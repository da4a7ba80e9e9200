"""Device replies for the parsers' properties: the recorded outputs in tests/fixtures and
generated ones (ZebOS and FRR running configs, summaries as text and JSON, NetScaler's feature
table and HA state), then mutated the ways a terminal session garbles them.

``check`` is the property: a parser reads a mutated reply as exactly what it reads from the
original, or raises OutputNotUnderstood; a reply it must read (CRLF line ends, an unknown
stanza, trailing blanks) it reads as the original; a running config cut before its ``end``
is always refused. Generated replies read as what they were generated from. Anything else
raised is a failure.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from peeringd.adapters import nscli, zebos
from peeringd.core import live
from peeringd.errors import OutputNotUnderstood
from tests.reliability.runner import Case, Checked

__all__ = ["PARSERS", "PROPERTIES", "Reply", "cases", "check"]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROPERTIES = [
    "every generated reply read as what it was generated from",
    "every reply garbled by whole lines (cut, junk, prompt, pager, escapes, emptied) read as its "
    "original, or raised OutputNotUnderstood",
    "every reply corrupted inside a line gave a typed result, or raised OutputNotUnderstood",
    "CRLF line ends, trailing blanks and unknown stanzas read as the original",
    "a running config cut before its `end` was refused, never read as fewer neighbours",
    "an HA reply never read a secondary as a primary, or the other way",
]

PARSERS: dict[str, Callable[[str], object]] = {
    "running_config": zebos.parse_running_config,
    "bgp_summary": zebos.parse_bgp_summary,
    "bgp_summary_json": zebos.parse_bgp_summary_json,
    "bgp_feature": nscli.parse_bgp_feature,
    "ha_role": nscli.parse_ha_role,
}

# The prompts of the shell each command runs in: vtysh for ZebOS and FRR text, nscli for its own.
VTYSH_PROMPTS = ["ns#", "frr-lab#", "ns(config-router)#", "router(config)#end"]
NSCLI_PROMPTS = [">", "adc-1 - Primary - nsroot> ", "nsroot@adc-1>"]
_NSCLI_PARSERS = {"bgp_feature", "ha_role"}
PAGERS = [
    "--More--",
    " --More-- ",
    "-- More --",
    "--More--\b\b\b\b\b\b\b\b        \b\b\b\b\b\b\b\b",
    "\r        \r",
]
ANSI = ["\x1b[K", "\x1b[7m", "\x1b[m", "\x1b[2J\x1b[H", "\x1b[31m", "\x1b[?25h"]
JUNK = [
    "% Invalid input detected at '^' marker.",
    "ERROR: No such command",
    "#####",
    "@",
    "Done",
    " Done",
    "\x00",
]
UNKNOWN_STANZAS = [
    "ip prefix-list PL seq 5 permit 10.0.0.0/8 le 32",
    "route-map RM permit 10\n set metric 5",
    "line vty",
]


@dataclass(frozen=True)
class Reply:
    """What a parser is given, the reply it was made from, and, for a generated reply, what
    that must read as (a recorded one's reading is what its unmutated parse gives)."""

    parser: str
    original: str
    text: str
    generated: bool = False
    expected: object = None


def _recorded() -> list[tuple[str, str]]:
    """The recorded outputs the parsers read (not those they must refuse)."""
    found = []
    for output in sorted(FIXTURES.glob("*/*/*/output.txt")):
        expected = json.loads((output.parent / "expected.json").read_text())
        if not (isinstance(expected, dict) and "error" in expected):
            found.append((output.parent.parent.name, output.read_bytes().decode()))
    return found


RECORDED = _recorded()

# --- generated replies -------------------------------------------------------------------

_ADDRESSES = st.integers(0, 2**16 - 1).map(lambda low: ipaddress.IPv4Address(0x0A640000 + low))
_DESCRIPTIONS = st.sampled_from(
    ["peeringd:prod-1:node-1", "hand made by ops", "x", "peeringd:lab:node-2.zone"]
)


@st.composite
def _running_config(draw: st.DrawFn) -> tuple[str, zebos.RunningConfig]:
    frr = draw(st.booleans())
    router_as = draw(st.none() | st.integers(1, 4_294_967_295))
    neighbours = draw(
        st.lists(
            st.tuples(_ADDRESSES, st.integers(1, 4_294_967_295), st.none() | _DESCRIPTIONS),
            unique_by=lambda neighbour: neighbour[0],
            max_size=12,
        )
    )
    ebgp, ibgp = draw(st.none() | st.integers(1, 64)), draw(st.none() | st.integers(1, 64))
    route_install = not frr and draw(st.booleans())
    lines = ["Building configuration...", "", "Current configuration:"] if frr else []
    lines += ["!", "hostname r1" if frr else "log syslog", "!"]
    if route_install:
        lines += ["ns route-install bgp", "!"]
    lines += ["interface lo0", " ip address 127.0.0.1/8", "!"]
    if router_as is not None:
        lines.append(f"router bgp {router_as}")
        if frr:
            lines.append(" no bgp ebgp-requires-policy")
        else:
            lines += [
                f" max-paths {kind} {count}" for kind, count in (("ebgp", ebgp), ("ibgp", ibgp)) if count
            ]
        for address, remote_as, description in sorted(neighbours):
            lines.append(f" neighbor {address} remote-as {remote_as}")
            if description is not None:
                lines.append(f" neighbor {address} description {description}")
            if frr:
                lines.append(f" neighbor {address} timers connect 5")
        if frr and (ebgp or ibgp):
            lines += [" !", " address-family ipv4 unicast"]
            lines += [f"  maximum-paths {count}" for count in [ebgp] if count]
            lines += [f"  maximum-paths ibgp {count}" for count in [ibgp] if count]
            lines.append(" exit-address-family")
        lines += ["exit", "!"] if frr else ["!"]
    lines += ["line vty", "!", "end"]
    has_router = router_as is not None
    expected = zebos.RunningConfig(
        router_as=router_as,
        neighbours=tuple(
            live.Neighbour(address=address, remote_as=remote_as, description=description)
            for address, remote_as, description in sorted(neighbours)
        )
        if has_router
        else (),
        max_paths=live.MaxPaths(ebgp=ebgp if has_router else None, ibgp=ibgp if has_router else None),
        route_install=route_install,
    )
    return "\n".join(lines), expected


_STATES = st.sampled_from(["Idle", "Connect", "Active", "OpenSent", "OpenConfirm"])


@st.composite
def _sessions(draw: st.DrawFn) -> list[live.Session]:
    sessions = []
    for address in draw(st.lists(_ADDRESSES, unique=True, max_size=10)):
        if draw(st.booleans()):
            sessions.append(
                live.Session(
                    address=address,
                    state="Established",
                    up_down=draw(st.sampled_from(["00:00:04", "1d00h35m", "5w2d"])),
                    prefixes=draw(st.integers(0, 10**6)),
                )
            )
        else:
            sessions.append(live.Session(address=address, state=draw(_STATES), up_down="never"))
    return sorted(sessions, key=lambda session: session.address)


@st.composite
def _summary(draw: st.DrawFn) -> tuple[str, tuple[live.Session, ...]]:
    sessions = draw(_sessions())
    lines = ["BGP router identifier 10.100.0.1, local AS number 500", "BGP table version is 7", ""]
    lines.append(
        "Neighbor                 V   AS   MsgRcv    MsgSen TblVer   InQ   OutQ    Up/Down   State/PfxRcd"
    )
    for session in sessions:
        last = str(session.prefixes) if session.state == "Established" else session.state
        lines.append(
            f"{session.address!s:24} 4 64512   1207       1190       7      0      0 {session.up_down:>9} {last:>15}"
        )
    established = sum(session.state == "Established" for session in sessions)
    lines += [
        "",
        f"Total number of neighbors {len(sessions)}",
        "",
        f"Total number of Established sessions {established}",
    ]
    return "\n".join(lines), tuple(sessions)


@st.composite
def _summary_json(draw: st.DrawFn) -> tuple[str, tuple[live.Session, ...]]:
    sessions = draw(_sessions())
    peers = {
        str(session.address): {
            "remoteAs": 64512,
            "state": session.state,
            "peerUptime": session.up_down,
            **({"pfxRcd": session.prefixes} if session.prefixes is not None else {}),
            "desc": "peeringd:lab:node",
        }
        for session in sessions
    }
    document = {"ipv4Unicast": {"routerId": "10.100.0.1", "as": 65001, "peers": peers}} if sessions else {}
    return json.dumps(document, indent=draw(st.sampled_from([None, 1, 2]))), tuple(sessions)


@st.composite
def _feature(draw: st.DrawFn) -> tuple[str, bool]:
    on = draw(st.booleans())
    rows = [("Web Logging", "WL"), ("OSPF Routing", "OSPF"), ("BGP Routing", "BGP"), ("Rewrite", "REWRITE")]
    lines = ["", f"{'':8}{'Feature':31}{'Acronym':21}Status", f"{'':8}{'-------':31}{'-------':21}------"]
    for number, (name, acronym) in enumerate(rows, start=1):
        status = ("ON" if on else "OFF") if acronym == "BGP" else draw(st.sampled_from(["ON", "OFF"]))
        lines.append(f"{f' {number})':8}{name:31}{acronym:21}{status}")
    lines.append(" Done")
    return "\n".join(lines), on


@st.composite
def _ha(draw: st.DrawFn) -> tuple[str, nscli.HaRole | None]:
    master = draw(st.sampled_from(["Primary", "Secondary"]))
    inc = draw(st.sampled_from(["ENABLED", "DISABLED"]))
    blocks = [(master, inc, "10.102.33.209 (own)")]
    if draw(st.booleans()):
        blocks.append(("Secondary" if master == "Primary" else "Primary", inc, "10.102.33.208"))
    lines = [""]
    for number, (state, inc_state, address) in enumerate(blocks, start=1):
        lines += [
            f"{number})\tNode ID:      {number - 1}",
            f"\tIP:   {address}",
            "\tNode State: UP",
            f"\tMaster State: {state}",
            "\tFail-Safe Mode: OFF",
            f"\tINC State: {inc_state}",
            "\tSync State: ENABLED",
            "",
        ]
    lines.append(" Done")
    role: nscli.HaRole | None = (
        None if inc == "ENABLED" else "secondary" if master == "Secondary" else "primary"
    )
    return "\n".join(lines), role


_GENERATED: dict[str, st.SearchStrategy[tuple[str, object]]] = {
    "running_config": _running_config(),
    "bgp_summary": _summary(),
    "bgp_summary_json": _summary_json(),
    "bgp_feature": _feature(),
    "ha_role": _ha(),
}

# --- mutations ---------------------------------------------------------------------------


def _line_index(draw: st.DrawFn, lines: list[str]) -> int:
    return draw(st.integers(0, len(lines)))


def _cut(draw: st.DrawFn, text: str) -> str:
    return text[: draw(st.integers(0, max(len(text) - 1, 0)))]


def _cut_at_line_end(draw: st.DrawFn, text: str) -> str:
    lines = text.split("\n")
    return "\n".join(lines[: draw(st.integers(0, len(lines) - 1))])


def _insert(pool: list[str]) -> Callable[[st.DrawFn, str], str]:
    def insert(draw: st.DrawFn, text: str) -> str:
        lines = text.split("\n")
        lines.insert(_line_index(draw, lines), draw(st.sampled_from(pool)))
        return "\n".join(lines)

    return insert


def _ansi(draw: st.DrawFn, text: str) -> str:
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.sampled_from(ANSI)) + text[at:]


def _at_line_start(pool: list[str]) -> Callable[[st.DrawFn, str], str]:
    """Text glued to the start of a line, as a prompt or a pager's is when output resumes."""

    def glue(draw: st.DrawFn, text: str) -> str:
        lines = text.split("\n")
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = draw(st.sampled_from(pool)) + lines[index]
        return "\n".join(lines)

    return glue


def _inside_a_line(pool: st.SearchStrategy[str]) -> Callable[[st.DrawFn, str], str]:
    def splice(draw: st.DrawFn, text: str) -> str:
        at = draw(st.integers(0, len(text)))
        return text[:at] + draw(pool) + text[at:]

    return splice


def _duplicate_chunk(draw: st.DrawFn, text: str) -> str:
    """A stretch of the reply read twice, as a terminal redraw can make it."""
    lines = text.split("\n")
    start = draw(st.integers(0, len(lines) - 1))
    end = draw(st.integers(start, len(lines)))
    return "\n".join(lines[:end] + lines[start:end] + lines[end:])


def _empty(draw: st.DrawFn, text: str) -> str:
    return draw(st.sampled_from(["", "\n", "   \n\n"]))


def _crlf(draw: st.DrawFn, text: str) -> str:
    return text.replace("\n", "\r\n")


def _trailing_blanks(draw: st.DrawFn, text: str) -> str:
    lines = text.split("\n")
    return "\n".join(
        line.removesuffix("\r") + draw(st.sampled_from(["", " ", "  "])) + "\r" * line.endswith("\r")
        for line in lines
    )


def _unknown_stanza(draw: st.DrawFn, text: str) -> str:
    """A stanza peeringd does not know, where stanzas begin: after a `!` line."""
    lines = text.split("\n")
    separators = [index for index, line in enumerate(lines) if line == "!"]
    if not separators:
        return text
    at = draw(st.sampled_from(separators)) + 1
    return "\n".join([*lines[:at], *draw(st.sampled_from(UNKNOWN_STANZAS)).split("\n"), "!", *lines[at:]])


# A parser must read these as the original.
_HARMLESS = {"crlf": _crlf, "trailing-blanks": _trailing_blanks, "unknown-stanza": _unknown_stanza}
# A parser must read these as the original, or refuse them.
_GARBLING = {
    "cut": _cut,
    "cut-at-line-end": _cut_at_line_end,
    "junk-line": _insert(JUNK),
    "vtysh-prompt-line": _insert(VTYSH_PROMPTS),
    "vtysh-prompt-at-line-start": _at_line_start(VTYSH_PROMPTS),
    "nscli-prompt-line": _insert(NSCLI_PROMPTS),
    "nscli-prompt-at-line-start": _at_line_start(NSCLI_PROMPTS),
    "pager-line": _insert(PAGERS),
    "pager-at-line-start": _at_line_start(PAGERS),
    "ansi": _ansi,
    "duplicate-chunk": _duplicate_chunk,
    "empty": _empty,
}
# Text changed inside a line cannot always be told from other text ("routerx bgp 500" is a
# stanza peeringd does not know): a parser must give a typed result or refuse.
_CORRUPTING = {
    "random-text-in-a-line": _inside_a_line(st.text(min_size=1, max_size=12)),
    "prompt-in-a-line": _inside_a_line(st.sampled_from(VTYSH_PROMPTS + NSCLI_PROMPTS)),
}
_MUTATIONS = {**_HARMLESS, **_GARBLING, **_CORRUPTING}
_RESULT_TYPES: dict[str, type | tuple[type, ...]] = {
    "running_config": zebos.RunningConfig,
    "bgp_summary": tuple,
    "bgp_summary_json": tuple,
    "bgp_feature": bool,
    "ha_role": (str, type(None)),
}


@st.composite
def _reply(draw: st.DrawFn) -> Case[Reply]:
    if draw(st.integers(0, 3)) == 0:
        parser, original = draw(st.sampled_from(RECORDED))
        generated, expected = False, None
    else:
        parser = draw(st.sampled_from(sorted(_GENERATED)))
        original, expected = draw(_GENERATED[parser])
        generated = True
    text = original
    mutations: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        # A reply holds only its own shell's prompts: an nscli prompt inside vtysh output
        # ("adc-1 - Primary - nsroot> ns route-install bgp") could pass for a stanza.
        other_shell = "vtysh" if parser in _NSCLI_PARSERS else "nscli"
        name = draw(st.sampled_from(sorted(m for m in _MUTATIONS if not m.startswith(other_shell))))
        text = _MUTATIONS[name](draw, text)
        mutations.append(name)
    return Case(Reply(parser, original, text, generated, expected), tuple(mutations))


def cases() -> st.SearchStrategy[Case[Reply]]:
    return _reply()


def _check_refusal(case: Case[Reply], refusal: str) -> None:
    assert not set(case.mutations) <= set(_HARMLESS), f"a harmless change was refused: {refusal}"
    assert "\n" not in refusal, "a refusal of more than one line"


def check(case: Case[Reply]) -> Checked:
    """The parsers' properties for one reply (AssertionError when one breaks)."""
    reply = case.data
    parse = PARSERS[reply.parser]
    original = parse(reply.original)
    if reply.generated:
        assert reply.expected == original, "a generated reply did not read as generated"
    started = time.perf_counter()
    try:
        read = parse(reply.text)
    except OutputNotUnderstood as error:
        seconds = time.perf_counter() - started
        _check_refusal(case, str(error))
        return Checked(f"{reply.parser}: refused", seconds)
    seconds = time.perf_counter() - started
    assert isinstance(read, _RESULT_TYPES[reply.parser]), f"an untyped result: {read!r}"
    if set(case.mutations) & set(_CORRUPTING):
        return Checked(f"{reply.parser}: read (a line corrupted inside)", seconds)
    if reply.parser == "ha_role":
        assert (read == "secondary") == (original == "secondary"), "a secondary read as a primary, or back"
    else:
        assert read == original, f"read otherwise than the original: {read!r}"
    if reply.parser == "running_config" and case.mutations[-1:] in (("cut",), ("cut-at-line-end",)):
        assert reply.text.rstrip().endswith("end"), "a running config cut before `end` was read"
    return Checked(f"{reply.parser}: read as the original", seconds)
