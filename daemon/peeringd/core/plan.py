"""``plan(desired, live) -> Plan``: the minimal changes that make live match desired.

A plan is plain immutable data: typed changes, each with before and after, in a
safe order, plus findings (conflicts with objects that are not ours, facts that
make applying unsafe). Live values are normalised before comparing (an unset
Calico AS is 64512, an unset mesh is on), so a converged system plans nothing.

Order: each ADC first (feature, router, neighbour additions and updates,
settings, then neighbour removals, all in one device session, then a save when
the file asks for it and Calico was observed), then Calico
(BGPConfiguration, BGPPeer additions and updates, then removals). ADC
neighbours so exist before the Calico peer that points at the ADC.

Adoption (``policy.adopt``) takes a hand-made object that already agrees with the
file into ownership where it stands: an ADC neighbour gets peeringd's
description, a global BGPPeer peeringd's label and annotations (and keeps its
name). Only marks are added, so no session is touched; an object that disagrees
with the file in anything else, or that someone else claims, stays a finding.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from collections.abc import Collection, Iterator
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator
from pydantic.dataclasses import dataclass

from peeringd.core import desired, live, nodes, ownership, secret

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
    "SecretChange",
    "plan",
]

CALICO = "calico"
_ADOPTABLE = "it agrees with the file: adoption, policy.adopt or --adopt, takes it over"
# What Calico uses when BGPConfiguration default leaves asNumber unset.
CALICO_DEFAULT_AS = 64512


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    # Marks added to, or removed from, an object that otherwise stays as it is.
    ADOPT = "adopt"
    RELEASE = "release"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PeerSpec(_Frozen):
    """The fields of a BGPPeer that peeringd owns: a global peer at the ADC."""

    peer_ip: str
    as_number: int | None
    node: str | None = None
    node_selector: str | None = None
    password: live.SecretKeyRef | None = None

    @classmethod
    def of(cls, peer: live.BGPPeer) -> PeerSpec:
        return cls(
            peer_ip=peer.peer_ip,
            as_number=peer.as_number,
            node=peer.node or None,
            node_selector=peer.node_selector or None,
            password=peer.password,
        )


class ConfigurationSpec(_Frozen):
    """The fields of BGPConfiguration default that the file owns; None = not owned."""

    as_number: int | None = None
    node_to_node_mesh: bool | None = None


# One per node and ADC in every pass: slotted, like live.Neighbour (a model is 8 times larger).
@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class NeighbourSpec:
    remote_as: int | None
    description: str | None
    password: secret.Password | None = None

    @classmethod
    def of(cls, neighbour: live.Neighbour) -> NeighbourSpec:
        return cls(
            remote_as=neighbour.remote_as, description=neighbour.description, password=neighbour.password
        )


class _Change(_Frozen):
    action: Action

    @property
    def target(self) -> str:
        """The system the change is applied to: ``calico`` or an ADC's name."""
        return CALICO


class PeerChange(_Change):
    """A BGPPeer named ``name`` that stands for the ADC ``adc`` (None: the one it is named after)."""

    kind: Literal["bgppeer"] = "bgppeer"
    name: str
    before: PeerSpec | None
    after: PeerSpec | None
    resource_version: str | None = None
    adc: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _named_after_its_adc(cls, data: Any) -> Any:
        """A peer named after its ADC says so with None: one change has one spelling."""
        if isinstance(data, dict) and data.get("adc") is not None and data.get("adc") == data.get("name"):
            return {**data, "adc": None}
        return data

    @property
    def for_adc(self) -> str:
        """The ADC this peer points at, written on the object as ``peeringd.io/adc``."""
        return self.adc or self.name


