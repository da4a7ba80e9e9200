"""ZebOS-family text: parsers of device output and renderers of configuration lines.

Pure functions over text, no transport here: the NetScaler and FRR drivers use
them, and tests feed them recorded outputs. NetScaler's vtysh (ZebOS) and FRR
share the syntax of ``router bgp`` and ``neighbor`` lines; what differs between
them lives in one ``Dialect`` each.

Parsers read what real devices add (banners, echoed commands, a trailing prompt,
blank lines, ``!`` separators, unknown stanzas, default ``max-paths`` lines) and
raise ``OutputNotUnderstood`` for a reply they cannot read with confidence: cut
off, paged, with a prompt or terminal escapes inside. Renderers refuse any token
that could break a command line before a single line is produced.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from pydantic import TypeAdapter

from peeringd.adapters import replies
from peeringd.core import asn, live, nodes, secret
from peeringd.core.plan import (
    Action,
    Change,
    FeatureChange,
    MaxPathsChange,
    NeighbourChange,
    NeighbourSpec,
    RouteInstallChange,
    RouterChange,
    SaveChange,
)
from peeringd.errors import OutputNotUnderstood

__all__ = [
    "FRR",
    "NETSCALER",
    "Dialect",
    "RenderError",
    "RunningConfig",
    "Step",
    "parse_bgp_summary",
    "parse_bgp_summary_json",
    "parse_running_config",
    "parse_startup_config",
    "redacted",
    "render",
    "unmet",
]

# A description may reach the device only from this charset: no space, quote or control.
_DESCRIPTION = re.compile(r"[A-Za-z0-9._:/-]{1,80}")
# `neighbor X password WORD`, or an obfuscated `password 8 WORD`: what follows is never shown.
_PASSWORD_VALUE = re.compile(r"(\bpassword\s+)\S.*")
_OBFUSCATED = re.compile(r"([1-9]) (\S+)")
_SESSION_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Clearing")


class RenderError(ValueError):
    """A value is not safe to put on a device command line; nothing was rendered."""


@dataclass(frozen=True)
class Dialect:
    """What one platform's BGP configuration syntax does its own way."""

    name: str
    # FRR closes stanzas with `exit`; ZebOS prints `!` only.
    stanza_end: str
    # ZebOS: `max-paths ebgp N` under router bgp; FRR: `maximum-paths N` under address-family.
    max_paths_in_address_family: bool
    # NetScaler installs BGP routes in its own table only when told to.
    has_route_install: bool
    # Lines every new `router bgp` stanza gets (FRR refuses eBGP routes without a policy).
    router_preamble: tuple[str, ...] = ()
    # Lines every new neighbour gets after remote-as, with {address} filled in.
    neighbour_extras: tuple[str, ...] = ()


NETSCALER = Dialect(
    name="netscaler", stanza_end="exit", max_paths_in_address_family=False, has_route_install=True
)
FRR = Dialect(
    name="frr",
    stanza_end="exit",
    max_paths_in_address_family=True,
    has_route_install=False,
    router_preamble=("no bgp ebgp-requires-policy",),
    # FRR waits 120 s between connection attempts by default; Calico's BIRD waits 5 s.
    neighbour_extras=("neighbor {address} timers connect 5",),
)


@dataclass(frozen=True)
class RunningConfig:
    """The BGP part of ``show running-config``."""

    router_as: int | None
    neighbours: tuple[live.Neighbour, ...]
    max_paths: live.MaxPaths
    route_install: bool

    @cached_property
    def fingerprint(self) -> int:
        """Its BGP facts as one number, computed once: what tells two readings apart cheaply."""
        neighbours = tuple((n.address, n.remote_as, n.description) for n in self.neighbours)
        return hash((self.router_as, neighbours, self.max_paths, self.route_install))


@dataclass(frozen=True)
class Step:
    """Configuration lines sent together; ``change`` is done once all of them are accepted."""

    lines: tuple[str, ...]
    change: Change | None = None


