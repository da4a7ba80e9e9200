"""``plan(desired, live) -> Plan``: the minimal changes that make live match desired.

A plan is plain immutable data: typed changes, each with before and after, in a
safe order, plus findings (conflicts with objects that are not ours, facts that
make applying unsafe). Live values are normalised before comparing (an unset
Calico AS is 64512, an unset mesh is on), so a converged system plans nothing.

Order: each ADC first (feature, router, neighbour additions and updates,
settings, then neighbour removals, all in one device session, then a save when
the file asks for it), then Calico
(BGPConfiguration, BGPPeer additions and updates, then removals). ADC
neighbours so exist before the Calico peer that points at the ADC.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from peeringd.core import desired, live, nodes, ownership

__all__ = [
    "CALICO",
    "CALICO_DEFAULT_AS",
    "Action",
    "Change",
    "ConfigurationChange",
    "ConfigurationSpec",
    "FeatureChange",
    "Finding",
    "MaxPathsChange",
    "NeighbourChange",
    "NeighbourSpec",
    "PeerChange",
    "PeerSpec",
    "Plan",
    "RouteInstallChange",
    "RouterChange",
    "SaveChange",
    "plan",
]

CALICO = "calico"
# What Calico uses when BGPConfiguration default leaves asNumber unset.
CALICO_DEFAULT_AS = 64512


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeerSpec(_Frozen):
    """The fields of a BGPPeer that peeringd owns: a global peer at the ADC."""

    peer_ip: str
    as_number: int | None
    node: str | None = None
    node_selector: str | None = None


class ConfigurationSpec(_Frozen):
    """The fields of BGPConfiguration default that the file owns; None = not owned."""

    as_number: int | None = None
    node_to_node_mesh: bool | None = None


class NeighbourSpec(_Frozen):
    remote_as: int | None
    description: str | None


class _Change(_Frozen):
    action: Action

    @property
    def target(self) -> str:
        """The system the change is applied to: ``calico`` or an ADC's name."""
        return CALICO


class PeerChange(_Change):
    kind: Literal["bgppeer"] = "bgppeer"
    name: str
    before: PeerSpec | None
    after: PeerSpec | None
    resource_version: str | None = None


class ConfigurationChange(_Change):
    kind: Literal["bgpconfiguration"] = "bgpconfiguration"
    before: ConfigurationSpec | None
    after: ConfigurationSpec
    resource_version: str | None = None


class _DeviceChange(_Change):
    adc: str

    @property
    def target(self) -> str:
        return self.adc


class FeatureChange(_DeviceChange):
    """Turn the BGP feature on (``enable ns feature BGP``)."""

    kind: Literal["bgp-feature"] = "bgp-feature"
    before: bool
    after: bool


class RouterChange(_DeviceChange):
    """Create ``router bgp <AS>``, or replace it with another AS (every session drops)."""

    kind: Literal["router-bgp"] = "router-bgp"
    before: int | None
    after: int


class NeighbourChange(_DeviceChange):
    kind: Literal["neighbour"] = "neighbour"
    address: ipaddress.IPv4Address
    before: NeighbourSpec | None
    after: NeighbourSpec | None


class MaxPathsChange(_DeviceChange):
    kind: Literal["max-paths"] = "max-paths"
    before: live.MaxPaths
    after: live.MaxPaths


class RouteInstallChange(_DeviceChange):
    kind: Literal["route-install"] = "route-install"
    before: bool
    after: bool


class SaveChange(_DeviceChange):
    """Persist the device's running configuration (``save ns config``, ``write memory``).

    Planned after a device's other changes, and on its own when the device shows
    unsaved configuration (a save that failed in an earlier pass).
    """

    kind: Literal["save"] = "save"


Change = Annotated[
    PeerChange
    | ConfigurationChange
    | FeatureChange
    | RouterChange
    | NeighbourChange
    | MaxPathsChange
    | RouteInstallChange
    | SaveChange,
    Field(discriminator="kind"),
]


class Finding(_Frozen):
    """Something the plan cannot or will not fix. Errors forbid applying the plan."""

    severity: Literal["error", "warning"]
    target: str
    message: str


class Plan(_Frozen):
    changes: tuple[Change, ...] = ()
    findings: tuple[Finding, ...] = ()
    unobserved: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(finding for finding in self.findings if finding.severity == "error")

    def for_target(self, target: str) -> tuple[Change, ...]:
        return tuple(change for change in self.changes if change.target == target)

    def restricted(self, targets: frozenset[str]) -> Plan:
        """The part of the plan for ``targets`` only; findings about others are dropped too."""
        return Plan(
            changes=tuple(c for c in self.changes if c.target in targets),
            findings=tuple(f for f in self.findings if f.target in targets),
            unobserved=tuple(t for t in self.unobserved if t in targets),
        )

    @property
    def targets(self) -> tuple[str, ...]:
        """Targets with changes, in the order they are applied."""
        return tuple(dict.fromkeys(change.target for change in self.changes))


