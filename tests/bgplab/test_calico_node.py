"""The calico-node stand-in's pure parts: Calico objects to BIRD inputs, BIRD rows to status."""

import ipaddress
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from peeringd.lab.kubeapi import KubeApiServer
from tests.conftest import CRD_SOURCE, node_object, pool_object

from . import bird
from .calico_node import ClusterObjects, NodeBgp, node_bgp, node_status, read_cluster

GROUP = "crd.projectcalico.org/v1"
BLOCK = ipaddress.IPv4Network("10.244.1.0/26")
ROUTER = ipaddress.IPv4Address("10.200.0.1")
NODES = (node_object("node1", "10.200.0.11"), node_object("node2", "10.200.0.12"))
POOL = pool_object(GROUP, "10.244.0.0/16")


def peer(name: str, peer_ip: str, as_number: int = 65001, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "BGPPeer",
        "metadata": {"name": name},
        "spec": {"peerIP": peer_ip, "asNumber": as_number, **spec},
    }


def configuration(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "BGPConfiguration", "metadata": {"name": "default"}, "spec": spec}


def cluster(
    *peers: dict[str, Any],
    nodes: tuple[dict[str, Any], ...] = NODES,
    config: dict[str, Any] | None = None,
    pools: tuple[dict[str, Any], ...] = (POOL,),
) -> ClusterObjects:
    return ClusterObjects(nodes=nodes, peers=peers, configuration=config, pools=pools, statuses=())