# A vtysh prompt, maybe with the command typed after it: `ns#`, `frr(config)#show running-config`.
_PROMPT_LINE = re.compile(r"[\w.-]+(?:\([\w-]+\))?#.*")
# What devices print before the configuration itself.
_PREAMBLE = re.compile(
    r"show (?:running|startup)-config|Building configuration\.\.\.|Current configuration\b.*"
)
# Configuration lines: a lower-case keyword, at the top level or indented inside a stanza.
_TOP_LEVEL = re.compile(r"[a-z][a-z0-9-]*(?:\s.*)?")
_INDENTED = re.compile(r"\s+[a-z].*")
_ROUTER = re.compile(r"router bgp (\S+)(?: (vrf|view) \S+)?")
_NEIGHBOUR = re.compile(r"\s+neighbor\s+(\S+)(?:\s+(\S+)(?:\s+(.*))?)?")
_DOTTED = re.compile(r"[0-9.]+")
_MAX_PATHS = re.compile(r"\s+max-paths (ebgp|ibgp) (\d{1,9})")
_MAXIMUM_PATHS = re.compile(r"\s+maximum-paths (?:(ibgp) )?(\d{1,9})")
_TOTAL = re.compile(r"Total number of neighbors (\d{1,9})")
# Thousands of neighbours and sessions a reply: validated in one call, not one each (a third
# of the time), from a generator (a list of their fields would raise the pass's peak).
_NEIGHBOURS = TypeAdapter(tuple[live.Neighbour, ...])
_SESSIONS = TypeAdapter(tuple[live.Session, ...])
# A summary row until the whole table is read: address, state, Up/Down, prefixes received.
_Row = tuple[ipaddress.IPv4Address, str, str, int | None]
_COUNT = re.compile(r"[0-9]{1,10}")


def parse_running_config(text: str) -> RunningConfig:
    """The BGP facts of ``show running-config`` output; other stanzas are read past.

    The reply must be a whole configuration, as both ZebOS and FRR print it: every line a
    configuration line, ``router bgp`` closed by ``!`` or ``exit``, ``end`` last (a prompt
    may follow). Anything else (a reply cut off, a pager's ``--More--``, a prompt or a
    terminal escape inside it) raises OutputNotUnderstood: a cut reply must never read as
    fewer neighbours.
    """
    return _ConfigReader("show running-config", strict=True).read(text)


def parse_startup_config(text: str) -> RunningConfig:
    """The BGP facts of ``show startup-config``: a file anyone may have written, with or
    without ``end``, so what cannot be read is skipped. It only decides whether to save, and
    a misreading can only cause one save too many."""
    return _ConfigReader("show startup-config", strict=False).read(text)


