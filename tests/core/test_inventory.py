"""inventory.describe: the v1 document for what runs, each value sourced, and what v1 cannot say."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from peeringd.core import desired, inventory, live, secret
from peeringd.core.plan import Action, SaveChange, plan
from tests.core.test_plan_properties import PROPERTY
from tests.support import calico, device, neighbour, node

NODES = tuple(node(f"node-{i}", f"10.0.0.{10 + i}") for i in (1, 2, 3))
HAND_MADE = live.BGPPeer(name="bgppeer-global-3040", peer_ip="10.102.33.208", as_number=500)
LOGIN = inventory.Login(username="nsroot", password_file="/etc/peeringd/adc-1.password")


def request(*adcs: inventory.AdcLogin) -> inventory.Request:
    return inventory.Request(
        cluster="prod-1",
        adcs=adcs or (inventory.AdcLogin(name="adc-1", host="10.102.33.208"),),
        login=LOGIN,
    )


def seed_device(*neighbours: live.Neighbour, name: str = "adc-1") -> live.AdcSnapshot:
    """The ADC as the seed procedure leaves it: router bgp 500, max-paths 8, route-install."""
    typed = neighbours or tuple(neighbour(f"10.0.0.{10 + i}") for i in (1, 2, 3))
    return device(
        name=name,
        router_as=500,
        neighbours=typed,
        max_paths=live.MaxPaths(ebgp=8, ibgp=8),
        route_install=True,
    )


def plain(node: Any) -> Any:
    """The document's values without their sources."""
    if isinstance(node, inventory.Sourced):
        return node.value
    if isinstance(node, dict):
        return {key: plain(value) for key, value in node.items()}
    return [plain(item) for item in node]


def gaps(description: inventory.Description) -> list[str]:
    return [str(gap) for gap in description.gaps]


def test_the_seed_procedure_is_described_whole_with_the_source_of_each_value() -> None:
    described = inventory.describe(request(), calico(*NODES, peers=(HAND_MADE,)), {"adc-1": seed_device()})

    assert described.gaps == ()
    assert plain(described.document) == {
        "apiVersion": "peeringd/v1",
        "kind": "PeeringState",
        "cluster": {
            "name": "prod-1",
            "podCIDR": "192.168.0.0/16",
            "asNumber": 64512,
            "nodeToNodeMesh": True,
            "nodes": {"selector": "", "exclude": []},
        },
        "adcs": [
            {
                "name": "adc-1",
                "asNumber": 500,
                "peerIP": "10.102.33.208",
                "platform": "netscaler",
                "maxPaths": {"ebgp": 8, "ibgp": 8},
                "installRoutes": True,
                "ssh": {
                    "host": "10.102.33.208",
                    "port": 22,
                    "username": "nsroot",
                    "passwordFile": "/etc/peeringd/adc-1.password",
                },
            }
        ],
    }
    adc = described.document["adcs"][0]
    assert [adc[key].source for key in ("name", "asNumber", "peerIP", "maxPaths", "installRoutes")] == [
        "--adc adc-1=10.102.33.208",
        "adc-1 show running-config: router bgp 500",
        "BGPPeer bgppeer-global-3040 spec.peerIP",
        "adc-1 show running-config: max-paths ebgp 8, ibgp 8",
        "adc-1 show running-config: ns route-install bgp",
    ]
    assert described.document["cluster"]["asNumber"].source == "no BGPConfiguration default: Calico's default"
    assert described.notes == (
        "BGPPeer bgppeer-global-3040 stands for ADC adc-1; adopted, it keeps its name",
    )


def test_the_cluster_values_come_from_bgpconfiguration_when_it_sets_them() -> None:
    configuration = live.BGPConfiguration(as_number=64600, node_to_node_mesh=False)
    cluster = inventory.describe(
        request(), calico(*NODES, peers=(HAND_MADE,), configuration=configuration), {"adc-1": seed_device()}
    ).document["cluster"]

    assert (cluster["asNumber"].value, cluster["asNumber"].source) == (
        64600,
        "BGPConfiguration default spec.asNumber",
    )
    assert (cluster["nodeToNodeMesh"].value, cluster["nodeToNodeMesh"].source) == (
        False,
        "BGPConfiguration default spec.nodeToNodeMeshEnabled",
    )


def test_nodes_no_adc_peers_are_excluded() -> None:
    only_two = seed_device(neighbour("10.0.0.11"), neighbour("10.0.0.12"))
    nodes = inventory.describe(request(), calico(*NODES, peers=(HAND_MADE,)), {"adc-1": only_two}).document[
        "cluster"
    ]["nodes"]

    assert (nodes["exclude"].value, nodes["exclude"].source) == (
        ["node-3"],
        "the Nodes no ADC has a neighbour for",
    )


