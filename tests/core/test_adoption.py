"""Adoption (policy.adopt): hand-made objects that agree with the file become peeringd's in place."""

from __future__ import annotations

import ipaddress

from peeringd.core import desired, guards, live, ownership
from peeringd.core.plan import (
    CALICO,
    Action,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    SaveChange,
    plan,
)
from tests import support
from tests.support import calico, device, neighbour, node, owned_peer, state

NODES = (node("node-a", "10.0.0.11"), node("node-b", "10.0.0.12"))
# The seed procedure's hand-made global peer, pointing at the file's adc-1.
HAND_MADE_PEER = live.BGPPeer(
    name="bgppeer-global-3040", peer_ip="10.0.0.100", as_number=500, resource_version="41"
)


def adopting(**policy: object) -> desired.PeeringState:
    return state(policy={"adopt": True, **policy})


def manual_setup(
    *neighbours: live.Neighbour, peers: tuple[live.BGPPeer, ...] = (HAND_MADE_PEER,)
) -> live.LiveState:
    """What the seed procedure leaves: a global BGPPeer and neighbours typed without description."""
    typed = neighbours or (neighbour("10.0.0.11"), neighbour("10.0.0.12"))
    return live.LiveState(
        calico=calico(*NODES, peers=peers),
        adcs=(device(router_as=500, route_install=True, neighbours=typed),),
    )


def adoption(address: str, node_name: str) -> NeighbourChange:
    return NeighbourChange(
        action=Action.ADOPT,
        adc="adc-1",
        address=ipaddress.IPv4Address(address),
        before=NeighbourSpec(remote_as=64512, description=None),
        after=NeighbourSpec(remote_as=64512, description=f"peeringd:prod-1:{node_name}"),
    )


def warnings(observed: live.LiveState, **policy: object) -> list[str]:
    return [finding.message for finding in plan(adopting(**policy), observed).findings]


class TestAdopted:
    def test_the_manual_setup_is_adopted_in_place_and_nothing_else_changes(self) -> None:
        """One description per neighbour, the marks on the hand-made BGPPeer, the save; no creation."""
        result = plan(adopting(), manual_setup())

        assert result.changes == (
            adoption("10.0.0.11", "node-a"),
            adoption("10.0.0.12", "node-b"),
            SaveChange(action=Action.UPDATE, adc="adc-1"),
            PeerChange(
                action=Action.ADOPT,
                name="bgppeer-global-3040",
                adc="adc-1",
                before=PeerSpec(peer_ip="10.0.0.100", as_number=500),
                after=PeerSpec(peer_ip="10.0.0.100", as_number=500),
                resource_version="41",
            ),
        )
        assert result.findings == ()
        assert result.counts()[Action.ADOPT] == 3

    def test_without_adoption_the_same_setup_is_hand_made_and_the_warnings_say_how_to_adopt(self) -> None:
        result = plan(state(), manual_setup())

        assert result.changes == ()
        assert [finding.message for finding in result.findings] == [
            "BGPPeer bgppeer-global-3040 (not peeringd's) already peers with 10.0.0.100 (it agrees with "
            "the file: adoption, policy.adopt or --adopt, takes it over); BGPPeer adc-1 not created, "
            "to avoid a duplicate",
            "neighbor 10.0.0.11 was not made by peeringd for cluster prod-1 and peers as wanted; left as "
            "it is (it agrees with the file: adoption, policy.adopt or --adopt, takes it over)",
            "neighbor 10.0.0.12 was not made by peeringd for cluster prod-1 and peers as wanted; left as "
            "it is (it agrees with the file: adoption, policy.adopt or --adopt, takes it over)",
        ]

    def test_a_second_plan_after_adopting_is_empty(self) -> None:
        observed = manual_setup()
        adopted = support.apply(plan(adopting(), observed), observed)

        assert plan(adopting(), adopted).changes == ()
        assert plan(state(), adopted).changes == ()

    def test_an_adopted_peer_keeps_standing_for_its_adc(self) -> None:
        """Later changes update or delete the adopted object; no peer named after the ADC appears."""
        observed = manual_setup()
        adopted = support.apply(plan(adopting(), observed), observed)
        moved = plan(state(support.adc(as_number=501)), adopted)
        gone = plan(state(adcs=[]), adopted)

        assert [(c.action, c.name) for c in moved.changes if isinstance(c, PeerChange)] == [
            (Action.UPDATE, "bgppeer-global-3040")
        ]
        assert [(c.action, c.name) for c in gone.changes if isinstance(c, PeerChange)] == [
            (Action.DELETE, "bgppeer-global-3040")
        ]

    def test_a_hand_made_peer_named_after_the_adc_is_adopted_too(self) -> None:
        named = HAND_MADE_PEER.model_copy(update={"name": "adc-1"})
        (change,) = [
            c for c in plan(adopting(), manual_setup(peers=(named,))).changes if isinstance(c, PeerChange)
        ]

        assert (change.action, change.name, change.adc) == (Action.ADOPT, "adc-1", None)


