"""What ``peeringd import`` writes: the v1 document that describes a running peering.

Pure: the caller reads Calico and each ADC and passes the snapshots in. Every
value of the document carries where it came from (an object, a device line,
an option), for the comment beside it in the file. What the v1 contract cannot
describe is not guessed at: it is a gap, named with its reason (a node-specific
BGPPeer, a neighbour that is no node, a BGPPeer pointing at an ADC that was not
named, ADCs that peer different nodes). Notes are what the file does describe
but a reader should know (a neighbour adoption will not take, an unsaved device).

With the document written and adoption on, a plan adopts what runs and adds
nothing: an ADC's peer address comes from the BGPPeer that points at it, its
neighbours are the nodes it peers, and nodes no ADC peers are excluded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from peeringd.core import desired, live, nodes, ownership
from peeringd.core.plan import CALICO_DEFAULT_AS

__all__ = ["AdcLogin", "Description", "Gap", "Login", "Request", "Sourced", "describe"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AdcLogin(_Frozen):
    """One ``--adc NAME=HOST[:PORT]``, with ``--peer-ip NAME=IP`` when one was given."""

    name: str
    host: str
    port: int = 22
    peer_ip: ipaddress.IPv4Address | None = None

    @property
    def option(self) -> str:
        return f"--adc {self.name}={self.host}" + (f":{self.port}" if self.port != 22 else "")


class Login(_Frozen):
    """How every named ADC is logged in to, as the command line says."""

    username: str
    password_file: str | None = None
    key_file: str | None = None
    known_hosts_file: str | None = None
    platform: Literal["netscaler", "frr"] = "netscaler"


class Request(_Frozen):
    cluster: str
    context: str | None = None
    adcs: tuple[AdcLogin, ...]
    login: Login


class Sourced(_Frozen):
    """A value of the document and where it came from."""

    value: Any
    source: str


class Gap(_Frozen):
    """Something running that the v1 contract cannot describe, and why."""

    subject: str
    reason: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.reason}"


class Description(_Frozen):
    """The document (nested mappings and lists whose leaves are ``Sourced``), its gaps and notes."""

    document: dict[str, Any]
    gaps: tuple[Gap, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass
class _Found:
    """The gaps and notes gathered while describing."""

    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def gap(self, subject: str, reason: str) -> None:
        self.gaps.append(Gap(subject=subject, reason=reason))


def describe(
    request: Request, calico: live.CalicoSnapshot, devices: Mapping[str, live.AdcSnapshot | str]
) -> Description:
    """The v1 document for ``request`` given what was read: ``devices`` maps each ADC's name to
    its snapshot, or to why it could not be read."""
    found = _Found()
    cluster_as = _cluster_as(calico.configuration)
    cluster = _cluster(request, calico, cluster_as, found)
    speakers, node_notes = nodes.speakers(calico.nodes, cluster_as.value)
    found.notes += node_notes
    readable: list[tuple[AdcLogin, live.AdcSnapshot]] = []
    for login in request.adcs:
        device = devices[login.name]
        if isinstance(device, str):
            found.gap(f"ADC {login.name}", f"could not be read: {device}")
        elif device.router_as is None:
            found.gap(f"ADC {login.name}", "has no `router bgp`: there is no peering to describe")
        else:
            readable.append((login, device))
    peers = _peers_of(calico.peers, readable, found)
    described = [(login, device) for login, device in readable if login.name in peers]
    peered = {
        login.name: _peered_nodes(request.cluster, device, speakers, found) for login, device in described
    }
    found.gaps += _uneven_nodes(peered)
    everywhere = set[str]().union(*peered.values()) if described else None
    cluster["nodes"] = _nodes(speakers, everywhere)
    document = {
        "apiVersion": Sourced(value=desired.API_VERSION, source="the contract peeringd reads"),
        "kind": Sourced(value=desired.KIND, source="the contract peeringd reads"),
        "cluster": cluster,
        "adcs": [_adc(request.login, login, device, peers[login.name], found) for login, device in described],
    }
    return Description(document=document, gaps=tuple(found.gaps), notes=tuple(found.notes))


def _cluster_as(configuration: live.BGPConfiguration | None) -> Sourced:
    if configuration is None:
        return Sourced(value=CALICO_DEFAULT_AS, source="no BGPConfiguration default: Calico's default")
    if configuration.as_number is None:
        return Sourced(
            value=CALICO_DEFAULT_AS, source="BGPConfiguration default sets no asNumber: Calico's default"
        )
    return Sourced(value=configuration.as_number, source="BGPConfiguration default spec.asNumber")


def _cluster(
    request: Request, calico: live.CalicoSnapshot, cluster_as: Sourced, found: _Found
) -> dict[str, Any]:
    cluster: dict[str, Any] = {"name": Sourced(value=request.cluster, source="--cluster")}
    if (pool := _pool(calico.pools, found)) is not None:
        cluster["podCIDR"] = Sourced(value=pool.cidr, source=f"IPPool {pool.name} spec.cidr")
    else:
        found.gap("IPPools", "none is IPv4: podCIDR cannot be written")
    cluster["asNumber"] = cluster_as
    cluster["nodeToNodeMesh"] = _mesh(calico.configuration)
    if request.context is not None:
        cluster["kubeconfigContext"] = Sourced(value=request.context, source="--context")
    return cluster


def _nodes(speakers: tuple[nodes.Speaker, ...], peered: set[str] | None) -> dict[str, Any]:
    """Every node, less those no ADC peers (``peered`` None: no ADC is described)."""
    excluded = [] if peered is None else sorted(s.node for s in speakers if s.node not in peered)
    if peered is None:
        why = "no ADC is described"
    else:
        why = "the Nodes no ADC has a neighbour for" if excluded else "every Node is every ADC's neighbour"
    return {
        "selector": Sourced(value="", source="every Node, less those excluded"),
        "exclude": Sourced(value=excluded, source=why),
    }


def _pool(pools: tuple[live.IPPool, ...], found: _Found) -> live.IPPool | None:
    """The IPv4 pool to name in podCIDR (peeringd only checks that it exists): the first by name."""
    ipv4 = sorted((pool for pool in pools if _ipv4_network(pool.cidr)), key=lambda pool: pool.name)
    if len(ipv4) > 1:
        others = ", ".join(f"{pool.name} ({pool.cidr})" for pool in ipv4[1:])
        found.notes.append(f"podCIDR names IPPool {ipv4[0].name}; the cluster also has {others}")
    return ipv4[0] if ipv4 else None


def _mesh(configuration: live.BGPConfiguration | None) -> Sourced:
    if configuration is None:
        return Sourced(value=True, source="no BGPConfiguration default: Calico's default")
    if configuration.node_to_node_mesh is None:
        return Sourced(
            value=True, source="BGPConfiguration default sets no nodeToNodeMeshEnabled: Calico's default"
        )
    return Sourced(
        value=configuration.node_to_node_mesh, source="BGPConfiguration default spec.nodeToNodeMeshEnabled"
    )


_PeerOf = live.BGPPeer | ipaddress.IPv4Address


def _peers_of(
    peers: tuple[live.BGPPeer, ...], devices: Sequence[tuple[AdcLogin, live.AdcSnapshot]], found: _Found
) -> dict[str, _PeerOf]:
    """Each ADC's BGPPeer (or the --peer-ip it was given), found by its address, else by its AS.

    An ADC missing from the result has a gap saying why. Node-specific peers and global ones
    that stand for no named ADC are gaps too: v1 describes one global peer per ADC.
    """
    global_peers = _global_peers(peers, found)
    chosen: dict[str, _PeerOf] = {}
    claimed: set[str] = set()
    by_as = [(login, device) for login, device in devices if _address_of(login) is None]
    for login, device in devices:
        if (address := _address_of(login)) is None:
            continue
        at_address = [p for p in global_peers if _host(p.peer_ip) == str(address)]
        if at_address or login.peer_ip is not None:
            claimed.update(p.name for p in at_address)
            _choose(login, device, at_address, chosen, found)
        else:
            by_as.append((login, device))  # the SSH host is not where the nodes peer
    for login, device in by_as:
        candidates = [p for p in global_peers if p.as_number == device.router_as and p.name not in claimed]
        if len(candidates) == 1:
            claimed.add(candidates[0].name)
            _choose(login, device, candidates, chosen, found)
            continue
        which = (
            f"BGPPeers {' and '.join(p.name for p in candidates)} all have asNumber {device.router_as}"
            if candidates
            else f"no global BGPPeer has its address {login.host} or its AS {device.router_as}"
        )
        found.gap(
            f"ADC {login.name}", f"{which}: name the address the nodes peer with, --peer-ip {login.name}=IP"
        )
    for peer in global_peers:
        if peer.name not in claimed:
            found.gap(
                f"BGPPeer {peer.name}",
                f"peers with {peer.peer_ip} (AS {peer.as_number}), which is no ADC named with --adc",
            )
    for name, chosen_peer in chosen.items():
        if isinstance(chosen_peer, live.BGPPeer) and chosen_peer.name != name:
            found.notes.append(
                f"BGPPeer {chosen_peer.name} stands for ADC {name}; adopted, it keeps its name"
            )
    return chosen


def _global_peers(peers: tuple[live.BGPPeer, ...], found: _Found) -> list[live.BGPPeer]:
    """The global BGPPeers; the node-specific ones are gaps."""
    global_peers = []
    for peer in peers:
        if peer.node or peer.node_selector:
            scope = f"node {peer.node}" if peer.node else f"nodeSelector {peer.node_selector!r}"
            found.gap(f"BGPPeer {peer.name}", f"is node-specific ({scope}): v1 describes global peers only")
        else:
            global_peers.append(peer)
    return global_peers


def _address_of(login: AdcLogin) -> ipaddress.IPv4Address | None:
    """Where the nodes peer with the ADC, when the command line tells: --peer-ip, or an SSH host
    that is an address (a management address that is not gets looked up by AS instead)."""
    if login.peer_ip is not None:
        return login.peer_ip
    try:
        return ipaddress.IPv4Address(login.host)
    except ValueError:
        return None


def _choose(
    login: AdcLogin,
    device: live.AdcSnapshot,
    candidates: list[live.BGPPeer],
    chosen: dict[str, _PeerOf],
    found: _Found,
) -> None:
    """Take ``candidates`` (the peers at the ADC's address, or the one with its AS) for ``login``."""
    if not candidates:
        assert login.peer_ip is not None
        chosen[login.name] = login.peer_ip  # no BGPPeer yet: peeringd will create one
        return
    if len(candidates) > 1:
        names = " and ".join(peer.name for peer in candidates)
        found.gap(f"ADC {login.name}", f"BGPPeers {names} all peer with it: Calico keeps only one")
        return
    (peer,) = candidates
    if ":" in peer.peer_ip:
        found.gap(f"BGPPeer {peer.name}", f"peers on a port of its own ({peer.peer_ip}): v1 has no port")
    elif peer.as_number != device.router_as:
        found.gap(
            f"BGPPeer {peer.name}",
            f"has asNumber {peer.as_number}, but ADC {login.name} runs router bgp {device.router_as}",
        )
    else:
        chosen[login.name] = peer


def _host(peer_ip: str) -> str:
    return peer_ip.partition(":")[0] if peer_ip.count(":") == 1 else peer_ip


def _peered_nodes(
    cluster: str, device: live.AdcSnapshot, speakers: tuple[nodes.Speaker, ...], found: _Found
) -> set[str]:
    """The nodes ``device`` has a neighbour for, as v1 would configure it; gaps for the rest."""
    by_address = {speaker.address: speaker for speaker in speakers}
    peered = set()
    for neighbour in device.neighbours:
        subject = f"ADC {device.name}: neighbor {neighbour.address}"
        speaker = by_address.get(neighbour.address)
        if speaker is None:
            found.gap(subject, "is no Kubernetes node: v1 describes neighbours that are nodes")
            continue
        if neighbour.remote_as != speaker.as_number:
            found.gap(
                subject,
                f"has remote-as {neighbour.remote_as}, but node {speaker.node} peers "
                f"from AS {speaker.as_number}",
            )
            continue
        peered.add(speaker.node)
        if neighbour.description is not None and not ownership.owns_neighbour(neighbour, cluster):
            found.notes.append(
                f"{subject} (node {speaker.node}) has the description {neighbour.description!r}: adoption "
                "leaves it hand-made; remove the description to let peeringd adopt it"
            )
    return peered


def _uneven_nodes(peered: Mapping[str, set[str]]) -> Iterator[Gap]:
    """Nodes some ADCs peer and others do not: v1 peers every selected node with every ADC."""
    everywhere = set[str]().union(*peered.values())
    for adc, names in peered.items():
        for node in sorted(everywhere - names):
            others = ", ".join(sorted(other for other, found in peered.items() if node in found))
            yield Gap(
                subject=f"ADC {adc}: node {node}",
                reason=f"is a neighbour of {others}, not of {adc}: "
                "v1 peers every selected node with every ADC",
            )


def _adc(
    login: Login, adc: AdcLogin, device: live.AdcSnapshot, peer: _PeerOf, found: _Found
) -> dict[str, Any]:
    config = f"{adc.name} show running-config"
    if isinstance(peer, live.BGPPeer):
        peer_ip = Sourced(value=peer.peer_ip, source=f"BGPPeer {peer.name} spec.peerIP")
    else:
        peer_ip = Sourced(value=str(peer), source="--peer-ip (no BGPPeer points at it: peeringd creates one)")
    entry: dict[str, Any] = {
        "name": Sourced(value=adc.name, source=adc.option),
        "asNumber": Sourced(value=device.router_as, source=f"{config}: router bgp {device.router_as}"),
        "peerIP": peer_ip,
        "platform": Sourced(value=login.platform, source="--platform"),
    }
    paths = {kind: value for kind, value in device.max_paths.model_dump().items() if value is not None}
    if paths:
        lines = ", ".join(f"{kind} {value}" for kind, value in paths.items())
        entry["maxPaths"] = Sourced(value=paths, source=f"{config}: max-paths {lines}")
    if login.platform == "netscaler":
        line = "ns route-install bgp" if device.route_install else "no ns route-install bgp line"
        entry["installRoutes"] = Sourced(value=device.route_install, source=f"{config}: {line}")
        if not device.bgp_feature:
            found.notes.append(f"ADC {adc.name} has the BGP feature off: peeringd turns it on")
    if device.unsaved:
        found.notes.append(f"ADC {adc.name} runs a BGP configuration it has not saved: peeringd saves it")
    if any(neighbour.password is not None for neighbour in device.neighbours):
        # peeringd copies no secret into a file; without bgpPassword a plan removes them.
        found.gap(
            f"ADC {adc.name}'s BGP passwords",
            "write the password into a file and name it in adcs[].bgpPassword.file",
        )
    entry["ssh"] = _ssh(login, adc)
    return entry


def _ssh(login: Login, adc: AdcLogin) -> dict[str, Any]:
    ssh: dict[str, Any] = {
        "host": Sourced(value=adc.host, source=adc.option),
        "port": Sourced(value=adc.port, source=adc.option if adc.port != 22 else "SSH's port"),
        "username": Sourced(value=login.username, source="--username"),
    }
    for key, value, option in (
        ("passwordFile", login.password_file, "--password-file"),
        ("keyFile", login.key_file, "--key-file"),
        ("knownHostsFile", login.known_hosts_file, "--known-hosts"),
    ):
        if value is not None:
            ssh[key] = Sourced(value=value, source=option)
    return ssh


def _ipv4_network(cidr: str) -> bool:
    try:
        ipaddress.IPv4Network(cidr)
    except ValueError:
        return False
    return True
