"""The BGP lab as one object: LAN, FRR router with SSH to vtysh, forwarder and Calico nodes.

`BgpLab` is a context manager; everything it starts or creates is registered for teardown the
moment it exists, so a failure half-way through building, or in a test, still removes it all:
processes (stopped, then swept out of every lab namespace), namespaces and the work dir.
Namespace names carry a random per-run id, so parallel runs and a crashed run's leftovers never
collide. Addresses: router 10.200.0.1/24, node N 10.200.0.(10+N)/24 with pod block
10.244.N.0/26 in pool 10.244.0.0/16.

Not here: BGP configuration. Tests (or the daemon under test) configure FRR; callers render
each node's BIRD config with `bird.render_bird_config` and apply it with `node.bird.apply`.
"""

import grp
import ipaddress
import os
import pwd
import secrets
import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .bird import DEFAULT_AS, BirdDaemon, CalicoNode
from .errors import LabError
from .forward import TcpForwarder
from .frr import FrrRouter
from .netns import Lan, Namespace
from .sshd import SshLogin, VtyshSshServer

__all__ = [
    "LAN",
    "POD_POOL",
    "ROUTER_ADDRESS",
    "ROUTER_HOSTNAME",
    "BgpLab",
    "LabNode",
    "LabRouter",
    "missing_prerequisites",
]

LAN = ipaddress.IPv4Network("10.200.0.0/24")
ROUTER_ADDRESS = ipaddress.IPv4Address("10.200.0.1")
ROUTER_HOSTNAME = "frr-lab"
POD_POOL = ipaddress.IPv4Network("10.244.0.0/16")
_NODE_ADDRESS_BASE = 10
_MAX_NODES = 200
_SSH_PORT = 22
_NAME_PREFIX = "pdlab"

# Binaries the lab runs, with the Debian package that brings each.
_REQUIRED_PROGRAMS = {
    "ip": "iproute2",
    "unshare": "util-linux",
    "mount": "mount",
    "ssh-keygen": "openssh-client",
    "/usr/sbin/sshd": "openssh-server",
    "/usr/lib/frr/zebra": "frr",
    "/usr/lib/frr/bgpd": "frr",
    "/usr/bin/vtysh": "frr",
    "/usr/sbin/bird": "bird2",
    "/usr/sbin/birdc": "bird2",
}


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the lab (empty when it can), one reason per entry."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces, mounts, FRR and sshd)")
    for program, package in _REQUIRED_PROGRAMS.items():
        if shutil.which(program) is None:
            missing.append(f"{program} (Debian package {package})")
    try:
        pwd.getpwnam("frr")
        grp.getgrnam("frrvty")
        grp.getgrnam("shadow")
    except KeyError:
        missing.append("user frr and groups frrvty and shadow (Debian packages frr, passwd)")
    return missing


@dataclass(frozen=True)
class LabNode:
    """A Kubernetes node stand-in: its namespace, address, pod block and (not yet run) BIRD."""

    name: str
    namespace: Namespace
    address: ipaddress.IPv4Address
    block: ipaddress.IPv4Network
    bird: BirdDaemon
    workdir: Path

    def calico(self, as_number: int = DEFAULT_AS) -> CalicoNode:
        """The node as calico-node would describe it to BIRD."""
        return CalicoNode(self.name, self.address, as_number, (self.block,))


@dataclass(frozen=True)
class LabRouter:
    """The FRR router: its namespace and address, FRR, sshd and the root-side SSH login."""

    namespace: Namespace
    address: ipaddress.IPv4Address
    frr: FrrRouter
    sshd: VtyshSshServer
    forwarder: TcpForwarder
    login: SshLogin


