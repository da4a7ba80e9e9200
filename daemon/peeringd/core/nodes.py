"""Which address and AS each selected node peers from, the way calico-node decides.

The BGP address is the ``projectcalico.org/IPv4Address`` annotation (CIDR form)
else the Node's InternalIP; the AS is ``projectcalico.org/ASNumber`` else the
cluster's. Calico silently ignores invalid annotations; we fall back the same
way but say so.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from peeringd.core import asn, live

__all__ = ["AS_NUMBER_ANNOTATION", "IPV4_ADDRESS_ANNOTATION", "Speaker", "ipv4", "speakers"]

IPV4_ADDRESS_ANNOTATION = "projectcalico.org/IPv4Address"
AS_NUMBER_ANNOTATION = "projectcalico.org/ASNumber"


@dataclass(frozen=True, slots=True)
class Speaker:
    """A node as a BGP speaker: the address and AS it peers from.

    A plain dataclass, not a model: a pass makes one per node, from values already checked.
    """

    node: str
    address: ipaddress.IPv4Address
    as_number: int


def speakers(
    nodes: Iterable[live.Node], cluster_as: int, exclude: Iterable[str] = ()
) -> tuple[tuple[Speaker, ...], tuple[str, ...]]:
    """The speakers among ``nodes``, sorted by address, and a note per node skipped or fixed up.

    Two nodes claiming one address give one speaker (the first by name): a
    device cannot have two neighbours with one address.
    """
    excluded = set(exclude)
    by_address: dict[ipaddress.IPv4Address, Speaker] = {}
    notes: list[str] = []
    for node in sorted(nodes, key=lambda node: node.name):
        if node.name in excluded:
            continue
        address = _address(node, notes)
        if address is None:
            notes.append(f"node {node.name} has no IPv4 BGP address or InternalIP; not peered")
            continue
        speaker = Speaker(node=node.name, address=address, as_number=_as_number(node, cluster_as, notes))
        if (first := by_address.setdefault(address, speaker)) is not speaker:
            notes.append(f"node {node.name} has the address {address} of node {first.node}; not peered")
    return tuple(sorted(by_address.values(), key=lambda s: s.address)), tuple(notes)


def _address(node: live.Node, notes: list[str]) -> ipaddress.IPv4Address | None:
    if node.ipv4_address_annotation is not None:
        address = _interface_address(node.ipv4_address_annotation)
        if address is not None:
            return address
        notes.append(
            f"node {node.name}: {IPV4_ADDRESS_ANNOTATION}={node.ipv4_address_annotation!r} "
            "is not an IPv4 address; using its InternalIP"
        )
    for text in node.internal_ips:
        if (address := ipv4(text)) is not None:
            return address
    return None


# Parsing an address costs microseconds, and a daemon parses the same thousands of
# addresses every pass: remember the answers (addresses are immutable).
@functools.lru_cache(maxsize=16384)
def _interface_address(text: str) -> ipaddress.IPv4Address | None:
    address, _, prefix = text.partition("/")
    if prefix.isdigit() and len(prefix) <= 2 and int(prefix) <= 32:
        return ipv4(address)  # the usual form, parsed five times faster
    try:
        return ipaddress.IPv4Interface(text).ip
    except ValueError:
        return None


@functools.lru_cache(maxsize=16384)
def ipv4(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``text`` is, else None. One cache for the nodes' addresses and the
    devices' neighbours (the same addresses): one address object each, not one per reader."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _as_number(node: live.Node, cluster_as: int, notes: list[str]) -> int:
    if node.as_number_annotation is None:
        return cluster_as
    try:
        return asn.parse(node.as_number_annotation, limit=asn.MAX)
    except ValueError as error:
        notes.append(f"node {node.name}: {AS_NUMBER_ANNOTATION} ignored: {error}")
        return cluster_as