class SecretChange(_Change):
    """The Secret in calico-node's namespace that holds each ADC's BGP password, by ADC name."""

    kind: Literal["secret"] = "secret"
    namespace: str
    name: str
    before: tuple[tuple[str, secret.Password], ...] | None
    after: tuple[tuple[str, secret.Password], ...] | None
    resource_version: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def passwords(self) -> dict[str, str]:
        """Each key whose password comes, changes or goes, with the word that says which."""
        before, after = dict(self.before or ()), dict(self.after or ())
        words = {key: secret.word(before.get(key), after.get(key)) for key in sorted({*before, *after})}
        return {key: word for key, word in words.items() if word is not None}

    def holding(self, adcs: Collection[str]) -> SecretChange | None:
        """This change without what it does to the passwords of ``adcs`` (ADCs whose
        configuration failed: their sessions keep the password both ends still have); None
        when nothing is left of it. A removal of the whole Secret is kept: no ADC wants one."""
        if self.after is None:
            return self
        before = dict(self.before or ())
        after = {key: value for key, value in self.after if key not in adcs}
        after |= {key: before[key] for key in adcs if key in before}
        kept = tuple(sorted(after.items()))
        if kept == (self.before or ()):
            return None
        return self.model_copy(update={"after": kept})


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

    @computed_field  # type: ignore[prop-decorator]
    @property
    def password(self) -> str | None:
        """``(set)``, ``(changed)`` or ``(removed)`` when the session password changes."""
        return secret.word(
            self.before.password if self.before else None, self.after.password if self.after else None
        )


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
    | SecretChange
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

    def counts(self) -> dict[Action, int]:
        """How many changes of each action, every action listed (adoptions apart from updates)."""
        counted = Counter(change.action for change in self.changes)
        return {action: counted[action] for action in Action}


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
        device = list(
            _device_changes(
                state.cluster.name,
                adc,
                snapshot,
                speakers,
                adopt=state.policy.adopt,
                rotated=_rotated(adc, observed.calico),
                findings=findings,
            )
        )
        # Saved only when the configuration is known whole: without Calico, neighbours an
        # interrupted pass left half-done would be saved as they stand.
        if adc.save_config and speakers is not None and (device or snapshot.unsaved):
            device.append(SaveChange(action=Action.UPDATE, adc=adc.name))
        changes += device
    return Plan(changes=(*changes, *calico_changes), findings=tuple(findings), unobserved=tuple(unobserved))


def _calico_changes(
    state: desired.PeeringState, calico: live.CalicoSnapshot, findings: list[Finding]
) -> Iterator[Change]:
    findings += _pool_findings(state.cluster.pod_cidr, calico.pools)
    if change := _configuration_change(state.cluster, calico.configuration):
        yield change
    secret_change = _secret_change(state, calico.passwords, findings)
    if secret_change is not None and secret_change.after is not None:
        yield secret_change  # before the peers that refer to it
    cluster = state.cluster.name
    wanted = {
        adc.name: PeerSpec(
            peer_ip=str(adc.peer_ip),
            as_number=adc.as_number,
            password=live.SecretKeyRef(name=secret.SECRET_NAME, key=adc.name) if adc.bgp_password else None,
        )
        for adc in state.adcs
    }
    representatives, duplicates = _representatives(calico.peers, cluster)
    for name, spec in wanted.items():
        existing = representatives.get(name)
        if existing is None:
            yield from _peer_for(
                name, spec, calico.peers, cluster, adopt=state.policy.adopt, findings=findings
            )
        elif (before := PeerSpec.of(existing)) != spec:
            yield PeerChange(
                action=Action.UPDATE,
                name=existing.name,
                adc=name,
                before=before,
                after=spec,
                resource_version=existing.resource_version,
            )
    for peer in (*duplicates, *(p for adc, p in representatives.items() if adc not in wanted)):
        yield PeerChange(
            action=Action.DELETE,
            name=peer.name,
            adc=ownership.peer_adc(peer),
            before=PeerSpec.of(peer),
            after=None,
            resource_version=peer.resource_version,
        )
    if secret_change is not None and secret_change.after is None:
        yield secret_change  # after the peers that referred to it


