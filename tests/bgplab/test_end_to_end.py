"""peeringd end to end: real BGP between FRR and Calico-style BIRD nodes, driven by the real CLI.

The FRR router is reached over SSH (netmiko into vtysh) through the lab's forwarder on
127.0.0.1; the Kubernetes API is the test server, and the calico-node stand-in turns what
peeringd writes there into BIRD config on every node and reports the sessions back in
CalicoNodeStatus. One environment serves the module: each test starts by waiting until every
node is peered and leaves it peered. Every session must come up within 30 s.
"""

import contextlib
import ipaddress
import json
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from peeringd.lab.kubeapi import KubeApiServer
from tests.conftest import CRD_SOURCE, node_object, pool_object
from tests.runtime.daemon_harness import DaemonProcess

from . import bird, lab, netns, poll, process
from .calico_node import CalicoNodeAgent
from .conftest import skip_unless_lab_can_run
from .lab import BgpLab, LabNode

pytestmark = pytest.mark.lab

ROUTER_AS = 65001
CLUSTER_AS = 64512
ADC = "frr-1"
CLUSTER = "lab"
GLOBAL_PEER = bird.protocol_name("Global", lab.ROUTER_ADDRESS)
UNMANAGED_NEIGHBOUR = "10.200.0.250"
CALICO_GROUP = "crd.projectcalico.org/v1"
NODE_STATUSES = "caliconodestatuses.crd.projectcalico.org"
PEERINGD = Path(sys.executable).parent / "peeringd"
ESTABLISHED_WITHIN = 30.0
PASS_WITHIN = 60.0

STATE = """\
apiVersion: peeringd/v1
kind: PeeringState
cluster: {{name: {cluster}, podCIDR: {pool}, asNumber: {cluster_as}, nodeToNodeMesh: true}}
adcs:
  - name: {adc}
    platform: frr
    asNumber: {router_as}
    peerIP: {router}
    ssh:
      host: {login.host}
      port: {login.port}
      username: {login.username}
      passwordFile: {password_file}
      knownHostsFile: {login.known_hosts}
policy: {{interval: 1h}}
"""

Event = dict[str, Any]


@dataclass
class EndToEnd:
    """The lab, its Kubernetes API with the calico-node stand-in, and peeringd's inputs."""

    lab: BgpLab
    server: KubeApiServer
    calico: CalicoNodeAgent
    state_file: Path
    kubeconfig: Path
    workdir: Path
    stack: contextlib.ExitStack

    def peeringd(self, command: str, *options: str) -> subprocess.CompletedProcess[str]:
        """Run a one-shot peeringd command on the state file, as a user would."""
        argv = [str(PEERINGD), command, *options, "-f", str(self.state_file)]
        argv += ["--kubeconfig", str(self.kubeconfig)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    def start_daemon(self) -> DaemonProcess:
        """`peeringd run`, stopped (killed if it must) when the environment closes."""
        daemon = DaemonProcess(self.state_file, self.kubeconfig, self.workdir).start()
        self.stack.callback(_stop, daemon)
        return daemon

    def add_node(self) -> LabNode:
        """A new lab node, then its Kubernetes Node (as `kubeadm join` would add it)."""
        node = self.lab.add_node()
        self.server.put(node_object(node.name, str(node.address)))
        return node

    def remove_node(self, name: str) -> None:
        """`kubectl delete node` and the machine gone, with calico-node held off meanwhile."""
        with self.calico.paused():
            self.server.delete("nodes", name)
            self.lab.remove_node(name)

    def kubernetes_nodes(self) -> list[LabNode]:
        """The lab nodes that have a Kubernetes Node, by address."""
        known = {item["metadata"]["name"] for item in self.server.objects("nodes")}
        nodes = [node for node in self.lab.nodes.values() if node.name in known]
        return sorted(nodes, key=lambda node: node.address)


@contextlib.contextmanager
def end_to_end(workdir: Path) -> Iterator[EndToEnd]:
    """Build everything; on leaving, even by an exception, tear it down in reverse order:
    the daemon (if started), calico-node, the API server, the lab."""
    with contextlib.ExitStack() as stack:
        bgp_lab = stack.enter_context(BgpLab(node_count=2))
        server = stack.enter_context(KubeApiServer(CRD_SOURCE, "v1"))
        server.put(pool_object(CALICO_GROUP, str(lab.POD_POOL)))
        for node in bgp_lab.nodes.values():
            server.put(node_object(node.name, str(node.address)))
        kubeconfig = server.write_kubeconfig(workdir / "kubeconfig")
        password_file = workdir / f"{ADC}.password"
        password_file.write_text(bgp_lab.router.login.password + "\n")
        password_file.chmod(0o600)
        # A directory of its own: the daemon watches the state file's directory.
        state_file = workdir / "state" / "peering.yaml"
        state_file.parent.mkdir()
        state_file.write_text(
            STATE.format(
                cluster=CLUSTER,
                pool=lab.POD_POOL,
                cluster_as=CLUSTER_AS,
                adc=ADC,
                router_as=ROUTER_AS,
                router=lab.ROUTER_ADDRESS,
                login=bgp_lab.router.login,
                password_file=password_file,
            )
        )
        calico = stack.enter_context(CalicoNodeAgent(bgp_lab, server))
        yield EndToEnd(bgp_lab, server, calico, state_file, kubeconfig, workdir, stack)


def _stop(daemon: DaemonProcess) -> None:
    try:
        daemon.stop(timeout=PASS_WITHIN)
    except subprocess.TimeoutExpired:
        assert daemon.process is not None
        daemon.process.kill()
        daemon.process.wait(10)


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndToEnd]:
    """The module's environment (two nodes to start with), closed after its last test."""
    skip_unless_lab_can_run()
    with end_to_end(tmp_path_factory.mktemp("end-to-end")) as environment:
        yield environment


