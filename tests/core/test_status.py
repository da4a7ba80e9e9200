"""Both ends of each session joined into verdicts, and the CalicoNodeStatus objects `status` keeps."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from peeringd.core import live, status
from tests import support

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEEP = timedelta(minutes=15)
NODES = (support.node("node-1", "10.0.0.11"), support.node("node-2", "10.0.0.12"))


def device(**states: str) -> live.AdcSnapshot:
    """adc-1 reporting ``states`` by node address."""
    return support.device(
        router_as=500,
        sessions=tuple(
            live.Session(address=ipaddress.IPv4Address(address), state=state)
            for address, state in states.items()
        ),
    )


def reported(node: str, state: str | None) -> live.NodeStatus:
    """calico-node's report for ``node``: its session with adc-1 in ``state`` (None: no such peer)."""
    peers = () if state is None else (live.PeerStatus(peer_ip="10.0.0.100", type="GlobalPeer", state=state),)
    return live.NodeStatus(node=node, peers=peers, reported=True)


def verdicts(adc: live.AdcSnapshot, statuses: tuple[live.NodeStatus, ...]) -> list[str]:
    rows = status.rows(support.state(), support.calico(*NODES), (adc,), statuses)
    return [row.verdict_text for row in rows]


@pytest.mark.parametrize(
    ("adc_state", "calico", "expected"),
    [
        ("Established", reported("node-1", "Established"), "established"),
        ("Established", reported("node-1", "Active"), "one-sided"),
        ("Active", reported("node-1", "Established"), "one-sided"),
        ("Active", reported("node-1", "Active"), "down"),
        ("Established", live.NodeStatus(node="node-1"), "unknown (calico-node has not reported yet)"),
        ("Established", None, "unknown (calico-node has not reported yet)"),
        ("Active", live.NodeStatus(node="node-1"), "down"),
    ],
)
def test_a_session_is_judged_from_both_ends(
    adc_state: str, calico: live.NodeStatus | None, expected: str
) -> None:
    """A calico-node that has not reported makes a session unknown, never one-sided."""
    statuses = () if calico is None else (calico,)

    assert verdicts(device(**{"10.0.0.11": adc_state}), statuses)[0] == expected


def test_without_calico_nodes_view_the_adc_decides() -> None:
    """The daemon asks for no CalicoNodeStatus: the ADC sees every session."""
    adc = device(**{"10.0.0.11": "Established", "10.0.0.12": "Idle"})

    assert status.adc_sessions(support.state(), support.calico(*NODES), (adc,)) == {
        ("adc-1", "10.0.0.11", "node-1"): True,
        ("adc-1", "10.0.0.12", "node-2"): False,
    }


@pytest.mark.parametrize(("nodes", "expected"), [(3, 10), (100, 10), (1000, 100), (2500, 250), (5000, 300)])
def test_the_update_period_keeps_calico_nodes_writes_near_ten_a_second(nodes: int, expected: int) -> None:
    assert status.update_period(nodes) == expected


def owned(node: str, expires_at: datetime | None, name: str | None = None) -> live.NodeStatus:
    return live.NodeStatus(
        node=node, name=name or f"peeringd.{node}", owned=True, expires_at=expires_at, reported=True
    )


def test_missing_ones_are_created_and_anyones_existing_one_serves() -> None:
    theirs = live.NodeStatus(node="node-2", name="debug-node-2", reported=True)
    todo = status.plan_statuses((theirs,), ("node-1", "node-2"), NOW, KEEP)

    assert (todo.create, todo.extend, todo.delete, todo.expires) == (("node-1",), (), (), NOW + KEEP)


def test_calls_in_a_row_write_nothing_until_half_the_retention_is_left() -> None:
    fresh = owned("node-1", NOW + KEEP - timedelta(minutes=1))
    aging = owned("node-2", NOW + timedelta(minutes=5))
    todo = status.plan_statuses((fresh, aging), ("node-1", "node-2"), NOW, KEEP)

    assert (todo.create, todo.extend, todo.delete) == ((), ("peeringd.node-2",), ())


def test_ours_for_a_node_gone_and_those_without_an_expiry_are_deleted() -> None:
    """An earlier peeringd made them without an expiry (for every node, every 10 s): replaced."""
    gone = owned("node-9", NOW + KEEP)
    legacy = owned("node-1", None)
    todo = status.plan_statuses((gone, legacy), ("node-1",), NOW, KEEP)

    assert (todo.create, todo.delete) == (("node-1",), ("peeringd.node-9", "peeringd.node-1"))


def test_only_ours_that_expired_are_swept() -> None:
    theirs = live.NodeStatus(node="node-3", name="debug", expires_at=NOW - KEEP)
    statuses = (
        owned("node-1", NOW - timedelta(seconds=1)),
        owned("node-2", NOW + KEEP),
        owned("x", None),
        theirs,
    )

    assert status.expired(statuses, NOW) == ("peeringd.node-1", "peeringd.x")
