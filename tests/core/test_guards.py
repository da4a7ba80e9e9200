"""Guards refuse destructive plans, each naming the policy field that would allow it."""

from __future__ import annotations

from peeringd.core import guards, live
from peeringd.core.plan import plan
from tests.support import adc, calico, device, neighbour, node, owned_peer, state

NODES = tuple(node(f"node-{i}", f"10.0.0.{10 + i}") for i in range(7))


def device_with_all_nodes(router_as: int = 500) -> live.AdcSnapshot:
    owned = tuple(neighbour(f"10.0.0.{10 + i}", node_name=f"node-{i}") for i in range(7))
    return device(router_as=router_as, route_install=True, neighbours=owned)


def refusals(desired_policy: dict[str, object], observed: live.LiveState) -> list[tuple[str, str]]:
    desired = state(policy=desired_policy)
    return [(r.target, r.policy) for r in guards.check(desired, observed, plan(desired, observed))]


def test_more_removals_than_max_deletes_are_refused() -> None:
    observed = live.LiveState(
        calico=calico(*NODES[:1], peers=(owned_peer("adc-1", "10.0.0.100", 500),)),
        adcs=(device_with_all_nodes(),),
    )

    assert refusals({"maxDeletes": 5}, observed) == [("adc-1", "maxDeletes")]
    assert refusals({"maxDeletes": 6}, observed) == []


def test_removing_every_managed_neighbour_needs_allow_empty() -> None:
    observed = live.LiveState(
        calico=calico(peers=(owned_peer("adc-1", "10.0.0.100", 500),)), adcs=(device_with_all_nodes(),)
    )

    assert refusals({"maxDeletes": 10}, observed) == [("adc-1", "allowEmpty")]
    assert refusals({"maxDeletes": 10, "allowEmpty": True}, observed) == []


def test_removing_every_managed_bgppeer_needs_allow_empty() -> None:
    desired = state(adcs=[])
    observed = live.LiveState(calico=calico(*NODES, peers=(owned_peer("adc-1", "10.0.0.100", 500),)))

    assert [r.policy for r in guards.check(desired, observed, plan(desired, observed))] == ["allowEmpty"]


def test_a_changed_adc_as_is_refused_with_the_reason() -> None:
    observed = live.LiveState(
        calico=calico(*NODES, peers=(owned_peer("adc-1", "10.0.0.100", 500),)),
        adcs=(device_with_all_nodes(router_as=400),),
    )
    desired = state(adc(as_number=500))
    (refusal,) = guards.check(desired, observed, plan(desired, observed))

    assert refusal == guards.Refusal(
        target="adc-1",
        policy="allowASChange",
        message="adc-1: router bgp 400 becomes 500, which drops every session on the device, "
        "neighbours not made by peeringd included",
    )


def test_a_changed_cluster_as_is_refused_even_from_the_unset_default() -> None:
    desired = state(cluster={"name": "prod-1", "podCIDR": "192.168.0.0/16", "asNumber": 64600})
    observed = live.LiveState(calico=calico(*NODES))

    assert [r.message for r in guards.check(desired, observed, plan(desired, observed))] == [
        "calico: the cluster AS 64512 becomes 64600, which re-peers every node"
    ]
