"""plan(desired, live): table tests of the minimal, ordered, ownership-respecting plan."""

from __future__ import annotations

import ipaddress
from typing import Any

from peeringd.core import live
from peeringd.core.plan import (
    Action,
    ConfigurationChange,
    ConfigurationSpec,
    FeatureChange,
    Finding,
    MaxPathsChange,
    NeighbourChange,
    NeighbourSpec,
    PeerChange,
    PeerSpec,
    RouteInstallChange,
    RouterChange,
    SaveChange,
    plan,
)
from tests import support
from tests.support import adc, calico, device, neighbour, node, owned_peer, state

NODES = (node("node-a", "10.0.0.11"), node("node-b", "10.0.0.12"))


def converged(*nodes: live.Node) -> live.LiveState:
    """The live state a converged system with ``nodes`` shows."""
    return live.LiveState(
        calico=calico(*nodes, peers=(owned_peer("adc-1", "10.0.0.100", 500),)),
        adcs=(
            device(
                router_as=500,
                route_install=True,
                neighbours=tuple(
                    neighbour(n.ipv4_address_annotation.partition("/")[0], node_name=n.name)
                    for n in nodes
                    if n.ipv4_address_annotation
                ),
            ),
        ),
    )


def with_calico(observed: live.LiveState, **fields: Any) -> live.LiveState:
    """``observed`` with some fields of its Calico snapshot replaced."""
    assert observed.calico is not None
    return observed.model_copy(update={"calico": observed.calico.model_copy(update=fields)})


def description(node_name: str) -> str:
    return f"peeringd:prod-1:{node_name}"


class TestFromScratch:
    def test_empty_systems_get_the_seed_procedure_in_safe_order(self) -> None:
        """Feature, router, neighbours and settings on the ADC first, then Calico's peer."""
        observed = live.LiveState(calico=calico(*NODES), adcs=(device(bgp_feature=False),))
        desired = state(adc(maxPaths={"ebgp": 8, "ibgp": 8}))

        expected = (
            FeatureChange(action=Action.UPDATE, adc="adc-1", before=False, after=True),
            RouterChange(action=Action.CREATE, adc="adc-1", before=None, after=500),
            NeighbourChange(
                action=Action.CREATE,
                adc="adc-1",
                address=ipaddress.IPv4Address("10.0.0.11"),
                before=None,
                after=NeighbourSpec(remote_as=64512, description=description("node-a")),
            ),
            NeighbourChange(
                action=Action.CREATE,
                adc="adc-1",
                address=ipaddress.IPv4Address("10.0.0.12"),
                before=None,
                after=NeighbourSpec(remote_as=64512, description=description("node-b")),
            ),
            MaxPathsChange(
                action=Action.UPDATE,
                adc="adc-1",
                before=live.MaxPaths(),
                after=live.MaxPaths(ebgp=8, ibgp=8),
            ),
            RouteInstallChange(action=Action.UPDATE, adc="adc-1", before=False, after=True),
            SaveChange(action=Action.UPDATE, adc="adc-1"),
            PeerChange(
                action=Action.CREATE,
                name="adc-1",
                before=None,
                after=PeerSpec(peer_ip="10.0.0.100", as_number=500),
            ),
        )
        assert expected == plan(desired, observed).changes

    def test_converged_systems_plan_nothing(self) -> None:
        """No change and no finding when live matches the file."""
        result = plan(state(), converged(*NODES))

        assert (result.changes, result.findings) == ((), ())


