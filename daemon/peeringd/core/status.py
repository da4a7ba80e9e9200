"""Every desired BGP session, seen from both ends: the ADC's summary and calico-node's status.

Pure: it joins what the adapters read. A session is ``established`` when both
ends say Established, ``one-sided`` when only one does, ``down`` otherwise.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict

from peeringd.core import desired, live, nodes

__all__ = ["ESTABLISHED", "Row", "rows"]

ESTABLISHED = "Established"
Verdict = Literal["established", "one-sided", "down"]


class Row(BaseModel):
    """One desired session: an ADC and one node."""

    model_config = ConfigDict(frozen=True)

    adc: str
    node: str
    address: ipaddress.IPv4Address
    adc_state: str | None
    adc_up_down: str | None
    adc_prefixes: int | None
    calico_state: str | None
    calico_since: str | None
    verdict: Verdict


def rows(
    state: desired.PeeringState,
    calico: live.CalicoSnapshot,
    statuses: tuple[live.NodeStatus, ...],
    adcs: tuple[live.AdcSnapshot, ...],
) -> tuple[Row, ...]:
    """A row per ADC of the file and selected node; None where a side was not seen."""
    speakers, _ = nodes.speakers(calico.nodes, state.cluster.as_number, state.cluster.nodes.exclude)
    by_node = {status.node: status for status in statuses}
    result = []
    for adc in state.adcs:
        device = next((snapshot for snapshot in adcs if snapshot.name == adc.name), None)
        for speaker in speakers:
            session = next(
                (s for s in (device.sessions if device else ()) if s.address == speaker.address), None
            )
            node_status = by_node.get(speaker.node)
            peer = next(
                (
                    p
                    for p in (node_status.peers if node_status else ())
                    if p.peer_ip == str(adc.peer_ip) and p.type == "GlobalPeer"
                ),
                None,
            )
            ends = [session.state if session else None, peer.state if peer else None]
            up = sum(end == ESTABLISHED for end in ends)
            result.append(
                Row(
                    adc=adc.name,
                    node=speaker.node,
                    address=speaker.address,
                    adc_state=ends[0],
                    adc_up_down=session.up_down if session else None,
                    adc_prefixes=session.prefixes if session else None,
                    calico_state=ends[1],
                    calico_since=peer.since if peer else None,
                    verdict="established" if up == 2 else "one-sided" if up == 1 else "down",
                )
            )
    return tuple(result)