def _wanted_passwords(state: desired.PeeringState) -> tuple[tuple[str, secret.Password], ...]:
    """Each ADC's password by ADC name, the keys of peeringd's Secret."""
    return tuple(
        (adc.name, adc.bgp_password.value)
        for adc in sorted(state.adcs, key=lambda adc: adc.name)
        if adc.bgp_password is not None and adc.bgp_password.value is not None
    )


def _secret_change(
    state: desired.PeeringState, observed: live.PasswordSecret | None, findings: list[Finding]
) -> SecretChange | None:
    """The change that makes peeringd's Secret hold the file's passwords (or removes it when
    none is wanted), and the findings that make using it unsafe."""
    wanted = _wanted_passwords(state)
    if observed is None:
        if wanted:
            findings.append(
                Finding(
                    severity="warning",
                    target=CALICO,
                    message="the BGP password Secret was not observed; it is left as it is",
                )
            )
        return None
    where = f"Secret {observed.namespace}/{observed.name}"
    if observed.exists and not ownership.owns(
        dict(observed.labels), dict(observed.annotations), state.cluster.name
    ):
        findings.append(
            Finding(
                severity="error",
                target=CALICO,
                message=f"{where} exists and is not peeringd's for cluster {state.cluster.name}: "
                "peeringd keeps the BGP passwords there; remove or rename it",
            )
        )
        return None
    if wanted and observed.readable is False:
        findings.append(
            Finding(
                severity="error",
                target=CALICO,
                message=f"calico-node ({observed.reader}) cannot read {where}: its sessions would stay "
                "down with a password; apply the Role and RoleBinding that `peeringd rbac` prints",
            )
        )
    elif wanted and observed.readable is None:
        findings.append(
            Finding(
                severity="warning",
                target=CALICO,
                message=f"could not check that calico-node ({observed.reader}) can read {where} "
                "(peeringd may not create SubjectAccessReviews)",
            )
        )
    before = observed.data if observed.exists else None
    if not wanted:
        if before is None:
            return None
        return SecretChange(
            action=Action.DELETE,
            namespace=observed.namespace,
            name=observed.name,
            before=before,
            after=None,
            resource_version=observed.resource_version,
        )
    if before is not None and _agreeing(before, wanted):
        return None
    return SecretChange(
        action=Action.UPDATE if observed.exists else Action.CREATE,
        namespace=observed.namespace,
        name=observed.name,
        before=before,
        after=wanted,
        resource_version=observed.resource_version or None,
    )


def _agreeing(
    stored: tuple[tuple[str, secret.Password], ...], wanted: tuple[tuple[str, secret.Password], ...]
) -> bool:
    """Whether the Secret holds the wanted passwords; one only known to be set (a snapshot read
    back from JSON) is taken to agree."""
    held = dict(stored)
    return held.keys() == dict(wanted).keys() and all(
        secret.agrees(value, held[key], rotated=False) for key, value in wanted
    )


def _rotated(adc: desired.ADC, calico: live.CalicoSnapshot | None) -> bool:
    """Whether ``adc``'s password in the file differs from the one peeringd last applied, as
    its Secret records it; an ADC that shows its password obfuscated is then rewritten."""
    if adc.bgp_password is None or adc.bgp_password.value is None:
        return False
    if calico is None or calico.passwords is None:
        return False
    applied = dict(calico.passwords.data).get(adc.name)
    return applied is not None and applied.known and applied != adc.bgp_password.value


def _representatives(
    peers: tuple[live.BGPPeer, ...], cluster: str
) -> tuple[dict[str, live.BGPPeer], list[live.BGPPeer]]:
    """Our BGPPeers by the ADC each stands for, and the extra ones standing for an ADC twice.

    An annotated peer wins over one that only has the ADC's name, then the first by name.
    """
    ours = sorted(
        (peer for peer in peers if ownership.owns_peer(peer, cluster)),
        key=lambda peer: (ownership.ADC_ANNOTATION not in dict(peer.annotations), peer.name),
    )
    chosen: dict[str, live.BGPPeer] = {}
    duplicates = []
    for peer in ours:
        if chosen.setdefault(ownership.peer_adc(peer), peer) is not peer:
            duplicates.append(peer)
    return chosen, duplicates