class TestWhichPeerIsTheAdcs:
    def test_a_management_address_falls_back_to_the_peer_with_the_adcs_as(self) -> None:
        login = inventory.AdcLogin(name="adc-1", host="192.0.2.10")
        peer_ip = inventory.describe(
            request(login), calico(*NODES, peers=(HAND_MADE,)), {"adc-1": seed_device()}
        ).document["adcs"][0]["peerIP"]

        assert (peer_ip.value, peer_ip.source) == ("10.102.33.208", "BGPPeer bgppeer-global-3040 spec.peerIP")

    def test_two_adcs_in_one_as_need_their_addresses_named(self) -> None:
        other = HAND_MADE.model_copy(update={"name": "bgppeer-global-3041", "peer_ip": "10.102.33.209"})
        logins = (
            inventory.AdcLogin(name="adc-1", host="mgmt-1.example"),
            inventory.AdcLogin(name="adc-2", host="mgmt-2.example"),
        )
        devices = {"adc-1": seed_device(), "adc-2": seed_device(name="adc-2")}
        ambiguous = inventory.describe(request(*logins), calico(*NODES, peers=(HAND_MADE, other)), devices)
        named = tuple(
            login.model_copy(update={"peer_ip": ipaddress.IPv4Address(address)})
            for login, address in zip(logins, ("10.102.33.208", "10.102.33.209"), strict=True)
        )
        resolved = inventory.describe(request(*named), calico(*NODES, peers=(HAND_MADE, other)), devices)

        assert gaps(ambiguous)[0] == (
            "ADC adc-1: BGPPeers bgppeer-global-3040 and bgppeer-global-3041 all have asNumber 500: "
            "name the address the nodes peer with, --peer-ip adc-1=IP"
        )
        assert resolved.gaps == ()
        assert [adc["peerIP"].value for adc in resolved.document["adcs"]] == [
            "10.102.33.208",
            "10.102.33.209",
        ]

    def test_a_named_address_without_a_peer_is_described_for_peeringd_to_create(self) -> None:
        login = inventory.AdcLogin(name="adc-1", host="10.102.33.208", peer_ip="10.102.33.208")
        described = inventory.describe(request(login), calico(*NODES), {"adc-1": seed_device()})

        assert described.gaps == ()
        assert described.document["adcs"][0]["peerIP"].source == (
            "--peer-ip (no BGPPeer points at it: peeringd creates one)"
        )


def test_what_v1_cannot_describe_is_named_with_the_reason() -> None:
    peers = (
        HAND_MADE,
        live.BGPPeer(name="tor-1", peer_ip="10.0.0.1", as_number=65000, node="node-1"),
        live.BGPPeer(name="rack-4", peer_ip="10.0.0.2", as_number=65000, node_selector="rack == '4'"),
        live.BGPPeer(name="bgppeer-global-9", peer_ip="10.102.33.250", as_number=600),
    )
    odd = seed_device(
        neighbour("10.0.0.11"),
        neighbour("10.0.0.12", remote_as=64999),
        neighbour("10.0.0.99"),
    )
    logins = (
        inventory.AdcLogin(name="adc-1", host="10.102.33.208"),
        inventory.AdcLogin(name="adc-2", host="10.102.33.210", peer_ip="10.102.33.210"),
        inventory.AdcLogin(name="adc-3", host="10.102.33.211"),
        inventory.AdcLogin(name="adc-4", host="10.102.33.212"),
    )
    devices: dict[str, live.AdcSnapshot | str] = {
        "adc-1": odd,
        "adc-2": seed_device(neighbour("10.0.0.11"), neighbour("10.0.0.13"), name="adc-2"),
        "adc-3": "cannot connect to 10.102.33.211:22",
        "adc-4": device(name="adc-4"),
    }
    described = inventory.describe(request(*logins), calico(*NODES, peers=peers), devices)

    assert gaps(described) == [
        "ADC adc-3: could not be read: cannot connect to 10.102.33.211:22",
        "ADC adc-4: has no `router bgp`: there is no peering to describe",
        "BGPPeer tor-1: is node-specific (node node-1): v1 describes global peers only",
        "BGPPeer rack-4: is node-specific (nodeSelector \"rack == '4'\"): v1 describes global peers only",
        "BGPPeer bgppeer-global-9: peers with 10.102.33.250 (AS 600), which is no ADC named with --adc",
        "ADC adc-1: neighbor 10.0.0.12: has remote-as 64999, but node node-2 peers from AS 64512",
        "ADC adc-1: neighbor 10.0.0.99: is no Kubernetes node: v1 describes neighbours that are nodes",
        "ADC adc-1: node node-3: is a neighbour of adc-2, not of adc-1: v1 peers every selected node "
        "with every ADC",
    ]


def test_a_peer_that_disagrees_with_its_adc_is_a_gap() -> None:
    cases = {
        "has asNumber 501, but ADC adc-1 runs router bgp 500": HAND_MADE.model_copy(
            update={"as_number": 501}
        ),
        "peers on a port of its own (10.102.33.208:1179): v1 has no port": HAND_MADE.model_copy(
            update={"peer_ip": "10.102.33.208:1179"}
        ),
    }
    for reason, peer in cases.items():
        described = inventory.describe(request(), calico(*NODES, peers=(peer,)), {"adc-1": seed_device()})

        assert gaps(described) == [f"BGPPeer bgppeer-global-3040: {reason}"]
        assert described.document["adcs"] == []


