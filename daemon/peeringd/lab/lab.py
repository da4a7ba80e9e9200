"""``peeringd lab``: the real daemon against stand-ins on 127.0.0.1, for people without a cluster.

The lab serves a Kubernetes API (Calico's CRDs, a default IPPool matching the
file's podCIDR, a few Nodes) and one NetScaler simulator per ADC of the file,
then runs the real daemon on a copy of the user's file whose SSH endpoints and
secrets point at the simulators: every connection goes to 127.0.0.1, and the
user's file is never written. Edits to the user's file are copied over while
the lab runs; ``peeringd lab add-node`` and ``remove-node`` change the Nodes
from another terminal. A small stand-in for calico-node fills CalicoNodeStatus
and the simulators' session states, so ``status`` shows both ends.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from ruamel.yaml import YAML

from peeringd.adapters import statefile
from peeringd.core import desired, nodes
from peeringd.errors import PeeringdError, StateFileError
from peeringd.lab.kubeapi import BUNDLED_CRDS, KubeApiServer
from peeringd.lab.nssim import DeviceProfile, NetScalerSimulator, write_known_hosts

__all__ = ["Lab", "add_node", "remove_node"]

CALICO_GROUP = "crd.projectcalico.org/v1"
CALICO = CALICO_GROUP.partition("/")[0]


class Lab:
    """The lab's servers and the copy of the user's file that points the daemon at them."""

    def __init__(self, user_file: Path, workdir: Path, *, node_count: int = 3) -> None:
        self.user_file = user_file
        self.workdir = workdir
        self.state_file = workdir / "peering.yaml"
        self.kubeconfig = workdir / "kubeconfig"
        self._node_count = node_count
        self._stack = ExitStack()
        self._api: KubeApiServer | None = None
        self._adcs: dict[str, NetScalerSimulator] = {}
        self._lock = threading.Lock()
        self._calico_node: _CalicoNode | None = None

    @property
    def api(self) -> KubeApiServer:
        assert self._api is not None, "the lab is started"
        return self._api

    def start(self) -> None:
        """Start the servers and write the daemon's copy of the file; raises StateFileError."""
        loaded = statefile.load(self.user_file)
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._api = self._stack.enter_context(KubeApiServer(BUNDLED_CRDS, "v1"))
        self.api.write_kubeconfig(self.kubeconfig, context="peeringd-lab")
        self._seed(loaded.state)
        self.sync()
        self._calico_node = _CalicoNode(self)
        self._calico_node.start()
        (self.workdir / "lab.json").write_text(
            json.dumps({"kubeconfig": str(self.kubeconfig), "state_file": str(self.state_file)})
        )

    def stop(self) -> None:
        if self._calico_node is not None:
            self._calico_node.stop()
        (self.workdir / "lab.json").unlink(missing_ok=True)
        self._stack.close()

    def simulators(self) -> dict[str, NetScalerSimulator]:
        with self._lock:
            return dict(self._adcs)

    def sync(self) -> None:
        """Copy the user's file for the daemon, endpoints rewritten; start simulators for new ADCs.

        A file that does not load is not copied: the daemon keeps the last good copy,
        as it would keep the last good state. Raises StateFileError.
        """
        loaded = statefile.load(self.user_file)
        document = YAML(typ="rt").load(self.user_file.read_text())
        for index, adc in enumerate(loaded.state.adcs):
            simulator = self._simulator(adc)
            document["adcs"][index]["ssh"] = {
                "host": "127.0.0.1",
                "port": simulator.port,
                "username": simulator.username,
                "passwordFile": str(self.workdir / f"{adc.name}.password"),
                "knownHostsFile": str(self.workdir / "known_hosts"),
            }
        write_known_hosts(self.workdir / "known_hosts", self.simulators().values())
        staged = self.state_file.with_suffix(".staged")
        with staged.open("w") as stream:
            YAML(typ="rt").dump(document, stream)
        staged.replace(self.state_file)  # atomically, as editors do

    def _simulator(self, adc: desired.ADC) -> NetScalerSimulator:
        with self._lock:
            if adc.name not in self._adcs:
                password = secrets.token_urlsafe(16)
                simulator = NetScalerSimulator(
                    DeviceProfile(prompt=f"{adc.name} - Primary - {adc.ssh.username}> "),
                    username=adc.ssh.username,
                    password=password,
                    host_key_path=self.workdir / f"{adc.name}.host-key",
                )
                self._adcs[adc.name] = self._stack.enter_context(simulator)
                secret = self.workdir / f"{adc.name}.password"
                secret.write_text(password + "\n")
                secret.chmod(0o600)
            return self._adcs[adc.name]

    def _seed(self, state: desired.PeeringState) -> None:
        self.api.put(
            {
                "apiVersion": CALICO_GROUP,
                "kind": "IPPool",
                "metadata": {"name": "default-ipv4-ippool"},
                "spec": {"cidr": str(state.cluster.pod_cidr), "ipipMode": "Always", "natOutgoing": True},
            }
        )
        self.api.put(
            {
                "apiVersion": CALICO_GROUP,
                "kind": "BGPConfiguration",
                "metadata": {"name": "default"},
                "spec": {"asNumber": state.cluster.as_number, "logSeverityScreen": "Info"},
            }
        )
        for _ in range(self._node_count):
            existing = self.api.objects("nodes")
            names = {item["metadata"]["name"] for item in existing}
            addresses = {a["address"] for item in existing for a in item["status"]["addresses"]}
            self.api.put(node_object(*_next_node(state, names, addresses)))


