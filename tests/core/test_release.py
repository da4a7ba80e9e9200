"""release(desired, live): the changes that take peeringd's marks off, and nothing else."""

from __future__ import annotations

import ipaddress

from peeringd.core import live, ownership
from peeringd.core.plan import (
    Action,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    Plan,
    SaveChange,
    plan,
)
from peeringd.core.release import release
from tests import support
from tests.support import calico, device, neighbour, node, owned_peer, state

NODES = (node("node-a", "10.0.0.11"), node("node-b", "10.0.0.12"))
ADOPTED = owned_peer("bgppeer-global-3040", "10.0.0.100", 500).model_copy(
    update={"annotations": ((ownership.ADC_ANNOTATION, "adc-1"), (ownership.CLUSTER_ANNOTATION, "prod-1"))}
)


def owned_setup() -> live.LiveState:
    """An adopted setup, beside a hand-made neighbour and another cluster's peer and neighbour."""
    others = (
        neighbour("10.0.0.50"),
        live.Neighbour(
            address=ipaddress.IPv4Address("10.0.0.51"), remote_as=1, description="peeringd:prod-2:x"
        ),
    )
    return live.LiveState(
        calico=calico(*NODES, peers=(ADOPTED, owned_peer("adc-9", "10.0.0.98", 500, cluster="prod-2"))),
        adcs=(
            device(
                router_as=500,
                route_install=True,
                neighbours=(
                    neighbour("10.0.0.11", node_name="node-a"),
                    neighbour("10.0.0.12", node_name="node-b"),
                    *others,
                ),
            ),
        ),
    )


def released(address: str, node_name: str) -> NeighbourChange:
    return NeighbourChange(
        action=Action.RELEASE,
        adc="adc-1",
        address=ipaddress.IPv4Address(address),
        before=NeighbourSpec(remote_as=64512, description=f"peeringd:prod-1:{node_name}"),
        after=NeighbourSpec(remote_as=64512, description=None),
    )


def test_every_mark_of_this_cluster_is_released_and_nothing_else() -> None:
    """Descriptions of our neighbours, then our BGPPeer's marks; others' objects are not touched."""
    assert release(state(), owned_setup()) == Plan(
        changes=(
            released("10.0.0.11", "node-a"),
            released("10.0.0.12", "node-b"),
            SaveChange(action=Action.UPDATE, adc="adc-1"),
            PeerChange(
                action=Action.RELEASE,
                name="bgppeer-global-3040",
                adc="adc-1",
                before=PeerSpec(peer_ip="10.0.0.100", as_number=500),
                after=PeerSpec(peer_ip="10.0.0.100", as_number=500),
                resource_version="7",
            ),
        )
    )


def test_a_device_that_is_not_saved_by_the_file_is_not_saved() -> None:
    changes = release(state(support.adc(saveConfig=False)), owned_setup()).changes

    assert not any(isinstance(change, SaveChange) for change in changes)


def test_systems_that_were_not_observed_are_named_and_left() -> None:
    result = release(state(), live.LiveState())

    assert (result.changes, result.unobserved) == ((), ("adc-1", "calico"))


def test_after_a_release_a_plan_sees_everything_as_hand_made_and_changes_nothing() -> None:
    observed = support.apply(release(state(), owned_setup()), owned_setup())
    result = plan(state(), observed)

    assert result.changes == ()
    assert [finding.message.split(";")[0] for finding in result.findings] == [
        "BGPPeer bgppeer-global-3040 (not peeringd's) already peers with 10.0.0.100 (it agrees with the file: "
        "adoption, policy.adopt or --adopt, takes it over)",
        "neighbor 10.0.0.11 was not made by peeringd for cluster prod-1 and peers as wanted",
        "neighbor 10.0.0.12 was not made by peeringd for cluster prod-1 and peers as wanted",
    ]
    assert release(state(), observed).changes == ()
