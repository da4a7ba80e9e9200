"""calico-node for the BGP lab: Calico objects in the API server become BIRD config and status.

For every lab node whose Kubernetes Node exists, `CalicoNodeAgent` renders BIRD config the way
calico-node's confd does and reloads that node's BIRD when the config changed (a BGPPeer, the
BGPConfiguration or the set of nodes moved), and it fills the status of each CalicoNodeStatus
naming a lab node from `birdc show protocols`. It runs on a background thread, one round every
half second, and stops cleanly; `paused()` holds it off while a test removes a node.

The pure parts are separate and tested without root: `node_bgp` (API objects -> one node's BIRD
inputs, Calico's rules: local AS from the node's annotation, else BGPConfiguration `default`,
else 64512; global peers on every node, `node:` peers on theirs; the node-to-node mesh unless
BGPConfiguration turns it off; export of the node's blocks and its IP pool) and `node_status`
(BIRD's protocol rows -> status.bgp with Calico's peer types and session states).

Differences from calico-node, on purpose: a status is written as soon as it changes (and
refreshed every updatePeriodSeconds), so tests wait less; BGPPeers with a nodeSelector or a
peerSelector and IPv6 peers are skipped, BGPFilters ignored. A peer's password comes from its
`password.secretKeyRef` in the Secrets of calico-node's namespace (kube-system, a manifest
install's); a peer whose Secret or key is missing is skipped (no session), and RBAC is not
checked (peeringd's plan asks the API server about that). Not here: writing any Calico object
but a CalicoNodeStatus's status, or touching lab nodes without a Kubernetes Node.
"""

import base64
import binascii
import contextlib
import ipaddress
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from peeringd.lab.kubeapi import KubeApiServer

from . import bird
from .errors import LabError
from .lab import BgpLab, LabNode

__all__ = [
    "CalicoNodeAgent",
    "ClusterObjects",
    "NodeBgp",
    "node_bgp",
    "node_status",
    "read_cluster",
]

Json = dict[str, Any]

# The API group calico-node reads: its CRDs' own, unless the cluster serves Calico's v3 API.
_GROUP = "crd.projectcalico.org"
# Where calico-node runs in the lab, and reads BGP passwords from.
_NAMESPACE = "kube-system"
_ADDRESS_ANNOTATION = "projectcalico.org/IPv4Address"
_AS_ANNOTATION = "projectcalico.org/ASNumber"
_PEER_TYPES = {"Global": "GlobalPeer", "Node": "NodePeer", "Mesh": "NodeMesh"}
# The BGP states CalicoNodeStatus accepts; BIRD's info column starts with one of them.
_SESSION_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")
_DEFAULT_UPDATE_SECONDS = 10
_ROUND_SECONDS = 0.5
_STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ClusterObjects:
    """What calico-node reads from the API server, as stored there."""

    nodes: tuple[Json, ...]
    peers: tuple[Json, ...]
    configuration: Json | None
    pools: tuple[Json, ...]
    statuses: tuple[Json, ...]
    secrets: tuple[Json, ...] = ()


@dataclass(frozen=True)
class NodeBgp:
    """One node's BIRD inputs: itself, the peers that apply to it, the mesh and its pool."""

    node: bird.CalicoNode
    peers: tuple[bird.CalicoPeer, ...]
    mesh: tuple[bird.CalicoNode, ...]
    pool: ipaddress.IPv4Network | None

    def config(self) -> str:
        """The node's BIRD2 config text."""
        return bird.render_bird_config(self.node, self.peers, self.mesh, pool=self.pool)


def read_cluster(server: KubeApiServer, group: str = _GROUP) -> ClusterObjects:
    """Nodes, BGPPeers, BGPConfiguration `default`, IPPools and CalicoNodeStatuses of `group`."""
    return ClusterObjects(
        nodes=tuple(server.objects("nodes")),
        peers=tuple(server.objects(f"bgppeers.{group}")),
        configuration=server.get(f"bgpconfigurations.{group}", "default"),
        pools=tuple(server.objects(f"ippools.{group}")),
        statuses=tuple(server.objects(f"caliconodestatuses.{group}")),
        secrets=tuple(server.objects("secrets", _NAMESPACE)),
    )