def address(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


class TestNodeBgp:
    """Calico objects become one node's BIRD inputs by calico-node's rules."""

    def test_defaults_global_peer_mesh_and_pool(self) -> None:
        """AS 64512, the global peer, every node in the mesh, and the pool holding the block."""
        inputs = node_bgp(cluster(peer("frr-1", "10.200.0.1")), "node1", (BLOCK,))

        assert inputs == NodeBgp(
            node=bird.CalicoNode("node1", address("10.200.0.11"), 64512, (BLOCK,)),
            peers=(bird.CalicoPeer(ROUTER, 65001),),
            mesh=(
                bird.CalicoNode("node1", address("10.200.0.11"), 64512),
                bird.CalicoNode("node2", address("10.200.0.12"), 64512),
            ),
            pool=ipaddress.IPv4Network("10.244.0.0/16"),
        )

    def test_node_annotation_wins_over_configuration_for_the_local_as(self) -> None:
        """projectcalico.org/ASNumber first, then BGPConfiguration default's asNumber."""
        node1 = node_object("node1", "10.200.0.11")
        node1["metadata"]["annotations"]["projectcalico.org/ASNumber"] = "65010"
        objects = cluster(nodes=(node1, NODES[1]), config=configuration(asNumber=65020))

        inputs = node_bgp(objects, "node1", (BLOCK,))

        assert inputs is not None
        assert (inputs.node.as_number, [n.as_number for n in inputs.mesh]) == (65010, [65010, 65020])

    def test_mesh_off_leaves_only_the_peers(self) -> None:
        """nodeToNodeMeshEnabled false: no Mesh_ protocol at all."""
        objects = cluster(peer("frr-1", "10.200.0.1"), config=configuration(nodeToNodeMeshEnabled=False))

        inputs = node_bgp(objects, "node1", (BLOCK,))

        assert inputs is not None
        assert inputs.mesh == ()
        assert _protocols(inputs.config()) == ["Global_10_200_0_1"]

    def test_node_peers_apply_to_their_node_and_selectors_are_skipped(self) -> None:
        """`node:` peers become Node_ on that node only; selector peers are not supported."""
        objects = cluster(
            peer("frr-1", "10.200.0.1"),
            peer("mine", "10.200.0.2:1179", 65002, node="node1"),
            peer("theirs", "10.200.0.3", node="node2"),
            peer("selected", "10.200.0.4", nodeSelector="all()"),
            peer("v6", "[fd00::1]:179"),
        )

        inputs = node_bgp(objects, "node1", (BLOCK,))

        assert inputs is not None
        assert inputs.peers == (
            bird.CalicoPeer(ROUTER, 65001),
            bird.CalicoPeer(address("10.200.0.2"), 65002, kind="Node", port=1179),
        )

    def test_internal_ip_stands_in_for_a_missing_or_invalid_annotation(self) -> None:
        """Calico ignores an invalid IPv4Address annotation and uses the InternalIP."""
        node1 = node_object("node1", "10.200.0.11")
        node1["metadata"]["annotations"]["projectcalico.org/IPv4Address"] = "not-an-address"

        inputs = node_bgp(cluster(nodes=(node1,)), "node1", (BLOCK,))

        assert inputs is not None
        assert inputs.node.address == address("10.200.0.11")

    def test_no_kubernetes_node_means_no_config(self) -> None:
        """calico-node runs only where a Node exists."""
        assert node_bgp(cluster(), "node9", (BLOCK,)) is None

    def test_a_pool_without_bgp_export_is_not_exported(self) -> None:
        """disableBGPExport keeps the pool's routes to the node itself."""
        pool = pool_object(GROUP, "10.244.0.0/16")
        pool["spec"]["disableBGPExport"] = True

        inputs = node_bgp(cluster(pools=(pool,)), "node1", (BLOCK,))

        assert inputs is not None
        assert inputs.pool is None

    def test_config_is_what_bird_renders(self) -> None:
        """The config carries the node's router id, block and one protocol per peer."""
        inputs = node_bgp(cluster(peer("frr-1", "10.200.0.1")), "node2", (BLOCK,))

        assert inputs is not None
        config = inputs.config()
        assert "router id 10.200.0.12;" in config
        assert "  route 10.244.1.0/26 blackhole;\n" in config
        assert _protocols(config) == ["Mesh_10_200_0_11", "Global_10_200_0_1"]


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
ROWS = [
    bird.BirdProtocol("device1", "Device", "---", "up", "05:56:24.566", ""),
    bird.BirdProtocol("Global_10_200_0_1", "BGP", "---", "up", "05:56:25.015", "Established"),
    bird.BirdProtocol("Mesh_10_200_0_12", "BGP", "---", "start", "05:56:25", "Passive"),
    bird.BirdProtocol(
        "Node_10_200_0_2_port_1179", "BGP", "---", "start", "05:56:26", "Active Socket: Connection refused"
    ),
]


class TestNodeStatus:
    """birdc's protocol rows become CalicoNodeStatus status.bgp."""

    def test_rows_become_typed_peers_with_counters(self) -> None:
        """Names map back to IPs and types; BIRD's info gives the state (Idle when none fits)."""
        assert node_status(ROWS, NOW) == {
            "bgp": {
                "numberEstablishedV4": 1,
                "numberNotEstablishedV4": 2,
                "numberEstablishedV6": 0,
                "numberNotEstablishedV6": 0,
                "peersV4": [
                    {
                        "peerIP": "10.200.0.1",
                        "type": "GlobalPeer",
                        "state": "Established",
                        "since": "05:56:25.015",
                    },
                    {"peerIP": "10.200.0.12", "type": "NodeMesh", "state": "Idle", "since": "05:56:25"},
                    {"peerIP": "10.200.0.2", "type": "NodePeer", "state": "Active", "since": "05:56:26"},
                ],
            },
            "lastUpdated": "2026-01-02T02:04:05Z",
        }

    def test_the_api_server_accepts_it(self) -> None:
        """The CRD schema (enums, required counters, date-time) takes the status as written."""
        server = KubeApiServer(CRD_SOURCE, "v1")
        status = {
            "apiVersion": GROUP,
            "kind": "CalicoNodeStatus",
            "metadata": {"name": "peeringd.node1"},
            "spec": {"node": "node1", "classes": ["BGP"], "updatePeriodSeconds": 10},
            "status": node_status(ROWS, datetime.now(UTC)),
        }

        stored = server.put(status)

        assert stored["status"] == status["status"]


def test_read_cluster_reads_calicos_objects_from_the_server() -> None:
    """Nodes, peers, BGPConfiguration default and pools come back as stored."""
    server = KubeApiServer(CRD_SOURCE, "v1")
    for item in (*NODES, POOL, peer("frr-1", "10.200.0.1"), configuration(asNumber=65020)):
        server.put(item)

    objects = read_cluster(server)

    assert [node["metadata"]["name"] for node in objects.nodes] == ["node1", "node2"]
    assert [item["spec"]["peerIP"] for item in objects.peers] == ["10.200.0.1"]
    assert objects.configuration is not None
    assert objects.configuration["spec"]["asNumber"] == 65020
    assert [item["spec"]["cidr"] for item in objects.pools] == ["10.244.0.0/16"]
    assert objects.statuses == ()


def _protocols(config: str) -> list[str]:
    return [line.split()[2] for line in config.splitlines() if line.startswith("protocol bgp ")]
