"""Smoke tests of the BGP lab: FRR and Calico-style BIRD2 peer for real, SSH lands in vtysh."""

import ipaddress
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from . import bird, lab, netns, poll, process
from .conftest import skip_unless_lab_can_run

ROUTER_AS = 65001
NODE_AS = 64512
NODE = bird.CalicoNode(
    "node1",
    ipaddress.IPv4Address("10.200.0.11"),
    NODE_AS,
    (ipaddress.IPv4Network("10.244.1.0/26"),),
)
ROUTER_PEER = bird.CalicoPeer(lab.ROUTER_ADDRESS, ROUTER_AS)
PROMPT = f"{lab.ROUTER_HOSTNAME}# "


def peer_router_with(bgp_lab: lab.BgpLab, node: lab.LabNode) -> None:
    """Make FRR and the node's BIRD peer with each other, the way the daemon and Calico would."""
    bgp_lab.router.frr.configure(
        f"router bgp {ROUTER_AS}",
        "no bgp ebgp-requires-policy",
        f"neighbor {node.address} remote-as {NODE_AS}",
        # FRR's default connect retry is 120 s; BIRD's 5 s would still cost seconds per try.
        f"neighbor {node.address} timers connect 1",
    )
    node.bird.apply(bird.render_bird_config(node.calico(NODE_AS), [ROUTER_PEER]))


def wait_until_peered(bgp_lab: lab.BgpLab, node: lab.LabNode) -> None:
    """Both ends of the router-node session reach Established (each within 30 s)."""
    bgp_lab.router.frr.wait_for_neighbour(str(node.address))
    node.bird.wait_for_protocol(bird.protocol_name("Global", lab.ROUTER_ADDRESS))


@pytest.fixture(scope="module")
def peered_lab(bgp_lab: lab.BgpLab) -> lab.BgpLab:
    """The module's lab with every node peering with the router."""
    for node in bgp_lab.nodes.values():
        peer_router_with(bgp_lab, node)
    return bgp_lab


def read_until(channel: paramiko.Channel, done: Callable[[str], bool], timeout: float = 15) -> str:
    """Everything the channel sends until `done` accepts it (no sleeping: recv waits)."""
    deadline = time.monotonic() + timeout
    text = ""
    while not done(text):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no expected output within {timeout}s; got {text!r}")
        channel.settimeout(remaining)
        try:
            chunk = channel.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"channel closed; got {text!r}")
        text += chunk.decode(errors="replace")
    return text