def plan(state: desired.PeeringState, observed: live.LiveState) -> Plan:
    """The changes that make ``observed`` match ``state``, touching only objects we own."""
    findings: list[Finding] = []
    changes: list[Change] = []
    calico_changes: list[Change] = []
    unobserved: list[str] = []
    speakers: tuple[nodes.Speaker, ...] | None = None
    if observed.calico is None:
        unobserved.append(CALICO)
    else:
        speakers, notes = nodes.speakers(
            observed.calico.nodes, state.cluster.as_number, state.cluster.nodes.exclude
        )
        findings += (Finding(severity="warning", target=CALICO, message=note) for note in notes)
        calico_changes += _calico_changes(state, observed.calico, findings)
    for adc in state.adcs:
        snapshot = observed.adc(adc.name)
        if snapshot is None:
            unobserved.append(adc.name)
            continue
        if speakers is None:
            findings.append(
                Finding(
                    severity="warning",
                    target=adc.name,
                    message="Calico was not observed, so neighbours are left as they are",
                )
            )
        device = list(_device_changes(state.cluster.name, adc, snapshot, speakers, findings))
        if adc.save_config and (device or snapshot.unsaved):
            device.append(SaveChange(action=Action.UPDATE, adc=adc.name))
        changes += device
    return Plan(changes=(*changes, *calico_changes), findings=tuple(findings), unobserved=tuple(unobserved))


def _calico_changes(
    state: desired.PeeringState, calico: live.CalicoSnapshot, findings: list[Finding]
) -> Iterator[Change]:
    findings += _pool_findings(state.cluster.pod_cidr, calico.pools)
    if change := _configuration_change(state.cluster, calico.configuration):
        yield change
    cluster = state.cluster.name
    wanted = {adc.name: PeerSpec(peer_ip=str(adc.peer_ip), as_number=adc.as_number) for adc in state.adcs}
    by_name = {peer.name: peer for peer in calico.peers}
    deletions: list[Change] = []
    for peer in calico.peers:
        if ownership.owns_peer(peer, cluster) and peer.name not in wanted:
            deletions.append(
                PeerChange(
                    action=Action.DELETE,
                    name=peer.name,
                    before=_peer_spec(peer),
                    after=None,
                    resource_version=peer.resource_version,
                )
            )
    for name, spec in wanted.items():
        existing = by_name.get(name)
        if existing is None:
            if clash := _unowned_peer_at(spec.peer_ip, calico.peers, cluster):
                findings.append(
                    Finding(
                        severity="warning",
                        target=CALICO,
                        message=f"BGPPeer {clash.name} (not peeringd's) already peers with "
                        f"{spec.peer_ip}; BGPPeer {name} not created, to avoid a duplicate",
                    )
                )
                continue
            yield PeerChange(action=Action.CREATE, name=name, before=None, after=spec)
        elif not ownership.owns_peer(existing, cluster):
            findings.append(
                Finding(
                    severity="warning",
                    target=CALICO,
                    message=f"BGPPeer {name} exists but is not peeringd's for cluster {cluster}; "
                    "left as it is",
                )
            )
        elif (before := _peer_spec(existing)) != spec:
            yield PeerChange(
                action=Action.UPDATE,
                name=name,
                before=before,
                after=spec,
                resource_version=existing.resource_version,
            )
    yield from deletions


def _peer_spec(peer: live.BGPPeer) -> PeerSpec:
    return PeerSpec(
        peer_ip=peer.peer_ip,
        as_number=peer.as_number,
        node=peer.node or None,
        node_selector=peer.node_selector or None,
    )


def _peer_host(peer_ip: str) -> str:
    """The address of ``IP``, ``IPv4:port`` or ``[IPv6]:port``."""
    if peer_ip.startswith("["):
        return peer_ip[1:].partition("]")[0]
    return peer_ip.partition(":")[0] if peer_ip.count(":") == 1 else peer_ip


def _unowned_peer_at(peer_ip: str, peers: tuple[live.BGPPeer, ...], cluster: str) -> live.BGPPeer | None:
    return next(
        (
            peer
            for peer in peers
            if _peer_host(peer.peer_ip) == peer_ip and not ownership.owns_peer(peer, cluster)
        ),
        None,
    )


def _configuration_change(
    cluster: desired.Cluster, configuration: live.BGPConfiguration | None
) -> ConfigurationChange | None:
    before = (
        None
        if configuration is None
        else ConfigurationSpec(
            as_number=configuration.as_number, node_to_node_mesh=configuration.node_to_node_mesh
        )
    )
    effective_as = CALICO_DEFAULT_AS if before is None or before.as_number is None else before.as_number
    effective_mesh = True if before is None or before.node_to_node_mesh is None else before.node_to_node_mesh
    wanted_mesh = cluster.node_to_node_mesh
    if effective_as == cluster.as_number and wanted_mesh in (None, effective_mesh):
        return None
    after = ConfigurationSpec(as_number=cluster.as_number, node_to_node_mesh=wanted_mesh)
    if configuration is None:
        return ConfigurationChange(action=Action.CREATE, before=None, after=after)
    return ConfigurationChange(
        action=Action.UPDATE, before=before, after=after, resource_version=configuration.resource_version
    )