def node_object(name: str, address: str) -> dict[str, Any]:
    """A Node as kubeadm and calico-node leave it: Ready, its BGP address annotated."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            "annotations": {nodes.IPV4_ADDRESS_ANNOTATION: f"{address}/24"},
        },
        "status": {"addresses": [{"type": "InternalIP", "address": address}]},
    }


def _next_node(state: desired.PeeringState, names: set[str], addresses: set[str]) -> tuple[str, str]:
    """A node name and an address not in use, beside the first ADC's peer address (addresses
    are data only: nothing connects to them)."""
    taken = addresses | {str(adc.peer_ip) for adc in state.adcs}
    network = (
        ipaddress.IPv4Network(f"{state.adcs[0].peer_ip}/24", strict=False)
        if state.adcs
        else ipaddress.IPv4Network("192.0.2.0/24")
    )
    name = next(f"node-{n}" for n in range(1, 10_000) if f"node-{n}" not in names)
    address = next(str(host) for host in list(network.hosts())[10:] if str(host) not in taken)
    return name, address


class _CalicoNode:
    """What calico-node would report, computed from the Calico objects and the simulators.

    A node's session with an ADC is Established when a global BGPPeer points at the
    ADC's peer address and the ADC has the node as a neighbour with the right AS.
    """

    def __init__(self, lab: Lab) -> None:
        self._lab = lab
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-calico-node", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                self._report()
            except (PeeringdError, OSError, KeyError, ValueError):
                continue  # the next round sees the state settled

    def _report(self) -> None:
        api = self._lab.api
        try:
            state = statefile.load(self._lab.state_file).state
        except StateFileError:
            return
        cluster_as = state.cluster.as_number
        speakers = {
            item["metadata"]["name"]: ipaddress.IPv4Interface(
                item["metadata"]["annotations"][nodes.IPV4_ADDRESS_ANNOTATION]
            ).ip
            for item in api.objects("nodes")
        }
        peers = [
            p["spec"]
            for p in api.objects(f"bgppeers.{CALICO}")
            if not p["spec"].get("node") and not p["spec"].get("nodeSelector")
        ]
        simulators = self._lab.simulators()
        for adc in state.adcs:
            simulator = simulators.get(adc.name)
            router = simulator.running().zebos.bgp if simulator else None
            calico_peers = any(p.get("peerIP") == str(adc.peer_ip) for p in peers)
            for speaker in speakers.values():
                neighbour = router.neighbors.get(str(speaker)) if router else None
                up = calico_peers and neighbour is not None and neighbour.remote_as == cluster_as
                if simulator is not None:
                    simulator.set_bgp_session(str(speaker), "Established" if up else "Active", 1 if up else 0)
        for status in api.objects(f"caliconodestatuses.{CALICO}"):
            node = status["spec"].get("node")
            address = speakers.get(node)
            if address is None:
                continue
            status["status"] = {
                "bgp": {
                    "numberEstablishedV4": 0,
                    "numberEstablishedV6": 0,
                    "numberNotEstablishedV4": 0,
                    "numberNotEstablishedV6": 0,
                    "peersV4": list(self._peer_states(state, address, peers, simulators)),
                }
            }
            established = sum(p["state"] == "Established" for p in status["status"]["bgp"]["peersV4"])
            status["status"]["bgp"]["numberEstablishedV4"] = established
            status["status"]["bgp"]["numberNotEstablishedV4"] = (
                len(status["status"]["bgp"]["peersV4"]) - established
            )
            api.put(status)

    @staticmethod
    def _peer_states(
        state: desired.PeeringState,
        address: ipaddress.IPv4Address,
        peers: list[dict[str, Any]],
        simulators: dict[str, NetScalerSimulator],
    ) -> Iterator[dict[str, str]]:
        by_peer_ip = {str(adc.peer_ip): simulators.get(adc.name) for adc in state.adcs}
        for peer in peers:
            simulator = by_peer_ip.get(peer.get("peerIP", ""))
            router = simulator.running().zebos.bgp if simulator else None
            up = (
                router is not None and str(address) in router.neighbors and router.asn == peer.get("asNumber")
            )
            yield {
                "peerIP": peer["peerIP"],
                "type": "GlobalPeer",
                "state": "Established" if up else "Active",
                "since": "lab",
            }


def _lab_client(workdir: Path) -> kubernetes.client.CoreV1Api:
    try:
        endpoints = json.loads((workdir / "lab.json").read_text())
    except OSError:
        raise PeeringdError(
            f"no lab is running (nothing in {workdir}); start one with `peeringd lab`"
        ) from None
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=endpoints["kubeconfig"], client_configuration=configuration
    )
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


def add_node(workdir: Path, name: str | None = None, address: str | None = None) -> tuple[str, str]:
    """Add a Node to the running lab's cluster, as kubeadm join would; returns its name and address."""
    core = _lab_client(workdir)
    state = statefile.load(Path(json.loads((workdir / "lab.json").read_text())["state_file"])).state
    existing = core.list_node().items
    names = {str(item.metadata.name) for item in existing if item.metadata}
    addresses = {a.address for item in existing if item.status for a in item.status.addresses or ()}
    fresh_name, fresh_address = _next_node(state, names, addresses)
    name, address = name or fresh_name, address or fresh_address
    body = kubernetes.client.V1Node.from_dict(node_object(name, address))
    assert body is not None
    core.create_node(body)
    return name, address


def remove_node(workdir: Path, name: str) -> None:
    """Delete a Node from the running lab's cluster, as kubectl delete node would."""
    try:
        _lab_client(workdir).delete_node(name)
    except kubernetes.client.ApiException as error:
        raise PeeringdError(f"cannot remove node {name}: {error.reason}") from None