def node_bgp(cluster: ClusterObjects, name: str, blocks: tuple[ipaddress.IPv4Network, ...]) -> NodeBgp | None:
    """The BIRD inputs of node `name` owning `blocks`; None without a Node or an address."""
    configuration = (cluster.configuration or {}).get("spec") or {}
    cluster_as = _as_number(configuration.get("asNumber")) or bird.DEFAULT_AS
    speakers = {
        node["metadata"]["name"]: speaker
        for node in cluster.nodes
        if (speaker := _speaker(node, cluster_as)) is not None
    }
    me = speakers.get(name)
    if me is None:
        return None
    node = bird.CalicoNode(name, me.address, me.as_number, blocks)
    mesh: tuple[bird.CalicoNode, ...] = ()
    if configuration.get("nodeToNodeMeshEnabled", True):
        mesh = tuple(sorted(speakers.values(), key=lambda speaker: speaker.address))
    peers = tuple(peer for item in cluster.peers if (peer := _peer(item, name, cluster.secrets)) is not None)
    return NodeBgp(node, peers, mesh, _export_pool(cluster.pools, blocks))


def node_status(protocols: Sequence[bird.BirdProtocol], now: datetime) -> Json:
    """CalicoNodeStatus status (class BGP) from `birdc show protocols` rows at time `now`."""
    peers = []
    for row in protocols:
        if (found := _peer_of_protocol(row.name)) is not None:
            peer_ip, peer_type = found
            peers.append(
                {"peerIP": peer_ip, "type": peer_type, "state": _session_state(row), "since": row.since}
            )
    established = sum(peer["state"] == "Established" for peer in peers)
    return {
        "bgp": {
            "numberEstablishedV4": established,
            "numberNotEstablishedV4": len(peers) - established,
            "numberEstablishedV6": 0,
            "numberNotEstablishedV6": 0,
            "peersV4": peers,
        },
        "lastUpdated": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class CalicoNodeAgent:
    """calico-node on every lab node, driven by what `server` holds. A context manager."""

    def __init__(self, lab: BgpLab, server: KubeApiServer, group: str = _GROUP) -> None:
        self._lab = lab
        self._server = server
        self._group = group
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bgplab-calico-node", daemon=True)
        self._configs: dict[str, str] = {}  # node -> BIRD config it runs
        self._reported: dict[str, tuple[Json, datetime]] = {}  # status name -> last bgp written
        self._failure: Exception | None = None

    def __enter__(self) -> "CalicoNodeAgent":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the background rounds."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the rounds and wait for the one in flight; LabError when it does not end."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(_STOP_TIMEOUT)
        if self._thread.is_alive():
            raise LabError(f"the calico-node stand-in did not stop within {_STOP_TIMEOUT:g}s")

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise LabError when the latest background round failed (tests fail fast on it)."""
        if self._failure is not None:
            raise LabError(f"the calico-node stand-in failed: {self._failure}") from self._failure

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No round runs inside the block (e.g. while a node's namespace goes away)."""
        with self._lock:
            yield

    def sync(self) -> None:
        """One round: reload every BIRD whose config changed, then report the statuses."""
        with self._lock:
            cluster = read_cluster(self._server, self._group)
            nodes = self._lab.nodes
            for gone in set(self._configs) - set(nodes):
                del self._configs[gone]
            for name, node in nodes.items():
                inputs = node_bgp(cluster, name, (node.block,))
                if inputs is None:
                    continue  # no Kubernetes Node: calico-node is not running there
                config = inputs.config()
                if self._configs.get(name) != config:
                    node.bird.apply(config)
                    self._configs[name] = config
            self._report(cluster, nodes)

    def _report(self, cluster: ClusterObjects, nodes: Mapping[str, LabNode]) -> None:
        now = datetime.now(UTC)
        names = {item["metadata"]["name"] for item in cluster.statuses}
        for gone in set(self._reported) - names:
            del self._reported[gone]
        for item in cluster.statuses:
            name = item["metadata"]["name"]
            spec = item.get("spec") or {}
            node = nodes.get(spec.get("node", ""))
            # Calico: updatePeriodSeconds 0 turns the status off.
            period = spec.get("updatePeriodSeconds", _DEFAULT_UPDATE_SECONDS)
            wanted = "BGP" in spec.get("classes", ()) and period > 0
            if node is None or node.name not in self._configs or not wanted:
                continue
            status = node_status(node.bird.protocols(), now)
            if name in self._reported:
                written, at = self._reported[name]
                if written == status["bgp"] and (now - at).total_seconds() < period:
                    continue
            # Skip an object deleted since the read rather than bring it back.
            if self._server.get(f"caliconodestatuses.{self._group}", name) is None:
                continue
            self._server.put({**item, "status": status})
            self._reported[name] = (status["bgp"], now)

    def _run(self) -> None:
        while not self._stopping.wait(_ROUND_SECONDS):
            try:
                self.sync()
            except Exception as error:  # kept for check(); the next round retries
                self._failure = error
            else:
                self._failure = None


def _speaker(node: Json, cluster_as: int) -> bird.CalicoNode | None:
    """The node as a BGP speaker: its annotated address (else InternalIP) and AS; None without
    an address. Invalid annotations are ignored, as Calico does."""
    metadata = node.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    candidates = [str(annotations.get(_ADDRESS_ANNOTATION, "")).partition("/")[0]]
    candidates += [
        str(entry.get("address", ""))
        for entry in (node.get("status") or {}).get("addresses") or ()
        if entry.get("type") == "InternalIP"
    ]
    address = next((found for text in candidates if (found := _ipv4(text)) is not None), None)
    if address is None:
        return None
    as_number = _as_number(annotations.get(_AS_ANNOTATION)) or cluster_as
    return bird.CalicoNode(metadata["name"], address, as_number)


def _peer(item: Json, node: str, secrets: Sequence[Json] = ()) -> bird.CalicoPeer | None:
    """A BGPPeer as it applies to `node`: global, this node's own, or None (not for it, a kind
    this stand-in does not support, or a password it cannot find in `secrets`)."""
    spec = item.get("spec") or {}
    password = None
    if (ref := (spec.get("password") or {}).get("secretKeyRef")) is not None:
        password = _secret_value(secrets, ref.get("name"), ref.get("key"))
        if password is None:
            return None
    if spec.get("nodeSelector") or spec.get("peerSelector"):
        return None
    if spec.get("node") and spec["node"] != node:
        return None
    host, _, port = str(spec.get("peerIP", "")).partition(":")
    address = _ipv4(host)
    as_number = _as_number(spec.get("asNumber"))
    if address is None or as_number is None or (port and not port.isdigit()):
        return None
    return bird.CalicoPeer(
        address,
        as_number,
        kind="Node" if spec.get("node") else "Global",
        port=int(port) if port else None,
        password=password,
    )


def _secret_value(secrets: Sequence[Json], name: object, key: object) -> str | None:
    secret = next((s for s in secrets if s["metadata"]["name"] == name), None)
    encoded = ((secret or {}).get("data") or {}).get(key)
    try:
        return base64.b64decode(encoded, validate=True).decode() if isinstance(encoded, str) else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def _export_pool(
    pools: Sequence[Json], blocks: tuple[ipaddress.IPv4Network, ...]
) -> ipaddress.IPv4Network | None:
    """The IPv4 pool holding the node's blocks, unless its BGP export is disabled."""
    for pool in pools:
        spec = pool.get("spec") or {}
        try:
            cidr = ipaddress.IPv4Network(spec.get("cidr", ""))
        except ValueError:
            continue
        if not spec.get("disableBGPExport") and blocks and all(b.subnet_of(cidr) for b in blocks):
            return cidr
    return None


def _peer_of_protocol(name: str) -> tuple[str, str] | None:
    """(peerIP, CalicoNodeStatus type) of a BIRD protocol Calico named, e.g. Global_10_0_0_1."""
    kind, _, rest = name.partition("_")
    address = _ipv4(rest.partition("_port_")[0].replace("_", "."))
    if kind not in _PEER_TYPES or address is None:
        return None
    return str(address), _PEER_TYPES[kind]


def _session_state(row: bird.BirdProtocol) -> str:
    first = (row.info.split() or ["Idle"])[0]
    return first if first in _SESSION_STATES else "Idle"


def _as_number(value: object) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if 0 < number < 2**32 else None


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None