def _pool_findings(pod_cidr: ipaddress.IPv4Network, pools: tuple[live.IPPool, ...]) -> Iterator[Finding]:
    matching = [pool for pool in pools if _network(pool.cidr) == pod_cidr]
    if not matching:
        cidrs = ", ".join(pool.cidr for pool in pools) or "none"
        yield Finding(
            severity="error",
            target=CALICO,
            message=f"podCIDR {pod_cidr} matches no live IPPool (pools: {cidrs}); "
            "is the file meant for this cluster?",
        )
    elif all(pool.vxlan_mode == "Always" for pool in matching):
        yield Finding(
            severity="warning",
            target=CALICO,
            message=f"every IPPool of {pod_cidr} uses VXLAN; with the VXLAN-only backend "
            "calico-node runs no BGP and the peering does nothing",
        )


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr)
    except ValueError:
        return None


def _device_changes(
    cluster: str,
    adc: desired.ADC,
    snapshot: live.AdcSnapshot,
    speakers: tuple[nodes.Speaker, ...] | None,
    findings: list[Finding],
) -> Iterator[Change]:
    name = adc.name
    if not snapshot.bgp_feature:
        yield FeatureChange(action=Action.UPDATE, adc=name, before=False, after=True)
    neighbours = snapshot.neighbours
    if snapshot.router_as is not None and snapshot.router_as != adc.as_number and speakers is None:
        findings.append(
            Finding(
                severity="warning",
                target=name,
                message=f"router bgp {snapshot.router_as} should become {adc.as_number}; "
                "waiting until Calico is observed to know the neighbours",
            )
        )
    elif snapshot.router_as != adc.as_number:
        action = Action.CREATE if snapshot.router_as is None else Action.UPDATE
        yield RouterChange(action=action, adc=name, before=snapshot.router_as, after=adc.as_number)
        # A new `router bgp` stanza starts without neighbours.
        neighbours = ()
    removals: list[Change] = []
    if speakers is not None:
        additions, removals = _neighbour_changes(cluster, name, neighbours, speakers, findings)
        yield from additions
    if adc.max_paths is not None:
        wanted = live.MaxPaths(
            ebgp=adc.max_paths.ebgp if adc.max_paths.ebgp is not None else snapshot.max_paths.ebgp,
            ibgp=adc.max_paths.ibgp if adc.max_paths.ibgp is not None else snapshot.max_paths.ibgp,
        )
        if wanted != snapshot.max_paths:
            yield MaxPathsChange(action=Action.UPDATE, adc=name, before=snapshot.max_paths, after=wanted)
    if adc.platform == "netscaler" and snapshot.route_install != adc.install_routes:
        yield RouteInstallChange(
            action=Action.UPDATE, adc=name, before=snapshot.route_install, after=adc.install_routes
        )
    yield from removals


def _neighbour_changes(
    cluster: str,
    adc: str,
    neighbours: tuple[live.Neighbour, ...],
    speakers: tuple[nodes.Speaker, ...],
    findings: list[Finding],
) -> tuple[list[Change], list[Change]]:
    """Additions and updates, then removals: the device gets new neighbours before losing old ones."""
    additions: list[Change] = []
    by_address = {neighbour.address: neighbour for neighbour in neighbours}
    wanted = {
        speaker.address: NeighbourSpec(
            remote_as=speaker.as_number, description=ownership.description(cluster, speaker.node)
        )
        for speaker in speakers
    }
    for address, spec in wanted.items():
        existing = by_address.get(address)
        if existing is None:
            additions.append(
                NeighbourChange(action=Action.CREATE, adc=adc, address=address, before=None, after=spec)
            )
        elif not ownership.owns_neighbour(existing, cluster):
            agrees = (
                "peers as wanted"
                if existing.remote_as == spec.remote_as
                else (f"has remote-as {existing.remote_as}, not {spec.remote_as}")
            )
            findings.append(
                Finding(
                    severity="warning",
                    target=adc,
                    message=f"neighbor {address} was not made by peeringd for cluster {cluster} "
                    f"and {agrees}; left as it is",
                )
            )
        elif (before := _neighbour_spec(existing)) != spec:
            additions.append(
                NeighbourChange(action=Action.UPDATE, adc=adc, address=address, before=before, after=spec)
            )
    removals: list[Change] = [
        NeighbourChange(
            action=Action.DELETE,
            adc=adc,
            address=neighbour.address,
            before=_neighbour_spec(neighbour),
            after=None,
        )
        for neighbour in neighbours
        if neighbour.address not in wanted and ownership.owns_neighbour(neighbour, cluster)
    ]
    return additions, removals


def _neighbour_spec(neighbour: live.Neighbour) -> NeighbourSpec:
    return NeighbourSpec(remote_as=neighbour.remote_as, description=neighbour.description)