class _ConfigReader:
    """The BGP facts of a ZebOS or FRR configuration, line by line. Strict, it refuses what
    it cannot read; lenient, it skips it."""

    def __init__(self, command: str, *, strict: bool) -> None:
        self.command = command
        self.strict = strict
        self.router_as: int | None = None
        # Every IPv4 neighbour a line names; None until (or unless) a remote-as line says.
        self.remote_as: dict[ipaddress.IPv4Address, int | None] = {}
        self.remote_as_text: dict[ipaddress.IPv4Address, str] = {}
        self.descriptions: dict[ipaddress.IPv4Address, str] = {}
        self.passwords: dict[ipaddress.IPv4Address, secret.Password] = {}
        self.paths: dict[str, int] = {}
        self.route_install = False
        self._in_router = False
        self._started = False
        self._ended = False

    def read(self, text: str) -> RunningConfig:
        clean = replies.clean(text)
        for number, line in enumerate(replies.split(text), 1):
            try:
                if not clean:
                    replies.check_line(line, number, self.command)
                self._line(line.rstrip(), number)
            except OutputNotUnderstood:
                if self.strict:
                    raise
        if self.strict and not self._ended:
            raise self._refusal(
                "the reply ends before `end`: it was cut off" if self._started else "the reply is empty"
            )
        neighbours = _NEIGHBOURS.validate_python(
            {
                "address": address,
                "remote_as": number,
                "description": self.descriptions.get(address),
                "password": self.passwords.get(address),
            }
            for address, number in sorted(self.remote_as.items())
        )
        return RunningConfig(
            router_as=self.router_as,
            neighbours=neighbours,
            max_paths=live.MaxPaths(ebgp=self.paths.get("ebgp"), ibgp=self.paths.get("ibgp")),
            route_install=self.route_install,
        )

    def _line(self, line: str, number: int) -> None:
        if self._ended:
            if line and not _PROMPT_LINE.fullmatch(line):
                raise self._at(number, "follows `end`", line)
            return
        if not line:
            return
        if not self._started:
            if _PREAMBLE.fullmatch(line) or _PROMPT_LINE.fullmatch(line):
                return
            self._started = True
        if line.lstrip().startswith("!"):
            self._in_router = self._in_router and line[0].isspace()
        elif line[0].isspace():
            self._indented(line, number)
        else:
            self._top_level(line, number)

    def _top_level(self, line: str, number: int) -> None:
        if line == "end":
            self._ended, self._in_router = True, False
            return
        if not _TOP_LEVEL.fullmatch(line):
            raise self._at(number, "is not configuration (a prompt, a pager?)", line)
        if self._in_router and line != "exit":
            raise self._at(number, "interrupts router bgp, which ends with ! or exit", line)
        self._in_router = False
        if line.startswith("router bgp"):
            self._router(line, number)
        elif line == "ns route-install bgp":
            self.route_install = True

    def _router(self, line: str, number: int) -> None:
        match = _ROUTER.fullmatch(line)
        if match is None:
            raise self._at(number, "is not a router bgp line", line)
        if match[2]:
            return  # a VRF's (or view's) instance: not the one peeringd manages
        if self.router_as is not None:
            raise self._at(number, "is a second router bgp", line)
        try:
            self.router_as = asn.parse(match[1], limit=asn.MAX)
        except ValueError:
            raise self._at(number, "has no AS number", line) from None
        self._in_router = True

    def _indented(self, line: str, number: int) -> None:
        if not _INDENTED.fullmatch(line):
            raise self._at(number, "is not configuration (a pager?)", line)
        if not self._in_router:
            return
        if match := _NEIGHBOUR.fullmatch(line):
            self._neighbour(match, line, number)
        elif match := _MAX_PATHS.fullmatch(line):
            self.paths[match[1]] = int(match[2])
        elif match := _MAXIMUM_PATHS.fullmatch(line):
            self.paths["ibgp" if match[1] else "ebgp"] = int(match[2])

    def _neighbour(self, match: re.Match[str], line: str, number: int) -> None:
        name, setting, value = match[1], match[2], (match[3] or "").strip()
        address = nodes.ipv4(name)
        if address is None:
            if _DOTTED.fullmatch(name):
                raise self._at(number, "names a neighbor that is no address", line)
            return  # peer groups and IPv6 neighbours are not ours to read
        if setting is None or (setting in {"remote-as", "description", "password"} and not value):
            raise self._at(number, "is a neighbor line cut short", line)
        self.remote_as.setdefault(address, None)
        if setting == "description":
            self.descriptions[address] = value
        elif setting == "password":
            self.passwords[address] = _shown_password(value)
        elif setting == "remote-as":
            self._remote_as(address, value, line, number)

    def _remote_as(self, address: ipaddress.IPv4Address, value: str, line: str, number: int) -> None:
        if self.remote_as_text.setdefault(address, value) != value:
            raise self._at(number, f"gives {address} a second remote-as", line)
        if value in {"internal", "external"}:  # FRR: the AS of this router, or any other
            return
        try:
            self.remote_as[address] = asn.parse(value, limit=asn.MAX)
        except ValueError:
            raise self._at(number, "has no AS number", line) from None

    def _refusal(self, reason: str) -> OutputNotUnderstood:
        return OutputNotUnderstood(f"{self.command}: {reason}")

    def _at(self, number: int, what: str, line: str) -> OutputNotUnderstood:
        return self._refusal(f"line {number} {what}: {replies.shown(redacted(line))}")


def _shown_password(value: str) -> secret.Password:
    """A password as the running config prints it: clear, or obfuscated (``8 0a1f...``)."""
    obfuscated = _OBFUSCATED.fullmatch(value)
    return secret.Password(value, obfuscated=obfuscated is not None)


def redacted(line: str) -> str:
    """``line`` with any password in it replaced by ``(set)``: what errors and logs may show."""
    return _PASSWORD_VALUE.sub(rf"\g<1>{secret.SHOWN}", line)


def parse_bgp_summary(text: str) -> tuple[live.Session, ...]:
    """Sessions from ``show ip bgp summary`` (ZebOS and FRR text): state, up/down, prefixes.

    The table must be whole: its header, rows of ten columns or more, and the closing
    ``Total number of neighbors N`` with N rows; else OutputNotUnderstood.
    """
    command = "show ip bgp summary"
    rows: list[_Row | None] = []
    total: int | None = None
    in_table = False
    for number, line in enumerate(replies.lines(text, command), 1):
        words = line.split()
        if not in_table:
            in_table = words[:2] == ["Neighbor", "V"]
        elif total is None and words:
            if match := _TOTAL.fullmatch(line.strip()):
                total = int(match[1])
            else:
                rows.append(_session(words, line, number, command))
    if not in_table:
        raise OutputNotUnderstood(f"{command}: no table of neighbors (no 'Neighbor V AS' header)")
    if total is None:
        raise OutputNotUnderstood(f"{command}: the reply ends before 'Total number of neighbors': cut off")
    if total != len(rows):
        raise OutputNotUnderstood(f"{command}: the table has {len(rows)} rows but says {total} neighbors")
    return _SESSIONS.validate_python(
        {"address": address, "state": state, "up_down": up_down, "prefixes": prefixes}
        for address, state, up_down, prefixes in filter(None, rows)
    )


