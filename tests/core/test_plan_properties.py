"""Properties of plan and guards over generated desired and live states."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peeringd.core import desired, guards, live, nodes, ownership
from peeringd.core.plan import (
    CALICO,
    CALICO_DEFAULT_AS,
    Action,
    ConfigurationChange,
    NeighbourChange,
    PeerChange,
    RouterChange,
    SaveChange,
    plan,
)
from tests import support

NODE_NAMES = [f"node-{index}" for index in range(8)]
NODE_ADDRESSES = [f"10.0.0.{index}" for index in range(10, 18)]
ADC_NAMES = ["adc-1", "adc-2", "adc-3"]
OTHER_CLUSTER = "prod-2"


@st.composite
def desired_states(draw: st.DrawFn) -> desired.PeeringState:
    names = draw(st.lists(st.sampled_from(ADC_NAMES), unique=True, max_size=3))
    adcs = [
        support.adc(
            name,
            peer_ip=f"10.1.0.{ADC_NAMES.index(name) + 1}",
            as_number=draw(st.sampled_from([500, 501])),
            maxPaths=draw(st.none() | st.fixed_dictionaries({"ebgp": st.integers(1, 8)})),
            installRoutes=draw(st.booleans()),
            saveConfig=draw(st.booleans()),
        )
        for name in names
    ]
    document: dict[str, Any] = {
        "apiVersion": "peeringd/v1",
        "kind": "PeeringState",
        "cluster": {
            "name": support.CLUSTER,
            "podCIDR": "192.168.0.0/16",
            "asNumber": draw(st.sampled_from([64512, 64513])),
            "nodeToNodeMesh": draw(st.none() | st.booleans()),
            "nodes": {"exclude": draw(st.lists(st.sampled_from(NODE_NAMES), unique=True, max_size=2))},
        },
        "adcs": adcs,
        "policy": {
            "maxDeletes": draw(st.integers(0, 4)),
            "allowEmpty": draw(st.booleans()),
            "allowASChange": draw(st.booleans()),
        },
    }
    return desired.PeeringState.model_validate(document)


def live_nodes() -> st.SearchStrategy[tuple[live.Node, ...]]:
    node = st.builds(
        live.Node,
        name=st.sampled_from(NODE_NAMES),
        ipv4_address_annotation=st.none()
        | st.sampled_from(NODE_ADDRESSES).map(lambda a: f"{a}/24")
        | st.just("bogus"),
        as_number_annotation=st.none() | st.sampled_from(["65001", "x"]),
        internal_ips=st.lists(st.sampled_from(NODE_ADDRESSES), max_size=1).map(tuple),
    )
    return st.lists(node, unique_by=lambda n: n.name, max_size=6).map(tuple)


@st.composite
def peers(draw: st.DrawFn) -> tuple[live.BGPPeer, ...]:
    result = []
    for name in draw(st.lists(st.sampled_from([*ADC_NAMES, "adc-old", "hand"]), unique=True, max_size=4)):
        peer_ip = draw(st.sampled_from(["10.1.0.1", "10.1.0.2", "10.1.0.9"]))
        as_number = draw(st.sampled_from([500, 501]))
        owner = draw(st.sampled_from(["ours", "theirs", "other-cluster"]))
        if owner == "theirs":
            result.append(live.BGPPeer(name=name, peer_ip=peer_ip, as_number=as_number))
        else:
            cluster = support.CLUSTER if owner == "ours" else OTHER_CLUSTER
            result.append(support.owned_peer(name, peer_ip, as_number, cluster))
    return tuple(result)


@st.composite
def devices(draw: st.DrawFn, names: list[str]) -> tuple[live.AdcSnapshot, ...]:
    snapshots = []
    for name in names:
        if not draw(st.booleans()) and draw(st.booleans()):
            continue  # unreachable this pass
        neighbours = []
        for address in draw(
            st.lists(st.sampled_from([*NODE_ADDRESSES, "10.0.0.99"]), unique=True, max_size=5)
        ):
            description = draw(
                st.none()
                | st.just("hand made")
                | st.sampled_from(NODE_NAMES).map(lambda n: ownership.description(support.CLUSTER, n))
                | st.just(ownership.description(OTHER_CLUSTER, "x"))
            )
            neighbours.append(
                live.Neighbour(
                    address=ipaddress.IPv4Address(address),
                    remote_as=draw(st.sampled_from([64512, 64513, 65001])),
                    description=description,
                )
            )
        router_as = draw(st.none() | st.sampled_from([500, 501]))
        snapshots.append(
            live.AdcSnapshot(
                name=name,
                bgp_feature=draw(st.booleans()),
                router_as=router_as,
                # Neighbours live inside `router bgp`: none without it.
                neighbours=tuple(neighbours) if router_as else (),
                max_paths=live.MaxPaths(ebgp=draw(st.none() | st.integers(1, 8))),
                route_install=draw(st.booleans()),
                unsaved=draw(st.booleans()),
            )
        )
    return tuple(snapshots)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[desired.PeeringState, live.LiveState]:
    state = draw(desired_states())
    calico = None
    if draw(st.integers(0, 4)):  # Calico is observed most of the time
        calico = live.CalicoSnapshot(
            api_group="crd.projectcalico.org/v1",
            configuration=draw(
                st.none()
                | st.builds(
                    live.BGPConfiguration,
                    as_number=st.none() | st.sampled_from([64512, 64513]),
                    node_to_node_mesh=st.none() | st.booleans(),
                    resource_version=st.just("1"),
                )
            ),
            peers=draw(peers()),
            nodes=draw(live_nodes()),
            pools=(live.IPPool(name="default", cidr="192.168.0.0/16"),),
        )
    return state, live.LiveState(calico=calico, adcs=draw(devices([adc.name for adc in state.adcs])))


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(worlds())
def test_applying_a_plan_converges_in_one_pass(world: tuple[desired.PeeringState, live.LiveState]) -> None:
    """plan(desired, apply(plan, live)) is empty."""
    state, observed = world
    after = support.apply(plan(state, observed), observed)

    assert plan(state, after).changes == ()


@PROPERTY
@given(worlds())
def test_objects_that_are_not_ours_never_appear_in_a_change(
    world: tuple[desired.PeeringState, live.LiveState],
) -> None:
    state, observed = world
    cluster = state.cluster.name
    planned = plan(state, observed)
    replaced_routers = {c.adc for c in planned.changes if isinstance(c, RouterChange)}
    for change in planned.changes:
        if isinstance(change, PeerChange):
            assert observed.calico is not None
            existing = next((p for p in observed.calico.peers if p.name == change.name), None)
            if change.action == Action.CREATE:
                assert existing is None
            else:
                assert existing is not None
                assert ownership.owns_peer(existing, cluster)
        elif isinstance(change, NeighbourChange) and change.adc not in replaced_routers:
            snapshot = observed.adc(change.adc)
            assert snapshot is not None
            existing_neighbour = snapshot.neighbour(change.address)
            if change.action == Action.CREATE:
                assert existing_neighbour is None
            else:
                assert existing_neighbour is not None
                assert ownership.owns_neighbour(existing_neighbour, cluster)


def _managed(observed: live.LiveState, target: str, cluster: str) -> int:
    if target == CALICO:
        return sum(ownership.owns_peer(p, cluster) for p in observed.calico.peers) if observed.calico else 0
    snapshot = observed.adc(target)
    return sum(ownership.owns_neighbour(n, cluster) for n in snapshot.neighbours) if snapshot else 0


@PROPERTY
@given(worlds())
def test_guards_hold(world: tuple[desired.PeeringState, live.LiveState]) -> None:
    """A plan the guards accept stays within maxDeletes, never empties a system, keeps every AS."""
    state, observed = world
    planned = plan(state, observed)
    refused = {(r.target, r.policy) for r in guards.check(state, observed, planned)}
    after = support.apply(planned, observed)
    cluster = state.cluster.name
    for target in (CALICO, *(adc.name for adc in state.adcs)):
        deletes = sum(1 for c in planned.for_target(target) if c.action == Action.DELETE)
        assert (deletes > state.policy.max_deletes) == ((target, "maxDeletes") in refused)
        emptied = _managed(observed, target, cluster) > 0 and _managed(after, target, cluster) == 0
        if emptied and not state.policy.allow_empty:
            assert (target, "allowEmpty") in refused
    as_changed = any(
        isinstance(c, RouterChange) and c.action == Action.UPDATE for c in planned.changes
    ) or any(
        isinstance(c, ConfigurationChange)
        and ((c.before.as_number if c.before else None) or CALICO_DEFAULT_AS) != c.after.as_number
        for c in planned.changes
    )
    if as_changed and not state.policy.allow_as_change:
        assert any(policy == "allowASChange" for _, policy in refused)


def _speakers(state: desired.PeeringState, observed: live.LiveState) -> tuple[nodes.Speaker, ...]:
    assert observed.calico is not None
    return nodes.speakers(observed.calico.nodes, state.cluster.as_number, state.cluster.nodes.exclude)[0]


@PROPERTY
@given(worlds(), st.sampled_from(["node-new", "node-gone"]))
def test_one_node_joining_or_leaving_changes_exactly_its_neighbours(
    world: tuple[desired.PeeringState, live.LiveState], event: str
) -> None:
    state, observed = world
    if observed.calico is None:
        observed = observed.model_copy(update={"calico": support.calico()})
    converged = support.apply(plan(state, observed), observed)
    assert converged.calico is not None
    speakers = _speakers(state, converged)
    if event == "node-new":
        used = {str(s.address) for s in speakers}
        address = next(a for a in (f"10.0.3.{i}" for i in range(1, 20)) if a not in used)
        changed = (*converged.calico.nodes, support.node("node-new", address))
        expected_action = Action.CREATE
    else:
        if not speakers:
            return
        gone = speakers[0]
        address = str(gone.address)
        changed = tuple(n for n in converged.calico.nodes if n.name != gone.node)
        expected_action = Action.DELETE
    after = converged.model_copy(update={"calico": converged.calico.model_copy(update={"nodes": changed})})
    if event == "node-gone" and {str(s.address) for s in _speakers(state, after)} >= {address}:
        return  # another node claims the same address and keeps the neighbour
    owned_here = {
        snapshot.name
        for snapshot in converged.adcs
        if (n := snapshot.neighbour(ipaddress.IPv4Address(address))) is None
        or ownership.owns_neighbour(n, state.cluster.name)
    }

    expected = sorted(
        (adc.name, expected_action, address)
        for adc in state.adcs
        if converged.adc(adc.name) is not None and adc.name in owned_here
    )
    changes = plan(state, after).changes
    actual = sorted((c.target, c.action, str(c.address)) for c in changes if isinstance(c, NeighbourChange))
    assert expected == actual
    saved = {adc.name for adc in state.adcs if adc.save_config}
    assert sorted(c.target for c in changes if isinstance(c, SaveChange)) == sorted(
        target for target, _, _ in expected if target in saved
    )
    assert all(isinstance(c, NeighbourChange | SaveChange) for c in changes)