class TestNotAdopted:
    def test_a_neighbour_with_another_remote_as_stays_a_conflict(self) -> None:
        result = plan(adopting(), manual_setup(neighbour("10.0.0.11", 64999), neighbour("10.0.0.12")))

        assert [c.action for c in result.changes if isinstance(c, NeighbourChange)] == [Action.ADOPT]
        assert result.findings[0].message == (
            "neighbor 10.0.0.11 was not made by peeringd for cluster prod-1 and has remote-as 64999, "
            "not 64512; left as it is"
        )

    def test_a_neighbour_with_a_description_of_its_own_keeps_it(self) -> None:
        described = live.Neighbour(
            address=ipaddress.IPv4Address("10.0.0.11"), remote_as=64512, description="rack-4"
        )
        other_cluster = live.Neighbour(
            address=ipaddress.IPv4Address("10.0.0.12"), remote_as=64512, description="peeringd:prod-2:node-b"
        )

        assert warnings(manual_setup(described, other_cluster))[:2] == [
            "neighbor 10.0.0.11 was not made by peeringd for cluster prod-1 and has the description "
            "'rack-4', which adoption would replace; left as it is",
            "neighbor 10.0.0.12 was not made by peeringd for cluster prod-1 and has the description "
            "'peeringd:prod-2:node-b', which adoption would replace; left as it is",
        ]

    def test_a_peer_that_differs_from_the_file_is_neither_adopted_nor_duplicated(self) -> None:
        cases = {
            "in AS 600, not 500": HAND_MADE_PEER.model_copy(update={"as_number": 600}),
            "node-specific (node node-a)": HAND_MADE_PEER.model_copy(update={"node": "node-a"}),
            "for nodeSelector 'rack == 4'": HAND_MADE_PEER.model_copy(update={"node_selector": "rack == 4"}),
            "at 10.0.0.100:1179, another port": HAND_MADE_PEER.model_copy(
                update={"peer_ip": "10.0.0.100:1179"}
            ),
            "managed by Helm": HAND_MADE_PEER.model_copy(
                update={"labels": ((ownership.MANAGED_BY_LABEL, "Helm"),)}
            ),
            "peeringd's for cluster prod-2": owned_peer("bgppeer-global-3040", "10.0.0.100", 500, "prod-2"),
            "marked in part as peeringd's": HAND_MADE_PEER.model_copy(
                update={"annotations": ((ownership.CLUSTER_ANNOTATION, "prod-1"),)}
            ),
        }
        for reason, peer in cases.items():
            result = plan(adopting(), manual_setup(peers=(peer,)))

            assert [c for c in result.changes if isinstance(c, PeerChange)] == [], reason
            assert result.findings[-1].message == (
                f"BGPPeer bgppeer-global-3040 (not peeringd's) already peers with 10.0.0.100; it is {reason}, "
                "so it is not adopted; BGPPeer adc-1 not created, to avoid a duplicate"
            )

    def test_two_hand_made_peers_at_the_address_are_both_left(self) -> None:
        twin = HAND_MADE_PEER.model_copy(update={"name": "bgppeer-global-3041"})
        result = plan(adopting(), manual_setup(peers=(HAND_MADE_PEER, twin)))

        assert [c for c in result.changes if isinstance(c, PeerChange)] == []
        assert result.findings[-1].message == (
            "BGPPeers bgppeer-global-3040 and bgppeer-global-3041 (not peeringd's) already peer with "
            "10.0.0.100; which one to adopt is unclear; BGPPeer adc-1 not created, to avoid a duplicate"
        )

    def test_an_owned_peer_of_another_adc_with_the_adcs_name_is_not_replaced(self) -> None:
        """The name is taken by a peer standing for adc-2: creating adc-1 would fail, so it is reported."""
        taken = support.owned_peer("adc-1", "10.0.0.200", 500).model_copy(
            update={
                "annotations": (
                    (ownership.ADC_ANNOTATION, "adc-2"),
                    (ownership.CLUSTER_ANNOTATION, "prod-1"),
                )
            }
        )
        desired = state(
            support.adc("adc-1"), support.adc("adc-2", peer_ip="10.0.0.200"), policy={"adopt": True}
        )
        result = plan(desired, manual_setup(peers=(taken,)))

        assert [c for c in result.changes if isinstance(c, PeerChange)] == []
        assert "BGPPeer adc-1 exists but is peeringd's for another ADC; left as it is" in [
            f.message for f in result.findings
        ]


class TestGuards:
    def test_adoptions_are_not_removals_and_keep_a_system_from_counting_as_emptied(self) -> None:
        """maxDeletes 0 allows any number of adoptions; an adoption replacing the last removal is
        not an empty system."""
        gone = neighbour("10.0.0.99", node_name="node-gone")
        observed = manual_setup(neighbour("10.0.0.11"), neighbour("10.0.0.12"), gone)
        desired = adopting(maxDeletes=1)
        planned = plan(desired, observed)

        assert planned.counts() == {
            Action.CREATE: 0,
            Action.UPDATE: 1,
            Action.DELETE: 1,
            Action.ADOPT: 3,
            Action.RELEASE: 0,
        }
        assert guards.check(desired, observed, planned) == ()
        assert guards.check(adopting(maxDeletes=0), observed, planned)[0].policy == "maxDeletes"

    def test_adoption_counts_as_managed_only_for_its_own_system(self) -> None:
        observed = live.LiveState(
            calico=calico(*NODES, peers=(owned_peer("adc-old", "10.0.0.9", 500), HAND_MADE_PEER)),
            adcs=(device(router_as=500, route_install=True),),
        )
        desired = adopting(maxDeletes=5)
        planned = plan(desired, observed)

        assert [(c.action, c.name) for c in planned.for_target(CALICO) if isinstance(c, PeerChange)] == [
            (Action.ADOPT, "bgppeer-global-3040"),
            (Action.DELETE, "adc-old"),
        ]
        assert guards.check(desired, observed, planned) == ()
