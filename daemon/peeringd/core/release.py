"""``release(desired, live) -> Plan``: take peeringd's marks off everything it owns.

What ``peeringd release`` applies before peeringd is uninstalled: each owned ADC
neighbour loses its description (``no neighbor X description``), each owned
BGPPeer its label and annotations. Nothing else changes, so every object and
every BGP session stays where it is, and a plan without adoption then sees all
of it as hand-made. The device is saved afterwards when the file says so, or a
reboot would bring the marks back.
"""

from __future__ import annotations

import dataclasses

from peeringd.core import desired, live, ownership
from peeringd.core.plan import (
    CALICO,
    Action,
    Change,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    Plan,
    SaveChange,
)

__all__ = ["release"]


def release(state: desired.PeeringState, observed: live.LiveState) -> Plan:
    """The changes that remove this cluster's marks from ``observed``, in the plan's order
    (each ADC, then Calico); systems that were not observed are listed as unobserved."""
    cluster = state.cluster.name
    changes: list[Change] = []
    unobserved: list[str] = []
    for adc in state.adcs:
        snapshot = observed.adc(adc.name)
        if snapshot is None:
            unobserved.append(adc.name)
            continue
        device: list[Change] = [
            NeighbourChange(
                action=Action.RELEASE,
                adc=adc.name,
                address=neighbour.address,
                before=NeighbourSpec.of(neighbour),
                # Only the description goes: the session, and its password, stay.
                after=dataclasses.replace(NeighbourSpec.of(neighbour), description=None),
            )
            for neighbour in snapshot.neighbours
            if ownership.owns_neighbour(neighbour, cluster)
        ]
        if device and adc.save_config:
            device.append(SaveChange(action=Action.UPDATE, adc=adc.name))
        changes += device
    if observed.calico is None:
        unobserved.append(CALICO)
    else:
        changes += (
            PeerChange(
                action=Action.RELEASE,
                name=peer.name,
                adc=ownership.peer_adc(peer),
                before=PeerSpec.of(peer),
                after=PeerSpec.of(peer),
                resource_version=peer.resource_version,
            )
            for peer in observed.calico.peers
            if ownership.owns_peer(peer, cluster)
        )
    return Plan(changes=tuple(changes), unobserved=tuple(unobserved))