def _peer_for(
    adc: str,
    spec: PeerSpec,
    peers: tuple[live.BGPPeer, ...],
    cluster: str,
    *,
    adopt: bool,
    findings: list[Finding],
) -> Iterator[Change]:
    """The change that gives ``adc`` a BGPPeer when none of ours stands for it: adopt the
    hand-made peer that agrees with the file, else create one named after the ADC, unless
    a peer of someone else's is in the way (Calico keeps one of two peers with one peerIP)."""
    at_address = [
        peer
        for peer in peers
        if _peer_host(peer.peer_ip) == spec.peer_ip and not ownership.owns_peer(peer, cluster)
    ]
    if adopt and len(at_address) == 1 and _adoptable(peer := at_address[0], spec):
        yield PeerChange(
            action=Action.ADOPT,
            name=peer.name,
            adc=adc,
            before=PeerSpec.of(peer),
            after=spec,
            resource_version=peer.resource_version,
        )
        return
    if (named := next((peer for peer in peers if peer.name == adc), None)) is not None:
        ours = ownership.owns_peer(named, cluster)
        whose = "is peeringd's for another ADC" if ours else f"is not peeringd's for cluster {cluster}"
        findings.append(
            Finding(
                severity="warning", target=CALICO, message=f"BGPPeer {adc} exists but {whose}; left as it is"
            )
        )
        return
    if at_address:
        findings.append(
            Finding(
                severity="warning",
                target=CALICO,
                message=f"{_peers_in_the_way(at_address, spec, adopt)}; BGPPeer {adc} not created, "
                "to avoid a duplicate",
            )
        )
        return
    yield PeerChange(action=Action.CREATE, name=adc, adc=adc, before=None, after=spec)


def _peers_in_the_way(peers: list[live.BGPPeer], spec: PeerSpec, adopt: bool) -> str:
    """Which hand-made peers hold the ADC's address, and why adoption does not, or would, take them."""
    if len(peers) > 1:
        names = " and ".join(peer.name for peer in peers)
        found = f"BGPPeers {names} (not peeringd's) already peer with {spec.peer_ip}"
        return f"{found}; which one to adopt is unclear" if adopt else found
    (peer,) = peers
    found = f"BGPPeer {peer.name} (not peeringd's) already peers with {spec.peer_ip}"
    if (reason := ownership.claimant(peer) or _peer_disagreement(peer, spec)) is not None:
        return f"{found}; it is {reason}, so it is not adopted" if adopt else found
    return f"{found} ({_ADOPTABLE})"


def _adoptable(peer: live.BGPPeer, spec: PeerSpec) -> bool:
    return ownership.claimant(peer) is None and _peer_disagreement(peer, spec) is None


def _peer_disagreement(peer: live.BGPPeer, spec: PeerSpec) -> str | None:
    """How a peer at the ADC's address differs from the global peer the file wants, if it does."""
    if peer.node:
        return f"node-specific (node {peer.node})"
    if peer.node_selector:
        return f"for nodeSelector {peer.node_selector!r}"
    if peer.peer_ip != spec.peer_ip:
        return f"at {peer.peer_ip}, another port"
    if peer.as_number != spec.as_number:
        return f"in AS {peer.as_number}, not {spec.as_number}"
    return None