def _session(words: list[str], line: str, number: int, command: str) -> _Row | None:
    """One row of the summary table, as the fields of its ``live.Session``; None for an IPv6
    neighbour."""
    address = nodes.ipv4(words[0])  # the address the running config's neighbour has, not a copy
    if len(words) < 10 or (address is None and not _is_ipv6(words[0])):
        raise OutputNotUnderstood(f"{command}: line {number} is not a table row: {replies.shown(line)}")
    if address is None:
        return None
    # Columns after State/PfxRcd (FRR's PfxSnt and Desc) are not read.
    last = words[9]
    if _COUNT.fullmatch(last):
        return address, "Established", words[8], int(last)
    state = next((s for s in _SESSION_STATES if last.startswith(s)), None)
    if state is None:
        raise OutputNotUnderstood(
            f"{command}: line {number} has neither a prefix count nor a state: {replies.shown(line)}"
        )
    return address, state, words[8], None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def parse_bgp_summary_json(text: str) -> tuple[live.Session, ...]:
    """Sessions from FRR's ``show ip bgp summary json`` (``{}`` without a BGP instance); JSON
    that is cut off or not of this shape raises OutputNotUnderstood."""
    command = "show ip bgp summary json"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise OutputNotUnderstood(f"{command}: not JSON ({str(error)[:80]})") from None
    unicast = _object(document, command).get("ipv4Unicast", {})
    peers = _object(_object(unicast, command).get("peers", {}), command)
    sessions = []
    for address, peer in peers.items():
        parsed = nodes.ipv4(address)
        if parsed is None:
            if _DOTTED.fullmatch(address):
                raise OutputNotUnderstood(f"{command}: peer {replies.shown(address)} is not an address")
            continue  # IPv6 and named neighbours are not ours to read
        fields = _object(peer, command)
        state, uptime, received = fields.get("state"), fields.get("peerUptime"), fields.get("pfxRcd")
        if (
            not isinstance(state, str)
            or not isinstance(uptime, str | None)
            or not (received is None or (type(received) is int and received >= 0))
        ):
            raise OutputNotUnderstood(f"{command}: peer {address} is not described as FRR does")
        sessions.append(
            live.Session(
                address=parsed,
                state=state,
                up_down=uptime,
                prefixes=received if state == "Established" else None,
            )
        )
    return tuple(sorted(sessions, key=lambda session: session.address))


