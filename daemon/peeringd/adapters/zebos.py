"""ZebOS-family text: parsers of device output and renderers of configuration lines.

Pure functions over text, no transport here: the NetScaler and FRR drivers use
them, and tests feed them recorded outputs. NetScaler's vtysh (ZebOS) and FRR
share the syntax of ``router bgp`` and ``neighbor`` lines; what differs between
them lives in one ``Dialect`` each.

Parsers tolerate what real devices add: banners, echoed commands, prompts,
blank lines, ``!`` separators, unknown stanzas, default ``max-paths`` lines.
Renderers refuse any token that could break a command line before a single
line is produced.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from peeringd.core import asn, live
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
    "render",
    "unmet",
]

# A description may reach the device only from this charset: no space, quote or control.
_DESCRIPTION = re.compile(r"[A-Za-z0-9._:/-]{1,80}")
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


@dataclass(frozen=True)
class Step:
    """Configuration lines sent together; ``change`` is done once all of them are accepted."""

    lines: tuple[str, ...]
    change: Change | None = None


_ROUTER = re.compile(r"router bgp (\d+(?:\.\d+)?)\s*$")
_NEIGHBOUR = re.compile(r"\s+neighbor (\S+) (remote-as (\S+)|description (.*))$")
_MAX_PATHS = re.compile(r"\s+max-paths (ebgp|ibgp) (\d+)\s*$")
_MAXIMUM_PATHS = re.compile(r"\s+maximum-paths (?:(ibgp) )?(\d+)\s*$")


def parse_running_config(text: str) -> RunningConfig:
    """The BGP facts of ``show running-config`` output; everything else is ignored."""
    router_as: int | None = None
    remote_as: dict[ipaddress.IPv4Address, int | None] = {}
    descriptions: dict[ipaddress.IPv4Address, str] = {}
    paths: dict[str, int] = {}
    route_install = False
    in_router = False
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.lstrip().startswith("!"):
            continue
        if not line[0].isspace():
            in_router = False
            if match := _ROUTER.match(line):
                router_as = asn.parse(match[1], limit=asn.MAX)
                in_router = True
            elif line == "ns route-install bgp":
                route_install = True
            continue
        if not in_router:
            continue
        if match := _NEIGHBOUR.match(line):
            address = _ipv4(match[1])
            if address is None:
                continue  # peer groups and IPv6 neighbours are not ours to read
            if match[3] is not None:
                remote_as[address] = _as_or_none(match[3])
            else:
                descriptions[address] = match[4].strip()
        elif match := _MAX_PATHS.match(line):
            paths[match[1]] = int(match[2])
        elif match := _MAXIMUM_PATHS.match(line):
            paths["ibgp" if match[1] else "ebgp"] = int(match[2])
    neighbours = tuple(
        live.Neighbour(address=address, remote_as=number, description=descriptions.get(address))
        for address, number in sorted(remote_as.items())
    )
    return RunningConfig(
        router_as=router_as,
        neighbours=neighbours,
        max_paths=live.MaxPaths(ebgp=paths.get("ebgp"), ibgp=paths.get("ibgp")),
        route_install=route_install,
    )


def parse_bgp_summary(text: str) -> tuple[live.Session, ...]:
    """Sessions from ``show ip bgp summary`` (ZebOS and FRR text): state, up/down, prefixes."""
    sessions = []
    in_table = False
    for line in text.splitlines():
        words = line.split()
        if words[:2] == ["Neighbor", "V"]:
            in_table = True
            continue
        if not in_table or len(words) < 10:
            continue
        address = _ipv4(words[0])
        if address is None:
            continue
        # Columns after State/PfxRcd (FRR's PfxSnt and Desc) are not read.
        last = words[9]
        if last.isdigit():
            sessions.append(
                live.Session(address=address, state="Established", up_down=words[8], prefixes=int(last))
            )
        else:
            state = next((s for s in _SESSION_STATES if last.startswith(s)), last)
            sessions.append(live.Session(address=address, state=state, up_down=words[8]))
    return tuple(sessions)


def parse_bgp_summary_json(text: str) -> tuple[live.Session, ...]:
    """Sessions from FRR's ``show ip bgp summary json`` (``{}`` without a BGP instance)."""
    document = json.loads(text)
    peers = (document.get("ipv4Unicast") or {}).get("peers") or {}
    sessions = []
    for address, peer in peers.items():
        if (parsed := _ipv4(address)) is None:
            continue
        established = peer.get("state") == "Established"
        sessions.append(
            live.Session(
                address=parsed,
                state=str(peer.get("state", "")),
                up_down=peer.get("peerUptime"),
                prefixes=int(peer["pfxRcd"]) if established and "pfxRcd" in peer else None,
            )
        )
    return tuple(sorted(sessions, key=lambda session: session.address))


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
            return found is not None and (found.remote_as, found.description) == (
                after.remote_as,
                after.description,
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
    assert change.after is not None
    if change.action == Action.UPDATE and change.before is not None:
        if change.before.remote_as == change.after.remote_as:
            yield f" neighbor {address} description {_description(change.after)}"
            return
        # ZebOS refuses to move an existing neighbour to another AS: remove, then add.
        yield f" no neighbor {address}"
    yield f" neighbor {address} remote-as {_as(change.after.remote_as)}"
    yield f" neighbor {address} description {_description(change.after)}"
    yield from (f" {extra.format(address=address)}" for extra in dialect.neighbour_extras)


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


@functools.lru_cache(maxsize=16384)  # the same thousands of addresses, every pass
def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _as_or_none(text: str) -> int | None:
    try:
        return asn.parse(text, limit=asn.MAX)
    except ValueError:
        return None