def test_what_a_reader_should_know_is_noted() -> None:
    described_neighbour = live.Neighbour(
        address=ipaddress.IPv4Address("10.0.0.11"), remote_as=64512, description="rack-4"
    )
    odd = seed_device(described_neighbour, neighbour("10.0.0.12"), neighbour("10.0.0.13")).model_copy(
        update={"bgp_feature": False, "unsaved": True}
    )
    pools = (
        live.IPPool(name="default-ipv4-ippool", cidr="192.168.0.0/16"),
        live.IPPool(name="extra", cidr="172.16.0.0/16"),
        live.IPPool(name="v6", cidr="fd00::/48"),
    )
    described = inventory.describe(
        request(), calico(*NODES, peers=(HAND_MADE,)).model_copy(update={"pools": pools}), {"adc-1": odd}
    )

    assert described.gaps == ()
    assert described.notes == (
        "podCIDR names IPPool default-ipv4-ippool; the cluster also has extra (172.16.0.0/16)",
        "BGPPeer bgppeer-global-3040 stands for ADC adc-1; adopted, it keeps its name",
        "ADC adc-1: neighbor 10.0.0.11 (node node-1) has the description 'rack-4': adoption leaves it "
        "hand-made; remove the description to let peeringd adopt it",
        "ADC adc-1 has the BGP feature off: peeringd turns it on",
        "ADC adc-1 runs a BGP configuration it has not saved: peeringd saves it",
    )


@st.composite
def manual_setups(draw: st.DrawFn) -> tuple[live.CalicoSnapshot, live.AdcSnapshot]:
    """A hand-built peering: some nodes (with their own AS now and then), neighbours typed for
    some of them, and one global BGPPeer at the ADC."""
    count = draw(st.integers(1, 6))
    nodes = tuple(
        node(f"node-{i}", f"10.0.0.{10 + i}", draw(st.none() | st.just("65010"))) for i in range(count)
    )
    peered = draw(st.lists(st.sampled_from(nodes), unique_by=lambda n: n.name, min_size=1))
    configuration = draw(
        st.none() | st.builds(live.BGPConfiguration, as_number=st.sampled_from([64512, 64600]))
    )
    cluster_as = configuration.as_number if configuration and configuration.as_number else 64512
    neighbours = tuple(
        neighbour(
            (n.ipv4_address_annotation or "").partition("/")[0],
            remote_as=int(n.as_number_annotation) if n.as_number_annotation else cluster_as,
        )
        for n in peered
    )
    router_as = draw(st.sampled_from([500, 65001]))
    snapshot = device(
        router_as=router_as,
        neighbours=tuple(sorted(neighbours, key=lambda n: n.address)),
        max_paths=draw(st.builds(live.MaxPaths, ebgp=st.none() | st.integers(1, 8))),
        route_install=draw(st.booleans()),
    )
    peer = live.BGPPeer(name="bgppeer-global-3040", peer_ip="10.102.33.208", as_number=router_as)
    return calico(*nodes, peers=(peer,), configuration=configuration), snapshot


@PROPERTY
@given(manual_setups())
def test_with_the_imported_file_and_adoption_a_plan_only_adopts(
    setup: tuple[live.CalicoSnapshot, Any],
) -> None:
    """Whatever the hand-built peering, a plan against the file import writes adopts every object
    and changes nothing else (but saving the device)."""
    snapshot, adc = setup
    described = inventory.describe(request(), snapshot, {"adc-1": adc})
    state = desired.PeeringState.model_validate(plain(described.document))
    adopting = state.model_copy(update={"policy": state.policy.model_copy(update={"adopt": True})})
    planned = plan(adopting, live.LiveState(calico=snapshot, adcs=(adc,)))

    assert described.gaps == ()
    assert desired.problems(state) == ()
    assert [c for c in planned.changes if c.action != Action.ADOPT and not isinstance(c, SaveChange)] == []
    assert planned.counts()[Action.ADOPT] == len(adc.neighbours) + 1
    assert planned.findings == ()


def test_neighbour_passwords_are_a_gap_import_never_copies() -> None:
    """The secret goes into a file by hand; a file without bgpPassword would plan them away."""
    with_password = dataclasses.replace(neighbour("10.0.0.11"), password=secret.Password("Hand-made"))
    device = seed_device(with_password, neighbour("10.0.0.12"), neighbour("10.0.0.13"))

    described = inventory.describe(request(), calico(*NODES, peers=(HAND_MADE,)), {"adc-1": device})

    assert gaps(described) == [
        "ADC adc-1's BGP passwords: write the password into a file and name it in adcs[].bgpPassword.file"
    ]
    assert "Hand-made" not in repr(described)