def _object(value: object, command: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise OutputNotUnderstood(f"{command}: {type(value).__name__} where FRR prints an object")
    return value


def render(changes: tuple[Change, ...], dialect: Dialect, router_as: int | None) -> tuple[Step, ...]:
    """The configuration-mode lines for a device's changes, grouped per change.

    ``router_as`` is the AS of the running ``router bgp`` (None when there is
    none); lines that belong inside the stanza enter it once. Feature changes
    are not configuration lines and render to nothing here.
    """
    return tuple(_steps(changes, dialect, router_as))


def _steps(changes: tuple[Change, ...], dialect: Dialect, router_as: int | None) -> Iterator[Step]:
    inside = False  # inside `router bgp`
    current_as = router_as
    for change in changes:
        match change:
            case FeatureChange() | SaveChange():
                continue  # not configuration lines
            case RouterChange(before=before, after=after):
                lines = [f"no router bgp {_as(before)}"] if before is not None else []
                if inside:
                    lines.insert(0, dialect.stanza_end)
                lines += [f"router bgp {_as(after)}", *(f" {line}" for line in dialect.router_preamble)]
                inside, current_as = True, after
                yield Step(tuple(lines), change)
            case RouteInstallChange(after=after):
                if not dialect.has_route_install:
                    raise RenderError(f"{dialect.name} has no ns route-install")
                lines = [dialect.stanza_end] if inside else []
                inside = False
                yield Step((*lines, "ns route-install bgp" if after else "no ns route-install bgp"), change)
            case NeighbourChange() | MaxPathsChange():
                lines = [] if inside else [f"router bgp {_as(current_as)}"]
                inside = True
                yield Step((*lines, *_router_lines(change, dialect)), change)
            case _:
                raise RenderError(f"not a device change: {change!r}")
    if inside:
        yield Step((dialect.stanza_end,))


def unmet(changes: tuple[Change, ...], running: RunningConfig) -> tuple[Change, ...]:
    """The changes ``running`` does not show: what a device accepted but did not do."""
    neighbours = {neighbour.address: neighbour for neighbour in running.neighbours}
    return tuple(change for change in changes if not _holds(change, running, neighbours))


def _holds(
    change: Change, running: RunningConfig, neighbours: dict[ipaddress.IPv4Address, live.Neighbour]
) -> bool:
    match change:
        case RouterChange(after=after):
            return running.router_as == after
        case NeighbourChange(address=address, after=after):
            found = neighbours.get(address)
            if after is None:
                return found is None
            return (
                found is not None
                and (found.remote_as, found.description) == (after.remote_as, after.description)
                and secret.agrees(after.password, found.password, rotated=False)
            )
        case MaxPathsChange(after=after):
            return all(
                wanted is None or wanted == getattr(running.max_paths, kind)
                for kind, wanted in (("ebgp", after.ebgp), ("ibgp", after.ibgp))
            )
        case RouteInstallChange(after=after):
            return running.route_install == after
    return True


def _router_lines(change: NeighbourChange | MaxPathsChange, dialect: Dialect) -> Iterator[str]:
    if isinstance(change, MaxPathsChange):
        yield from _max_paths_lines(change.before, change.after, dialect)
        return
    address = _address(change.address)
    if change.action == Action.DELETE:
        yield f" no neighbor {address}"
        return
    if change.action == Action.RELEASE:
        # Only the mark goes: the neighbour and its session stay.
        yield f" no neighbor {address} description"
        return
    assert change.after is not None
    if change.action in (Action.UPDATE, Action.ADOPT) and change.before is not None:
        if change.before.remote_as == change.after.remote_as:
            # A description alone does not reset the session: all an adoption sends.
            if change.action == Action.ADOPT or change.before.description != change.after.description:
                yield f" neighbor {address} description {_description(change.after)}"
            # A password line resets the session: sent only when the password changes.
            if change.before.password != change.after.password:
                yield _password_line(address, change.after.password)
            return
        if change.action == Action.ADOPT:
            raise RenderError(f"adopting neighbor {address} would change its remote-as")
        # ZebOS refuses to move an existing neighbour to another AS: remove, then add.
        yield f" no neighbor {address}"
    yield f" neighbor {address} remote-as {_as(change.after.remote_as)}"
    yield f" neighbor {address} description {_description(change.after)}"
    if change.after.password is not None:
        yield _password_line(address, change.after.password)
    yield from (f" {extra.format(address=address)}" for extra in dialect.neighbour_extras)


def _password_line(address: str, password: secret.Password | None) -> str:
    if password is None:
        return f" no neighbor {address} password"
    try:
        value = password.reveal()
    except ValueError:
        raise RenderError(f"the password of neighbor {address} is not known here") from None
    # An obfuscated password goes back as the device printed it (a revert).
    parts = value.split(" ", 1) if password.obfuscated else [value]
    if (refusal := next(filter(None, map(secret.refusal, parts)), None)) is not None:
        raise RenderError(f"the password of neighbor {address} {refusal}")
    return f" neighbor {address} password {value}"


def _max_paths_lines(before: live.MaxPaths, after: live.MaxPaths, dialect: Dialect) -> Iterator[str]:
    changed = [
        (kind, value)
        for kind, value in (("ebgp", after.ebgp), ("ibgp", after.ibgp))
        if value is not None and value != getattr(before, kind)
    ]
    if not dialect.max_paths_in_address_family:
        yield from (f" max-paths {kind} {_count(value)}" for kind, value in changed)
        return
    yield " address-family ipv4 unicast"
    for kind, value in changed:
        yield f"  maximum-paths {'ibgp ' if kind == 'ibgp' else ''}{_count(value)}"
    yield " exit-address-family"


def _address(address: ipaddress.IPv4Address) -> str:
    if not isinstance(address, ipaddress.IPv4Address):
        raise RenderError(f"{address!r} is not an IPv4 address")
    return str(address)


def _as(number: int | None) -> str:
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= asn.MAX:
        raise RenderError(f"{number!r} is not an AS number")
    return str(number)


def _count(value: int) -> str:
    if not isinstance(value, int) or not 1 <= value <= 64:
        raise RenderError(f"{value!r} is not a path count")
    return str(value)


def _description(spec: NeighbourSpec) -> str:
    if spec.description is None or not _DESCRIPTION.fullmatch(spec.description):
        raise RenderError(f"description {spec.description!r} is not safe on a command line")
    return spec.description
