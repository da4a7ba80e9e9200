"""Snapshots of what is live: Calico's objects and each ADC's BGP configuration.

Adapters build these from the Kubernetes API and device output; ``plan --live``
reads them from JSON. They hold raw facts (annotations as written, peers as
found); the rules that interpret them live in ``nodes``, ``ownership`` and ``plan``.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from pydantic.dataclasses import dataclass

from peeringd.core.secret import Password

__all__ = [
    "AdcSnapshot",
    "BGPConfiguration",
    "BGPPeer",
    "CalicoSnapshot",
    "IPPool",
    "LiveState",
    "MaxPaths",
    "Neighbour",
    "Node",
    "NodeStatus",
    "PasswordSecret",
    "PeerStatus",
    "SecretKeyRef",
    "Session",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# What there is one of per node, thousands in the node cache and in each pass: a validated
# dataclass with slots takes 60 bytes where a model takes 490 (its __dict__ and fields set), and
# a pass at 5,000 nodes held 15,000 of them (a third of its peak, which sets the daemon's size).
_PER_NODE = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True, config=_PER_NODE)
class Node:
    """A Kubernetes Node selected by the file, with the Calico annotations as written."""

    name: str
    ipv4_address_annotation: str | None = None
    as_number_annotation: str | None = None
    internal_ips: tuple[str, ...] = ()


class SecretKeyRef(_Frozen):
    """A BGPPeer's ``spec.password.secretKeyRef``: one key of a Secret in calico-node's namespace."""

    name: str
    key: str


class BGPPeer(_Frozen):
    """A Calico BGPPeer, ours or not."""

    name: str
    peer_ip: str
    as_number: int | None = None
    node: str | None = None
    node_selector: str | None = None
    password: SecretKeyRef | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    resource_version: str = ""


class BGPConfiguration(_Frozen):
    """The fields of BGPConfiguration ``default`` that the file may own; None = unset."""

    as_number: int | None = None
    node_to_node_mesh: bool | None = None
    resource_version: str = ""


class IPPool(_Frozen):
    name: str
    cidr: str
    vxlan_mode: str | None = None


class PasswordSecret(_Frozen):
    """The Secret that holds the BGP passwords, in calico-node's namespace; ``exists`` False
    when there is none yet. ``data``: one password per key. ``readable``: whether calico-node's
    ServiceAccount may read it (a SubjectAccessReview), None when that could not be asked."""

    namespace: str
    name: str
    exists: bool = False
    data: tuple[tuple[str, Password], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    resource_version: str = ""
    readable: bool | None = None
    reader: str = ""


class CalicoSnapshot(_Frozen):
    """Calico as seen through one API group; ``configuration`` is None when ``default`` is absent.
    ``passwords`` is None when the BGP password Secret was not read (no password is wanted)."""

    api_group: str
    configuration: BGPConfiguration | None = None
    peers: tuple[BGPPeer, ...] = ()
    nodes: tuple[Node, ...] = ()
    pools: tuple[IPPool, ...] = ()
    passwords: PasswordSecret | None = None


@dataclass(frozen=True, slots=True, config=_PER_NODE)
class Neighbour:
    """A ``neighbor`` of the device's ``router bgp``."""

    address: ipaddress.IPv4Address
    remote_as: int | None = None
    description: str | None = None
    password: Password | None = None


class MaxPaths(_Frozen):
    """``max-paths`` as configured; None where the device shows no line."""

    ebgp: int | None = None
    ibgp: int | None = None


@dataclass(frozen=True, slots=True, config=_PER_NODE)
class Session:
    """One BGP session as the device reports it."""

    address: ipaddress.IPv4Address
    state: str
    up_down: str | None = None
    prefixes: int | None = None


class AdcSnapshot(_Frozen):
    """One device's BGP configuration and sessions."""

    name: str
    bgp_feature: bool
    router_as: int | None = None
    neighbours: tuple[Neighbour, ...] = ()
    max_paths: MaxPaths = MaxPaths()
    route_install: bool = False
    # The BGP configuration a reboot would bring back differs from the running one.
    unsaved: bool = False
    sessions: tuple[Session, ...] = ()

    def neighbour(self, address: ipaddress.IPv4Address) -> Neighbour | None:
        return next((n for n in self.neighbours if n.address == address), None)


class PeerStatus(_Frozen):
    """One BGP peer of a node as calico-node reports it in CalicoNodeStatus."""

    peer_ip: str
    type: str
    state: str
    since: str | None = None


class NodeStatus(_Frozen):
    """A node's BGP peers from a CalicoNodeStatus; ``peers`` empty until calico-node reports.

    ``owned``: peeringd made it for this cluster; ``expires_at``: when peeringd may remove
    it (None on one of ours: an earlier peeringd made it without an expiry).
    """

    node: str
    peers: tuple[PeerStatus, ...] = ()
    name: str = ""
    reported: bool = False
    owned: bool = False
    expires_at: datetime | None = None


class LiveState(_Frozen):
    """Everything observed in one pass; a side that could not be observed is absent.

    ``calico`` is None when the Kubernetes API was not observed; an ADC of the
    file that is missing from ``adcs`` was not observed.
    """

    calico: CalicoSnapshot | None = None
    adcs: tuple[AdcSnapshot, ...] = ()

    def adc(self, name: str) -> AdcSnapshot | None:
        return next((adc for adc in self.adcs if adc.name == name), None)