@pytest.fixture(scope="module")
def daemon(e2e: EndToEnd) -> Iterator[DaemonProcess]:
    """`peeringd run` for the module's remaining tests; it must stop cleanly on SIGTERM."""
    running = e2e.start_daemon()
    poll.until(
        lambda: running.events("pass done"),
        lambda found: any(event["outcome"] == "converged" for event in found),
        timeout=PASS_WITHIN,
        what="the daemon's first converged pass",
    )
    yield running
    assert running.stop() == 0, running.log.read_text()[-2000:]


def wait_until_peered(e2e: EndToEnd, node: LabNode) -> None:
    """FRR and the node's BIRD both say their session is Established."""
    e2e.calico.check()
    e2e.lab.router.frr.wait_for_neighbour(str(node.address), timeout=ESTABLISHED_WITHIN)
    node.bird.wait_for_protocol(GLOBAL_PEER, timeout=ESTABLISHED_WITHIN)


def wait_until_converged(e2e: EndToEnd) -> None:
    """Every node with a Kubernetes Node is peered with the router on both ends."""
    for node in e2e.kubernetes_nodes():
        wait_until_peered(e2e, node)


def wait_until_reported(e2e: EndToEnd, node: LabNode) -> dict[str, Any]:
    """The node's CalicoNodeStatus `peeringd.<node>`, once it reports the router Established."""

    def reported() -> dict[str, Any] | None:
        e2e.calico.check()
        return e2e.server.get(NODE_STATUSES, f"peeringd.{node.name}")

    def established(found: dict[str, Any] | None) -> bool:
        peers = ((found or {}).get("status") or {}).get("bgp", {}).get("peersV4", [])
        return any(_is_router(peer) and peer["state"] == "Established" for peer in peers)

    found = poll.until(
        reported, established, timeout=ESTABLISHED_WITHIN, what=f"{node.name}'s status Established"
    )
    assert found is not None
    return found


def _is_router(peer: dict[str, Any]) -> bool:
    return bool(peer["peerIP"] == str(lab.ROUTER_ADDRESS) and peer["type"] == "GlobalPeer")


def running_config(e2e: EndToEnd) -> str:
    return e2e.lab.router.frr.vtysh("show running-config")


def managed_lines(node: LabNode) -> list[str]:
    """The router lines peeringd keeps for a node."""
    return [
        f" neighbor {node.address} remote-as {CLUSTER_AS}",
        f" neighbor {node.address} description peeringd:{CLUSTER}:{node.name}",
    ]


def missing_lines(config: str, *nodes: LabNode) -> list[str]:
    """The managed lines of `nodes` that `config` lacks."""
    return [line for node in nodes for line in managed_lines(node) if f"{line}\n" not in config]


def connections(e2e: EndToEnd) -> dict[str, tuple[int, int]]:
    """FRR's count of each neighbour's sessions established and dropped so far."""
    neighbours = json.loads(e2e.lab.router.frr.vtysh("show ip bgp neighbors json"))
    return {
        address: (int(peer["connectionsEstablished"]), int(peer["connectionsDropped"]))
        for address, peer in neighbours.items()
    }


def run_pass(daemon: DaemonProcess) -> Event:
    """Ask the idle daemon for a pass with SIGHUP; that pass's `pass done` event."""
    done = len(daemon.events("pass done"))
    daemon.signal(signal.SIGHUP)
    return daemon.wait_for_event("pass done", done + 1, timeout=PASS_WITHIN)[done]