class TestNodes:
    def test_a_node_joining_adds_one_neighbour_per_adc_and_nothing_on_calico(self) -> None:
        """One new node: exactly one neighbour addition on each ADC."""
        desired = state(adc("adc-1", "10.0.0.100"), adc("adc-2", "10.0.0.101"))
        empty = live.LiveState(calico=calico(*NODES), adcs=(device("adc-1"), device("adc-2")))
        observed = support.apply(plan(desired, empty), empty)
        joined = with_calico(observed, nodes=(*NODES, node("node-c", "10.0.0.13")))

        expected = tuple(
            change
            for name in ("adc-1", "adc-2")
            for change in (
                NeighbourChange(
                    action=Action.CREATE,
                    adc=name,
                    address=ipaddress.IPv4Address("10.0.0.13"),
                    before=None,
                    after=NeighbourSpec(remote_as=64512, description=description("node-c")),
                ),
                SaveChange(action=Action.UPDATE, adc=name),
            )
        )
        assert expected == plan(desired, joined).changes

    def test_a_node_leaving_removes_only_its_neighbour(self) -> None:
        observed = converged(*NODES)
        gone = with_calico(observed, nodes=NODES[:1])

        expected = (
            NeighbourChange(
                action=Action.DELETE,
                adc="adc-1",
                address=ipaddress.IPv4Address("10.0.0.12"),
                before=NeighbourSpec(remote_as=64512, description=description("node-b")),
                after=None,
            ),
            SaveChange(action=Action.UPDATE, adc="adc-1"),
        )
        assert expected == plan(state(), gone).changes

    def test_excluded_nodes_are_not_peered(self) -> None:
        desired = state(
            cluster={
                "name": "prod-1",
                "podCIDR": "192.168.0.0/16",
                "asNumber": 64512,
                "nodes": {"exclude": ["node-b"]},
            }
        )
        changes = plan(desired, converged(*NODES)).changes

        assert [(c.action, str(c.address)) for c in changes if isinstance(c, NeighbourChange)] == [
            (Action.DELETE, "10.0.0.12")
        ]

    def test_node_as_annotation_and_internal_ip_fallback(self) -> None:
        """The AS annotation overrides the cluster's; InternalIP stands in for a missing address."""
        odd = live.Node(name="node-c", as_number_annotation="65001", internal_ips=("10.0.0.13",))
        observed = live.LiveState(calico=calico(odd), adcs=(device(router_as=500, route_install=True),))

        (change,) = [c for c in plan(state(), observed).changes if isinstance(c, NeighbourChange)]
        assert (change.address, change.after) == (
            ipaddress.IPv4Address("10.0.0.13"),
            NeighbourSpec(remote_as=65001, description=description("node-c")),
        )

    def test_a_node_without_address_is_skipped_with_a_warning(self) -> None:
        observed = converged(*NODES)
        bare = live.Node(name="node-x", ipv4_address_annotation="not-an-ip")
        observed = with_calico(observed, nodes=(*NODES, bare))
        result = plan(state(), observed)

        assert result.changes == ()
        assert [f.message for f in result.findings] == [
            "node node-x: projectcalico.org/IPv4Address='not-an-ip' is not an IPv4 address; using its InternalIP",
            "node node-x has no IPv4 BGP address or InternalIP; not peered",
        ]


class TestOwnership:
    def test_hand_made_neighbour_for_a_desired_node_is_reported_not_changed(self) -> None:
        observed = converged(*NODES)
        hand_made = device(
            router_as=500,
            route_install=True,
            neighbours=(neighbour("10.0.0.11", remote_as=64999), neighbour("10.0.0.12", node_name="node-b")),
        )
        result = plan(state(), observed.model_copy(update={"adcs": (hand_made,)}))

        assert result.changes == ()
        assert result.findings == (
            Finding(
                severity="warning",
                target="adc-1",
                message="neighbor 10.0.0.11 was not made by peeringd for cluster prod-1 and has "
                "remote-as 64999, not 64512; left as it is",
            ),
        )

    def test_unowned_neighbours_of_gone_nodes_stay(self) -> None:
        """Neighbours without our description, or with another cluster's, are never removed."""
        others = (
            neighbour("10.0.0.50"),
            live.Neighbour(
                address=ipaddress.IPv4Address("10.0.0.51"), remote_as=1, description="peeringd:prod-2:x"
            ),
        )
        observed = converged(*NODES)
        snapshot = observed.adcs[0].model_copy(update={"neighbours": observed.adcs[0].neighbours + others})

        assert plan(state(), observed.model_copy(update={"adcs": (snapshot,)})).changes == ()

    def test_owned_neighbour_with_wrong_as_is_updated(self) -> None:
        observed = converged(*NODES)
        wrong = observed.adcs[0].model_copy(
            update={
                "neighbours": (
                    neighbour("10.0.0.11", 1, "node-a"),
                    neighbour("10.0.0.12", node_name="node-b"),
                )
            }
        )
        change, save = plan(state(), observed.model_copy(update={"adcs": (wrong,)})).changes

        assert isinstance(change, NeighbourChange)
        assert save == SaveChange(action=Action.UPDATE, adc="adc-1")
        assert (change.action, change.before, change.after) == (
            Action.UPDATE,
            NeighbourSpec(remote_as=1, description=description("node-a")),
            NeighbourSpec(remote_as=64512, description=description("node-a")),
        )

    def test_unowned_bgppeer_with_our_name_is_a_conflict(self) -> None:
        theirs = live.BGPPeer(name="adc-1", peer_ip="10.0.0.100", as_number=500)
        observed = converged(*NODES)
        observed = with_calico(observed, peers=(theirs,))
        result = plan(state(), observed)

        assert result.changes == ()
        assert [f.message for f in result.findings] == [
            "BGPPeer adc-1 exists but is not peeringd's for cluster prod-1; left as it is"
        ]

    def test_unowned_bgppeer_at_the_same_ip_prevents_a_duplicate(self) -> None:
        theirs = live.BGPPeer(name="bgp-netscaler", peer_ip="10.0.0.100", as_number=500)
        observed = converged(*NODES)
        observed = with_calico(observed, peers=(theirs,))
        result = plan(state(), observed)

        assert result.changes == ()
        assert "avoid a duplicate" in result.findings[0].message

    def test_peer_of_a_removed_adc_is_deleted_but_other_clusters_peers_stay(self) -> None:
        ours = owned_peer("adc-old", "10.0.0.99", 500)
        other_cluster = owned_peer("adc-9", "10.0.0.98", 500, cluster="prod-2")
        observed = converged(*NODES)
        observed = with_calico(observed, peers=(owned_peer("adc-1", "10.0.0.100", 500), ours, other_cluster))

        assert plan(state(), observed).changes == (
            PeerChange(
                action=Action.DELETE,
                name="adc-old",
                before=PeerSpec(peer_ip="10.0.0.99", as_number=500),
                after=None,
                resource_version="7",
            ),
        )