class BgpLab:
    """A router and `node_count` nodes on one LAN; more nodes can come and go while it runs."""

    def __init__(self, node_count: int = 2) -> None:
        self.run_id = secrets.token_hex(3)
        self._node_count = node_count
        self._stack = ExitStack()
        self._nodes: dict[str, LabNode] = {}
        self._namespaces: list[Namespace] = []
        self._next_node_index = 1
        self._router: LabRouter | None = None
        self._lan: Lan | None = None
        self._workdir: Path | None = None

    def __enter__(self) -> "BgpLab":
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def workdir(self) -> Path:
        """The run's temporary directory (configs, sockets, keys, logs)."""
        if self._workdir is None:
            raise LabError("the lab is not open")
        return self._workdir

    @property
    def router(self) -> LabRouter:
        """The FRR router; LabError before `open`."""
        if self._router is None:
            raise LabError("the lab is not open")
        return self._router

    @property
    def nodes(self) -> dict[str, LabNode]:
        """The running nodes by name (a copy)."""
        return dict(self._nodes)

    def open(self) -> None:
        """Build the LAN, start FRR, sshd and the forwarder, and add the first nodes."""
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Tear everything down, in reverse order of creation, whatever fails on the way."""
        self._stack.close()
        self._router = None

    def add_node(self) -> LabNode:
        """Add a node namespace on the LAN (BIRD starts on the first `node.bird.apply`)."""
        index = self._next_node_index
        if index > _MAX_NODES:
            raise LabError(f"the lab has room for {_MAX_NODES} nodes")
        self._next_node_index += 1
        name = f"node{index}"
        namespace = self._create_namespace(name, hostname=name)
        address = LAN.network_address + _NODE_ADDRESS_BASE + index
        self._lan_or_fail().attach(namespace, address)
        workdir = self.workdir / name
        workdir.mkdir(mode=0o700)
        node = LabNode(
            name=name,
            namespace=namespace,
            address=address,
            block=ipaddress.IPv4Network(f"10.244.{index}.0/26"),
            bird=BirdDaemon(namespace, workdir),
            workdir=workdir,
        )
        self._nodes[name] = node
        return node

    def remove_node(self, name: str) -> None:
        """Stop the node's BIRD (its sessions end with a Cease) and delete its namespace."""
        node = self._nodes.pop(name)
        node.bird.stop()
        self._lan_or_fail().detach(node.namespace)
        node.namespace.delete()
        self._namespaces.remove(node.namespace)

    def namespace_names(self) -> list[str]:
        """The names of the lab's namespaces that currently exist."""
        return [namespace.name for namespace in self._namespaces]

    def process_ids(self) -> set[int]:
        """Every process inside the lab's namespaces (daemons and SSH sessions)."""
        return {pid for namespace in self._namespaces for pid in namespace.pids()}

    def _build(self) -> None:
        workdir = Path(tempfile.mkdtemp(prefix=f"peeringd-bgplab-{self.run_id}-"))
        self._stack.callback(shutil.rmtree, workdir)
        # frr and the lab's SSH login must get through to their own subdirectories.
        workdir.chmod(0o711)
        self._workdir = workdir
        switch = self._create_namespace("switch", hostname="switch")
        self._lan = Lan(switch, LAN)
        router_namespace = self._create_namespace("router", hostname=ROUTER_HOSTNAME)
        self._lan.attach(router_namespace, ROUTER_ADDRESS)
        router_dir = workdir / "router"
        router_dir.mkdir(mode=0o711)
        router_dir.chmod(0o711)
        frr = FrrRouter(router_namespace, router_dir)
        self._stack.callback(frr.stop)
        frr.start()
        sshd = VtyshSshServer(
            router_namespace,
            router_dir,
            listen=ROUTER_ADDRESS,
            vtysh_command=frr.vtysh_command,
            port=_SSH_PORT,
        )
        self._stack.callback(sshd.stop)
        sshd.start()
        forwarder = TcpForwarder(router_namespace.path, (str(ROUTER_ADDRESS), _SSH_PORT))
        self._stack.callback(forwarder.close)
        forwarder.start()
        self._router = LabRouter(
            namespace=router_namespace,
            address=ROUTER_ADDRESS,
            frr=frr,
            sshd=sshd,
            forwarder=forwarder,
            login=sshd.login("127.0.0.1", forwarder.port),
        )
        self._stack.callback(self._remove_all_nodes)
        for _ in range(self._node_count):
            self.add_node()

    def _create_namespace(self, role: str, *, hostname: str) -> Namespace:
        namespace = Namespace.create(f"{_NAME_PREFIX}-{self.run_id}-{role}", hostname)
        self._namespaces.append(namespace)
        self._stack.callback(self._delete_namespace, namespace)
        return namespace

    def _delete_namespace(self, namespace: Namespace) -> None:
        namespace.delete()
        if namespace in self._namespaces:
            self._namespaces.remove(namespace)

    def _remove_all_nodes(self) -> None:
        # Stop every BIRD even if one refuses; namespaces go with their own callbacks.
        with ExitStack() as stops:
            for node in self._nodes.values():
                stops.callback(node.bird.stop)
        self._nodes.clear()

    def _lan_or_fail(self) -> Lan:
        if self._lan is None:
            raise LabError("the lab is not open")
        return self._lan