def changes(daemon: DaemonProcess, since: int = 0) -> list[tuple[str, str, str]]:
    """(target, action, object) of each change the daemon applied, from the `since`-th on."""
    return [(c["target"], c["action"], c["object"]) for c in daemon.events("change applied")[since:]]


def pass_that_applied(daemon: DaemonProcess, action: str, subject: str) -> Event:
    """The `pass done` event of the (latest) pass that applied `action` to `subject`."""

    def passes_after_change() -> list[Event]:
        events = daemon.events()
        applied = [
            index
            for index, event in enumerate(events)
            if event.get("event") == "change applied"
            and (event["action"], event["object"]) == (action, subject)
        ]
        later = events[applied[-1] :] if applied else []
        return [event for event in later if event.get("event") == "pass done"]

    return poll.until(passes_after_change, bool, timeout=PASS_WITHIN, what=f"{action} {subject} done")[0]


def test_apply_peers_every_node_on_both_ends(e2e: EndToEnd) -> None:
    """`apply` converges and saves; sessions, routes and `peeringd status` show every node up."""
    applied = e2e.peeringd("apply", "--yes")

    assert applied.returncode == 0, applied.stdout + applied.stderr
    nodes = e2e.kubernetes_nodes()
    for node in nodes:
        wait_until_peered(e2e, node)
    assert missing_lines(running_config(e2e), *nodes) == []
    assert missing_lines((e2e.lab.router.frr.config_dir / "frr.conf").read_text(), *nodes) == []
    blocks = {str(node.block): str(node.address) for node in nodes}
    # With the mesh on, each node re-announces the others' blocks: ECMP over the nodes.
    routes = poll.until(
        e2e.lab.router.frr.bgp_routes,
        lambda found: all(address in found.get(block, ()) for block, address in blocks.items()),
        timeout=ESTABLISHED_WITHIN,
        what="every pod block in the router's kernel table via its node",
    )
    assert set().union(*routes.values()) <= set(blocks.values())
    status = poll.until(
        lambda: e2e.peeringd("status"),
        lambda result: result.returncode != 4,
        timeout=ESTABLISHED_WITHIN,
        what="peeringd status exits 0",
        interval=1.0,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    header = next(index for index, line in enumerate(lines) if line.split()[:1] == ["NODE"])
    assert lines[header - 1] == f"{ADC} (AS {ROUTER_AS}, nodes peer with {lab.ROUTER_ADDRESS})"
    verdicts = {line.split()[0]: line.split()[-1] for line in lines[header + 1 :]}
    assert verdicts == {node.name: "established" for node in nodes}
    for node in nodes:  # the statuses `peeringd status` asked calico-node for
        assert wait_until_reported(e2e, node)["spec"] == {
            "node": node.name,
            "classes": ["BGP"],
            "updatePeriodSeconds": 10,
        }
    as_json = e2e.peeringd("status", "-o", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = sorted((row["adc"], row["node"], row["verdict"]) for row in json.loads(as_json.stdout))
    assert rows == sorted((ADC, node.name, "established") for node in nodes)


def test_nodes_join_and_leave_while_the_daemon_runs(e2e: EndToEnd, daemon: DaemonProcess) -> None:
    """A joining node is peered by the node watch alone; a leaving one loses only its neighbour."""
    wait_until_converged(e2e)
    since = len(daemon.events("change applied"))

    joined = e2e.add_node()
    wait_until_peered(e2e, joined)
    assert e2e.server.get(NODE_STATUSES, f"peeringd.{joined.name}") is None  # the daemon asks none
    assert e2e.peeringd("status").returncode == 0  # which asks calico-node on the new node too
    wait_until_reported(e2e, joined)
    leaving, *staying = [node for node in e2e.kubernetes_nodes() if node is not joined]
    before = connections(e2e)
    e2e.remove_node(leaving.name)
    done = pass_that_applied(daemon, "delete", f"neighbor {leaving.address}")

    assert done["outcome"] == "converged"
    assert changes(daemon, since) == [
        (ADC, "create", f"neighbor {joined.address}"),
        (ADC, "update", "saved configuration"),
        (ADC, "delete", f"neighbor {leaving.address}"),
        (ADC, "update", "saved configuration"),
    ]
    reasons = [event["reason"] for event in daemon.events("pass requested")]
    assert f"node {joined.name} joined" in reasons
    assert f"node {leaving.name} left" in reasons
    config = running_config(e2e)
    assert f"neighbor {leaving.address} " not in config
    kept = [*staying, joined]
    assert missing_lines(config, *kept) == []
    after = connections(e2e)
    addresses = [str(node.address) for node in kept]
    assert {address: after[address] for address in addresses} == {a: before[a] for a in addresses}
    states = e2e.lab.router.frr.neighbour_states()
    assert {address: states[address] for address in addresses} == dict.fromkeys(addresses, "Established")
    e2e.peeringd("status")  # its object for the node that left goes
    assert e2e.server.get(NODE_STATUSES, f"peeringd.{leaving.name}") is None
    assert daemon.process is not None
    assert daemon.process.poll() is None
    assert len(daemon.events("started")) == 1


def test_a_neighbour_added_by_hand_survives_passes(e2e: EndToEnd, daemon: DaemonProcess) -> None:
    """A neighbour without peeringd's description is never touched, pass after pass."""
    wait_until_converged(e2e)
    frr = e2e.lab.router.frr
    frr.configure(f"router bgp {ROUTER_AS}", f"neighbor {UNMANAGED_NEIGHBOUR} remote-as 65099")
    try:
        since = len(daemon.events("change applied"))
        outcomes = [run_pass(daemon)["outcome"] for _ in range(3)]
        config = running_config(e2e)
    finally:
        frr.configure(f"router bgp {ROUTER_AS}", f"no neighbor {UNMANAGED_NEIGHBOUR}")

    assert outcomes == ["converged"] * 3
    assert changes(daemon, since) == []
    assert f" neighbor {UNMANAGED_NEIGHBOUR} remote-as 65099\n" in config


def test_a_managed_neighbour_deleted_by_hand_is_restored(e2e: EndToEnd, daemon: DaemonProcess) -> None:
    """The next pass puts a managed neighbour back, and its session comes up again."""
    wait_until_converged(e2e)
    node = e2e.kubernetes_nodes()[0]
    frr = e2e.lab.router.frr
    frr.configure(f"router bgp {ROUTER_AS}", f"no neighbor {node.address}")
    assert str(node.address) not in frr.neighbour_states()
    since = len(daemon.events("change applied"))

    done = run_pass(daemon)

    assert done["outcome"] == "converged"
    assert changes(daemon, since) == [
        (ADC, "create", f"neighbor {node.address}"),
        (ADC, "update", "saved configuration"),
    ]
    wait_until_peered(e2e, node)
    assert missing_lines(running_config(e2e), node) == []


def test_a_change_whose_save_failed_is_saved_by_a_later_pass(e2e: EndToEnd, daemon: DaemonProcess) -> None:
    """saveConfig: when `write memory` fails, the daemon's next pass saves, though nothing else differs."""
    wait_until_converged(e2e)
    node = e2e.kubernetes_nodes()[-1]
    frr = e2e.lab.router.frr
    saved = frr.config_dir / "frr.conf"
    # Someone removes a managed neighbour and saves that; then the saved config is read-only.
    frr.configure(f"router bgp {ROUTER_AS}", f"no neighbor {node.address}")
    frr.vtysh("write memory")
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (frr.config_dir, saved)}
    frr.config_dir.chmod(0o550)
    saved.chmod(0o440)
    try:
        failed = run_pass(daemon)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    since = len(daemon.events("change applied"))
    retried = run_pass(daemon)

    assert failed["outcome"] == "failed"
    assert "rejected 'write memory': % Error: failed to open configuration file" in failed["errors"][ADC]
    assert retried["outcome"] == "converged"
    assert changes(daemon, since) == [(ADC, "update", "saved configuration")]
    assert missing_lines(saved.read_text(), node) == []
    wait_until_peered(e2e, node)


def test_closing_leaves_nothing_behind_even_after_a_failure(tmp_path: Path) -> None:
    """A failure inside the environment still stops the daemon (cleanly), calico-node, the API
    server and the lab, and removes namespaces, processes and files."""
    skip_unless_lab_can_run()
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="a test failed here"):
        _converge_then_fail(tmp_path, seen)

    assert seen["daemon"].process.returncode == 0
    assert not seen["calico"].running
    assert len(seen["namespaces"]) == 4  # switch, router, two nodes
    assert [name for name in seen["namespaces"] if name in netns.existing_names()] == []
    assert [pid for pid in seen["pids"] if process.is_running(pid)] == []
    assert not seen["workdir"].exists()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(_host_port(seen["api"]), 5):
        pass


def _converge_then_fail(workdir: Path, seen: dict[str, Any]) -> None:
    """Converge with the daemon, note what runs in `seen`, then fail like a test would."""
    with end_to_end(workdir) as env:
        daemon = env.start_daemon()
        wait_until_converged(env)
        seen.update(
            daemon=daemon,
            namespaces=env.lab.namespace_names(),
            pids=env.lab.process_ids(),
            workdir=env.lab.workdir,
            api=env.server.url,
            calico=env.calico,
        )
        raise RuntimeError("a test failed here")


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return str(ipaddress.IPv4Address(host)), int(port)