class TestCalico:
    def test_unset_calico_defaults_match_as_64512_and_mesh_on(self) -> None:
        """Server defaults are normalised: no write when the file asks for them."""
        desired = state(
            cluster={"name": "prod-1", "podCIDR": "192.168.0.0/16", "asNumber": 64512, "nodeToNodeMesh": True}
        )
        observed = converged(*NODES)
        with_empty = with_calico(observed, configuration=live.BGPConfiguration())

        assert plan(desired, observed).changes == plan(desired, with_empty).changes == ()

    def test_mesh_off_updates_only_the_owned_fields(self) -> None:
        desired = state(
            cluster={
                "name": "prod-1",
                "podCIDR": "192.168.0.0/16",
                "asNumber": 64512,
                "nodeToNodeMesh": False,
            }
        )
        observed = converged(*NODES)
        observed = with_calico(observed, configuration=live.BGPConfiguration(resource_version="3"))

        assert plan(desired, observed).changes == (
            ConfigurationChange(
                action=Action.UPDATE,
                before=ConfigurationSpec(),
                after=ConfigurationSpec(as_number=64512, node_to_node_mesh=False),
                resource_version="3",
            ),
        )

    def test_pod_cidr_matching_no_pool_is_an_error(self) -> None:
        observed = converged(*NODES)
        other_pool = (live.IPPool(name="p", cidr="10.244.0.0/16"),)
        observed = with_calico(observed, pools=other_pool)

        assert [f.message for f in plan(state(), observed).errors] == [
            "podCIDR 192.168.0.0/16 matches no live IPPool (pools: 10.244.0.0/16); "
            "is the file meant for this cluster?"
        ]


class TestUnobserved:
    def test_calico_down_leaves_neighbours_alone_but_fixes_device_settings_unsaved(self) -> None:
        """Not saved: the neighbours may be half-done, and a save would keep them so."""
        observed = live.LiveState(calico=None, adcs=(device(router_as=500, route_install=False),))
        result = plan(state(), observed)

        assert result.changes == (
            RouteInstallChange(action=Action.UPDATE, adc="adc-1", before=False, after=True),
        )
        assert result.unobserved == ("calico",)

    def test_an_unsaved_device_is_not_saved_while_calico_is_unobserved(self) -> None:
        half_done = (neighbour("10.0.0.11", node_name="node-a"),)
        stale = device(router_as=500, route_install=True, neighbours=half_done, unsaved=True)

        assert plan(state(), live.LiveState(calico=None, adcs=(stale,))).changes == ()

    def test_an_unreachable_adc_does_not_stop_calico(self) -> None:
        result = plan(state(), live.LiveState(calico=calico(*NODES)))

        assert [type(c) for c in result.changes] == [PeerChange]
        assert result.unobserved == ("adc-1",)

    def test_router_as_change_waits_for_calico(self) -> None:
        """Replacing router bgp drops every neighbour; without the node list it is not attempted."""
        observed = live.LiveState(calico=None, adcs=(device(router_as=600, route_install=True),))
        result = plan(state(), observed)

        assert result.changes == ()
        assert "waiting until Calico is observed" in result.findings[-1].message


def test_router_as_change_recreates_every_desired_neighbour() -> None:
    observed = converged(*NODES)
    moved = observed.adcs[0].model_copy(update={"router_as": 600})
    changes = plan(state(), observed.model_copy(update={"adcs": (moved,)})).changes

    assert [(c.kind, c.action) for c in changes] == [
        ("router-bgp", Action.UPDATE),
        ("neighbour", Action.CREATE),
        ("neighbour", Action.CREATE),
        ("save", Action.UPDATE),
    ]


class TestSave:
    def test_an_unsaved_device_is_saved_even_without_other_changes(self) -> None:
        """A save that failed in an earlier pass leaves the device unsaved: the next pass saves."""
        observed = converged(*NODES)
        unsaved = observed.model_copy(
            update={"adcs": (observed.adcs[0].model_copy(update={"unsaved": True}),)}
        )

        assert plan(state(), unsaved).changes == (SaveChange(action=Action.UPDATE, adc="adc-1"),)

    def test_without_save_config_nothing_is_saved(self) -> None:
        observed = converged(*NODES[:1])
        joined = with_calico(observed, nodes=NODES).model_copy(
            update={"adcs": (observed.adcs[0].model_copy(update={"unsaved": True}),)}
        )

        assert [c.kind for c in plan(state(adc(saveConfig=False)), joined).changes] == ["neighbour"]