@pytest.fixture
def ssh_client(bgp_lab: lab.BgpLab) -> Iterator[paramiko.SSHClient]:
    """A paramiko client that knows the lab router's host key (strict checking stays on)."""
    client = paramiko.SSHClient()
    client.load_host_keys(str(bgp_lab.router.login.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    yield client
    client.close()


class TestRendering:
    """The BIRD config follows calico-node's confd templates, in BIRD2 syntax."""

    def test_global_peer_block(self) -> None:
        """A global peer becomes Global_<ip> with its AS and the node's source address."""
        config = bird.render_bird_config(NODE, [ROUTER_PEER])
        expected = (
            "protocol bgp Global_10_200_0_1 from bgp_template {\n"
            "  neighbor 10.200.0.1 as 65001;\n"
            "  source address 10.200.0.11;\n"
            "}\n"
        )
        assert expected in config
        assert "router id 10.200.0.11;" in config
        assert "  route 10.244.1.0/26 blackhole;\n" in config

    def test_global_peer_wins_over_node_peer_with_same_address(self) -> None:
        """Peers are keyed by IP and port; the global one is kept."""
        node_peer = bird.CalicoPeer(lab.ROUTER_ADDRESS, 65002, kind="Node")
        config = bird.render_bird_config(NODE, [node_peer, ROUTER_PEER])
        assert _bgp_protocols(config) == ["Global_10_200_0_1"]

    def test_mesh_is_passive_towards_higher_addresses_only(self) -> None:
        """One Mesh_<ip> per other node; the node waits for higher addresses to connect."""
        mesh = [
            bird.CalicoNode("node0", ipaddress.IPv4Address("10.200.0.10")),
            NODE,
            bird.CalicoNode("node2", ipaddress.IPv4Address("10.200.0.12")),
        ]
        config = bird.render_bird_config(NODE, [], mesh)
        assert _bgp_protocols(config) == ["Mesh_10_200_0_10", "Mesh_10_200_0_12"]
        lower, higher = config.split("protocol bgp Mesh_")[1:]
        assert "passive on;" not in lower
        assert "passive on;" in higher

    def test_bird_accepts_every_option(self, tmp_path: Path) -> None:
        """BIRD2 parses a config using mesh, node peers, ports, passwords and next hop modes."""
        if shutil.which("bird") is None:
            pytest.skip("bird (Debian package bird2) is not installed")
        peers = [
            ROUTER_PEER,
            bird.CalicoPeer(
                ipaddress.IPv4Address("10.200.0.2"),
                65002,
                kind="Node",
                port=1179,
                password="s3cret",
                next_hop="keep",
            ),
        ]
        mesh = [NODE, bird.CalicoNode("node2", ipaddress.IPv4Address("10.200.0.12"))]
        path = tmp_path / "bird.conf"
        path.write_text(
            bird.render_bird_config(NODE, peers, mesh, pool=ipaddress.IPv4Network("10.244.0.0/16"))
        )
        bird.check_bird_config(path)


def test_show_protocols_is_parsed_into_rows() -> None:
    """Rows keep BIRD's `since` text (time, or date and time) and the info column."""
    output = (
        "BIRD 2.0.12 ready.\n"
        "Name       Proto      Table      State  Since         Info\n"
        "device1    Device     ---        up     05:56:24.566  \n"
        "Global_10_200_0_1 BGP        ---        up     05:56:25.015  Established   \n"
        "Mesh_10_200_0_12 BGP        ---        start  2024-01-02 05:56:25  Active "
        "Socket: Connection refused\n"
    )
    expected = [
        bird.BirdProtocol("device1", "Device", "---", "up", "05:56:24.566", ""),
        bird.BirdProtocol("Global_10_200_0_1", "BGP", "---", "up", "05:56:25.015", "Established"),
        bird.BirdProtocol(
            "Mesh_10_200_0_12",
            "BGP",
            "---",
            "start",
            "2024-01-02 05:56:25",
            "Active Socket: Connection refused",
        ),
    ]
    assert expected == bird.parse_protocols(output)


@pytest.mark.lab
def test_sessions_reach_established_on_both_sides(peered_lab: lab.BgpLab) -> None:
    """FRR's summary and every node's birdc agree that each session is Established."""
    for node in peered_lab.nodes.values():
        wait_until_peered(peered_lab, node)
    expected = {str(node.address): "Established" for node in peered_lab.nodes.values()}
    assert expected == peered_lab.router.frr.neighbour_states()


@pytest.mark.lab
def test_router_installs_each_pod_block_via_its_node(peered_lab: lab.BgpLab) -> None:
    """zebra puts every node's pod block in the router's kernel table, via that node."""
    expected = {str(n.block): frozenset({str(n.address)}) for n in peered_lab.nodes.values()}
    actual = poll.until(
        peered_lab.router.frr.bgp_routes,
        lambda routes: all(routes.get(block) for block in expected),
        timeout=30,
        what="pod blocks in the router's kernel table",
    )
    assert expected == actual


@pytest.mark.lab
def test_ssh_through_forwarder_lands_in_vtysh(peered_lab: lab.BgpLab, ssh_client: paramiko.SSHClient) -> None:
    """An interactive session (password) gets FRR's prompt and FRR's running config."""
    login = peered_lab.router.login
    ssh_client.connect(
        login.host,
        login.port,
        username=login.username,
        password=login.password,
        look_for_keys=False,
        allow_agent=False,
    )
    channel = ssh_client.invoke_shell()
    banner = read_until(channel, lambda text: text.endswith(PROMPT))
    channel.send(b"show running-config\n")
    config = read_until(channel, lambda text: text.rstrip(" #").endswith(f"end\r\n{lab.ROUTER_HOSTNAME}"))
    assert "FRRouting" in banner
    assert f"hostname {lab.ROUTER_HOSTNAME}" in config
    assert f"router bgp {ROUTER_AS}" in config


@pytest.mark.lab
def test_ssh_key_login_runs_one_vtysh_command(bgp_lab: lab.BgpLab, ssh_client: paramiko.SSHClient) -> None:
    """An exec request (key auth) runs its command in vtysh and returns the output."""
    login = bgp_lab.router.login
    ssh_client.connect(
        login.host,
        login.port,
        username=login.username,
        key_filename=str(login.key_file),
        look_for_keys=False,
        allow_agent=False,
    )
    _, stdout, _ = ssh_client.exec_command("show version")
    assert "FRRouting 8" in stdout.read().decode()


@pytest.mark.lab
def test_nodes_join_and_leave_at_runtime(peered_lab: lab.BgpLab) -> None:
    """A node added while others run gets Established; removing it drops FRR's session."""
    node = peered_lab.add_node()
    peer_router_with(peered_lab, node)
    wait_until_peered(peered_lab, node)

    peered_lab.remove_node(node.name)

    state = peered_lab.router.frr.wait_for_neighbour(str(node.address), established=False)
    routes = poll.until(
        peered_lab.router.frr.bgp_routes,
        lambda routes: str(node.block) not in routes,
        timeout=30,
        what=f"{node.block} withdrawn from the router",
    )
    assert state != "Established"
    assert str(node.block) not in routes
    assert node.namespace.name not in peered_lab.namespace_names()
    assert node.namespace.name not in netns.existing_names()


@pytest.mark.lab
def test_teardown_leaves_nothing_behind() -> None:
    """Closing a lab with FRR, sshd, an open vtysh session and BIRD running leaves no trace."""
    skip_unless_lab_can_run()
    client = paramiko.SSHClient()
    try:
        with lab.BgpLab(node_count=1) as bgp_lab:
            node = bgp_lab.nodes["node1"]
            peer_router_with(bgp_lab, node)
            wait_until_peered(bgp_lab, node)
            login = bgp_lab.router.login
            client.load_host_keys(str(login.known_hosts))
            client.connect(login.host, login.port, username=login.username, password=login.password)
            read_until(client.invoke_shell(), lambda text: text.endswith(PROMPT))
            namespaces = bgp_lab.namespace_names()
            pids = bgp_lab.process_ids()
            workdir = bgp_lab.workdir
    finally:
        client.close()
    frr_scratch = [Path(f"/var/tmp/frr/{name}.{pid}") for name in ("zebra", "bgpd") for pid in pids]
    assert len(namespaces) == 3
    assert len(pids) > 5  # zebra, bgpd, sshd, the session's sshd and vtysh, bird
    assert [name for name in namespaces if name in netns.existing_names()] == []
    assert [pid for pid in pids if process.is_running(pid)] == []
    assert not workdir.exists()
    assert [path for path in frr_scratch if path.exists()] == []


def _bgp_protocols(config: str) -> list[str]:
    return [line.split()[2] for line in config.splitlines() if line.startswith("protocol bgp ")]