def _peer_host(peer_ip: str) -> str:
    """The address of ``IP``, ``IPv4:port`` or ``[IPv6]:port``."""
    if peer_ip.startswith("["):
        return peer_ip[1:].partition("]")[0]
    return peer_ip.partition(":")[0] if peer_ip.count(":") == 1 else peer_ip


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
    *,
    adopt: bool,
    rotated: bool,
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
        additions, removals = _neighbour_changes(
            cluster,
            name,
            neighbours,
            speakers,
            adopt=adopt,
            password=adc.bgp_password,
            rotated=rotated,
            findings=findings,
        )
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
    *,
    adopt: bool,
    password: desired.BgpPassword | None,
    rotated: bool,
    findings: list[Finding],
) -> tuple[list[Change], list[Change]]:
    """Additions and updates, then removals: the device gets new neighbours before losing old ones."""
    additions: list[Change] = []
    by_address = {neighbour.address: neighbour for neighbour in neighbours}
    value = password.value if password is not None else None
    wanted = {speaker.address: speaker for speaker in speakers}
    for address, speaker in wanted.items():
        description = ownership.description(cluster, speaker.node)
        existing = by_address.get(address)
        owned = existing is not None and ownership.owns_neighbour(existing, cluster)
        agrees = False
        if existing is not None and owned:
            if password is not None and password.obfuscated == "refuse" and _obfuscated(existing.password):
                findings.append(
                    Finding(
                        severity="error",
                        target=adc,
                        message=f"neighbor {address} shows its password obfuscated, which cannot be "
                        "compared with the file (bgpPassword.obfuscated: refuse)",
                    )
                )
            # Never rewrite a password that agrees: the session would reset.
            agrees = secret.agrees(value, existing.password, rotated=rotated)
            if (existing.remote_as, existing.description) == (speaker.as_number, description) and (
                agrees or existing.password == value
            ):
                continue  # the common case, decided before building specs: 5,000 a pass at 5,000 nodes
        spec = NeighbourSpec(remote_as=speaker.as_number, description=description, password=value)
        if existing is None:
            additions.append(
                NeighbourChange(action=Action.CREATE, adc=adc, address=address, before=None, after=spec)
            )
        elif owned:
            before = NeighbourSpec.of(existing)
            after = dataclasses.replace(spec, password=existing.password) if agrees else spec
            additions.append(
                NeighbourChange(action=Action.UPDATE, adc=adc, address=address, before=before, after=after)
            )
        elif adopt and _neighbour_disagreement(existing, spec) is None:
            additions.append(
                NeighbourChange(
                    action=Action.ADOPT,
                    adc=adc,
                    address=address,
                    before=NeighbourSpec.of(existing),
                    # Adoption adds the description only; the password follows in the next pass.
                    after=dataclasses.replace(spec, password=existing.password),
                )
            )
        else:
            reason = _neighbour_disagreement(existing, spec)
            hint = "" if reason else f" ({_ADOPTABLE})"
            findings.append(
                Finding(
                    severity="warning",
                    target=adc,
                    message=f"neighbor {address} was not made by peeringd for cluster {cluster} and "
                    f"{reason or 'peers as wanted'}; left as it is{hint}",
                )
            )
    removals: list[Change] = [
        NeighbourChange(
            action=Action.DELETE,
            adc=adc,
            address=neighbour.address,
            before=NeighbourSpec.of(neighbour),
            after=None,
        )
        for neighbour in neighbours
        if neighbour.address not in wanted and ownership.owns_neighbour(neighbour, cluster)
    ]
    return additions, removals


def _obfuscated(password: secret.Password | None) -> bool:
    return password is not None and password.obfuscated


def _neighbour_disagreement(neighbour: live.Neighbour, spec: NeighbourSpec) -> str | None:
    """Why a hand-made neighbour of a selected node is not adopted, if it is not.

    Changing remote-as re-creates the neighbour (the session drops), and a description of its
    own would be overwritten by peeringd's: both stay a human's decision.
    """
    if neighbour.remote_as != spec.remote_as:
        return f"has remote-as {neighbour.remote_as}, not {spec.remote_as}"
    if neighbour.description is not None:
        return f"has the description {neighbour.description!r}, which adoption would replace"
    return None
