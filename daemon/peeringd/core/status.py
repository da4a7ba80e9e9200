"""Every desired BGP session, seen from both ends: the ADC's summary and calico-node's status.

Pure: it joins what the adapters read. A session is ``established`` when both
ends say Established, ``one-sided`` when only one does, ``down`` when the ADC's
end is not Established and calico-node does not contradict it, and ``unknown``
when the ADC says Established but calico-node has not reported yet (a
CalicoNodeStatus just created is empty until then). The daemon does not ask for
calico-node's view: the ADC's end decides (``adc_sessions``), it sees every session.

Also pure: which CalicoNodeStatus objects ``peeringd status`` creates, keeps and
removes, with the update period a cluster of a given size can carry.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from peeringd.core import desired, live, nodes

__all__ = [
    "ESTABLISHED",
    "NOT_REPORTED",
    "PASSWORD_HINT",
    "Row",
    "StatusPlan",
    "adc_session_states",
    "adc_sessions",
    "expired",
    "plan_statuses",
    "rows",
    "update_period",
]

ESTABLISHED = "Established"
NOT_REPORTED = "calico-node has not reported yet"
# TCP MD5 drops the segments of a wrong password silently: neither end can say more than this.
PASSWORD_HINT = "the sessions have a BGP password: do both ends have the same one?"  # noqa: S105  # words
Verdict = Literal["established", "one-sided", "down", "unknown"]

# calico-node writes a CalicoNodeStatus at most once per update period (only when its
# content changed): the automatic period keeps the writes of all nodes together under
# this rate, whatever the cluster's size, within these bounds.
STATUS_WRITES_PER_SECOND = 10
MIN_UPDATE_SECONDS = 10
MAX_UPDATE_SECONDS = 300


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
    note: str | None = None

    @property
    def verdict_text(self) -> str:
        return f"{self.verdict} ({self.note})" if self.note else self.verdict


def rows(
    state: desired.PeeringState,
    calico: live.CalicoSnapshot,
    adcs: tuple[live.AdcSnapshot, ...],
    statuses: tuple[live.NodeStatus, ...],
) -> tuple[Row, ...]:
    """A row per ADC of the file and selected node; None where a side was not seen."""
    speakers, _ = nodes.speakers(calico.nodes, state.cluster.as_number, state.cluster.nodes.exclude)
    by_node = {status.node: status for status in statuses}
    result = []
    for adc in state.adcs:
        device = next((snapshot for snapshot in adcs if snapshot.name == adc.name), None)
        sessions = {session.address: session for session in (device.sessions if device else ())}
        for speaker in speakers:
            session = sessions.get(speaker.address)
            adc_state = session.state if session else None
            node_status = by_node.get(speaker.node)
            peer = next(
                (
                    p
                    for p in (node_status.peers if node_status else ())
                    if p.peer_ip == str(adc.peer_ip) and p.type == "GlobalPeer"
                ),
                None,
            )
            reported = node_status is not None and node_status.reported
            verdict, note = _verdict(adc_state, peer.state if peer else None, reported=reported)
            if verdict == "down" and note is None and adc.bgp_password is not None:
                note = PASSWORD_HINT
            result.append(
                Row(
                    adc=adc.name,
                    node=speaker.node,
                    address=speaker.address,
                    adc_state=adc_state,
                    adc_up_down=session.up_down if session else None,
                    adc_prefixes=session.prefixes if session else None,
                    calico_state=peer.state if peer else None,
                    calico_since=peer.since if peer else None,
                    verdict=verdict,
                    note=note,
                )
            )
    return tuple(result)


def adc_sessions(
    state: desired.PeeringState, calico: live.CalicoSnapshot, adcs: tuple[live.AdcSnapshot, ...]
) -> dict[tuple[str, str, str], bool]:
    """(ADC, node address, node) -> whether the ADC reports that desired session Established:
    the daemon's view, which asks calico-node for nothing (the ADC sees every session)."""
    return {(adc, address, node): up for adc, address, node, up in adc_session_states(state, calico, adcs)}


def adc_session_states(
    state: desired.PeeringState, calico: live.CalicoSnapshot, adcs: tuple[live.AdcSnapshot, ...]
) -> Iterator[tuple[str, str, str, bool]]:
    """``adc_sessions`` one (ADC, node address, node, up) at a time: what the metric is written
    from every pass, without 5,000 keys made at once."""
    speakers, _ = nodes.speakers(calico.nodes, state.cluster.as_number, state.cluster.nodes.exclude)
    for adc in adcs:
        up = {session.address for session in adc.sessions if session.state == ESTABLISHED}
        for speaker in speakers:
            yield adc.name, str(speaker.address), speaker.node, speaker.address in up


def _verdict(
    adc_state: str | None, calico_state: str | None, *, reported: bool
) -> tuple[Verdict, str | None]:
    if not reported and calico_state is None:
        # Silence is not "down": calico-node may simply not have written yet.
        return ("unknown", NOT_REPORTED) if adc_state == ESTABLISHED else ("down", None)
    up = (adc_state == ESTABLISHED) + (calico_state == ESTABLISHED)
    return ("established" if up == 2 else "one-sided" if up == 1 else "down"), None


def update_period(node_count: int) -> int:
    """Seconds between calico-node's reports: short for a few nodes, long enough for many
    that all of them together write at most ``STATUS_WRITES_PER_SECOND``."""
    wanted = math.ceil(node_count / STATUS_WRITES_PER_SECOND)
    return min(max(wanted, MIN_UPDATE_SECONDS), MAX_UPDATE_SECONDS)


class StatusPlan(BaseModel):
    """What ``peeringd status`` does to the CalicoNodeStatus objects before reading them."""

    model_config = ConfigDict(frozen=True)

    create: tuple[str, ...] = ()  # nodes that get one of ours
    extend: tuple[str, ...] = ()  # names of ours whose expiry moves on
    delete: tuple[str, ...] = ()  # names of ours no longer wanted
    expires: datetime


def plan_statuses(
    existing: tuple[live.NodeStatus, ...], wanted: tuple[str, ...], now: datetime, keep: timedelta
) -> StatusPlan:
    """Which objects to create, extend and delete so that every ``wanted`` node has one.

    A node's existing object serves, ours or not. Ours expire ``keep`` after a status call
    last needed them; a call renews only those with less than half of that left, so that
    calls in a row write nothing. Ours without an expiry were made by an earlier peeringd
    (every ``run`` pass made them, with a 10 s period): they are replaced.
    """
    wanted_nodes = set(wanted)
    delete = [s for s in existing if s.owned and (s.node not in wanted_nodes or s.expires_at is None)]
    kept = [s for s in existing if s not in delete]
    covered = {s.node for s in kept}
    extend = [
        s.name
        for s in kept
        if s.owned and s.expires_at is not None and keep and s.expires_at - now < keep / 2
    ]
    return StatusPlan(
        create=tuple(node for node in wanted if node not in covered),
        extend=tuple(extend),
        delete=tuple(s.name for s in delete),
        expires=now + keep,
    )


def expired(
    existing: tuple[live.NodeStatus, ...], now: datetime, nodes: Collection[str] | None = None
) -> tuple[str, ...]:
    """The names of ours whose time is up, whose node is gone (when ``nodes`` names the nodes
    there are), or that an earlier peeringd made without an expiry: what the daemon and
    ``apply`` remove."""
    return tuple(
        s.name
        for s in existing
        if s.owned
        and (s.expires_at is None or s.expires_at <= now or (nodes is not None and s.node not in nodes))
    )
