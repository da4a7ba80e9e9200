"""BIRD2 on a lab node, configured the way calico-node's confd renders BIRD for Calico.

`render_bird_config` is pure: a node, the BGP peers that apply to it and the node-to-node mesh
go in, BIRD2 config text comes out (Calico's templates are BIRD 1.x; differences are noted
where they are made). `BirdDaemon` runs BIRD in a node namespace with its own control socket,
config and pid file, reloads it with `birdc configure` and reads `show protocols`.

Calico's rules kept here: router id and source address = node IP; one shared template with
`multihop`, `gateway recursive`, `add paths on`, `graceful restart`, `connect delay time 2`,
`connect retry time 5`, `error wait time 5,30` (BIRD2 takes them all; gateway and add paths
move into the ipv4 channel); protocols `Global_<ip>` / `Node_<ip>` / `Mesh_<ip>` (plus
`_port_<p>`), a global peer winning over a node peer with the same IP and port; mesh peers
towards a higher IP are passive; import everything; export only the node's own blocks (and,
given the IP pool, blocks in the pool learnt from other nodes, as Calico does); the kernel
protocol installs learnt routes, without `persist` so a stopped BIRD leaves no routes behind.
BIRD2 would also push the `direct` connected routes to the kernel: they are filtered out.

Not here: anything that reads Kubernetes; callers turn Calico objects into these inputs.
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

from . import poll
from .errors import LabError
from .netns import Namespace
from .process import Daemon, run

__all__ = [
    "DEFAULT_AS",
    "BirdDaemon",
    "BirdProtocol",
    "CalicoNode",
    "CalicoPeer",
    "check_bird_config",
    "parse_protocols",
    "protocol_name",
    "render_bird_config",
]

_BIRD = "/usr/sbin/bird"
_BIRDC = "/usr/sbin/birdc"
_START_TIMEOUT = 10.0

PeerKind = Literal["Global", "Node", "Mesh"]
# Calico's AS for a node when neither its annotation nor BGPConfiguration `default` gives one.
DEFAULT_AS = 64512


@dataclass(frozen=True)
class CalicoNode:
    """A node as calico-node sees it: IPv4 address (router id), AS and its IPAM blocks."""

    name: str
    address: ipaddress.IPv4Address
    as_number: int = DEFAULT_AS
    blocks: tuple[ipaddress.IPv4Network, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CalicoPeer:
    """A BGPPeer as it applies to one node: global (every node) or node-specific."""

    address: ipaddress.IPv4Address
    as_number: int
    kind: Literal["Global", "Node"] = "Global"
    port: int | None = None
    password: str | None = None
    next_hop: Literal["self", "keep"] | None = None


class BirdProtocol(NamedTuple):
    """One row of `birdc show protocols`; a BGP session is up when info starts Established."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str


def protocol_name(kind: PeerKind, address: ipaddress.IPv4Address, port: int | None = None) -> str:
    """Calico's BIRD protocol name for a peer, e.g. Global_10_200_0_1."""
    name = f"{kind}_{str(address).replace('.', '_')}"
    return f"{name}_port_{port}" if port is not None else name


def render_bird_config(
    node: CalicoNode,
    peers: Sequence[CalicoPeer],
    mesh: Sequence[CalicoNode] = (),
    *,
    pool: ipaddress.IPv4Network | None = None,
) -> str:
    """BIRD2 config for `node` with `peers`; `mesh` lists the cluster's nodes when the
    node-to-node mesh is on (the node itself is skipped), empty when it is off."""
    sections = [_header(node, pool), _template(node)]
    sections += [_mesh_peer(node, other) for other in mesh if other.address != node.address]
    sections += [_peer(node, peer) for peer in _effective_peers(node, peers)]
    return "\n".join(sections)


def check_bird_config(path: Path) -> None:
    """Let BIRD parse a config file (`bird -p`); raise LabError with its complaint."""
    run([_BIRD, "-p", "-c", str(path)])


def parse_protocols(text: str) -> list[BirdProtocol]:
    """Rows of `birdc show protocols` output (banner and header lines skipped)."""
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or line.startswith(("BIRD ", "Name ")):
            continue
        name, proto, table, state, since, *rest = fields
        # `since` is a time, or a date and a time when older than a day.
        if rest and _looks_like_time(rest[0]):
            since = f"{since} {rest.pop(0)}"
        rows.append(BirdProtocol(name, proto, table, state, since, " ".join(rest)))
    return rows


class BirdDaemon:
    """BIRD in a node namespace, with socket, config, pid file and log under `workdir`."""

    def __init__(self, namespace: Namespace, workdir: Path) -> None:
        self.namespace = namespace
        self.config_path = workdir / "bird.conf"
        self.socket_path = workdir / "bird.ctl"
        self._workdir = workdir
        self._daemon: Daemon | None = None

    def apply(self, config: str) -> None:
        """Check `config` with `bird -p`, then start BIRD with it or reload the running one."""
        candidate = self._workdir / "bird.conf.new"
        candidate.write_text(config)
        check_bird_config(candidate)
        candidate.replace(self.config_path)
        if self._daemon is None:
            self._start()
            return
        answer = self.birdc("configure")
        if "Reconfigur" not in answer:
            raise LabError(f"birdc configure in {self.namespace.name}: {answer.strip()}")

    def birdc(self, *command: str) -> str:
        """Run one birdc command against this BIRD and return its output."""
        if self._daemon is not None:
            self._daemon.check_running()
        return run([_BIRDC, "-s", str(self.socket_path), *command])

    def protocols(self) -> list[BirdProtocol]:
        """`show protocols`, parsed."""
        return parse_protocols(self.birdc("show", "protocols"))

    def wait_for_protocol(
        self, name: str, *, established: bool = True, timeout: float = 30.0
    ) -> BirdProtocol | None:
        """Poll until BGP protocol `name` is Established (or, established=False, is not)."""

        def row() -> BirdProtocol | None:
            return next((found for found in self.protocols() if found.name == name), None)

        def wanted(found: BirdProtocol | None) -> bool:
            up = found is not None and found.info.startswith("Established")
            return up == established

        return poll.until(
            row,
            wanted,
            timeout=timeout,
            what=f"BIRD {name} in {self.namespace.name} {'' if established else 'not '}Established",
        )

    def stop(self) -> None:
        """Stop BIRD (SIGTERM makes it close its sessions with a Cease)."""
        if self._daemon is not None:
            self._daemon.stop()

    def restart(self) -> None:
        """Stop BIRD and start it again on its config, as a restarted calico-node does."""
        self.stop()
        self._start()

    def _start(self) -> None:
        pid_file = self._workdir / "bird.pid"
        argv = [_BIRD, "-f", "-c", str(self.config_path), "-s", str(self.socket_path)]
        self._daemon = Daemon(
            f"{self.namespace.name}/bird",
            self.namespace.command([*argv, "-P", str(pid_file)]),
            log_path=self._workdir / "bird.log",
            namespace_path=self.namespace.path,
            pid_file=pid_file,
        )
        self._daemon.start()
        poll.until(self._answers, bool, timeout=_START_TIMEOUT, what="birdc reaches BIRD")

    def _answers(self) -> bool:
        try:
            return "BIRD" in self.birdc("show", "status")
        except LabError:
            assert self._daemon is not None
            self._daemon.check_running()
            return False


def _looks_like_time(text: str) -> bool:
    return text.count(":") == 2 and text.replace(":", "").replace(".", "").isdigit()


def _effective_peers(node: CalicoNode, peers: Sequence[CalicoPeer]) -> list[CalicoPeer]:
    """Peers keyed by IP and port, a global peer winning; never a peer on the node's own IP."""
    chosen: dict[tuple[ipaddress.IPv4Address, int | None], CalicoPeer] = {}
    for peer in peers:
        if peer.address == node.address:
            continue
        key = (peer.address, peer.port)
        if key not in chosen or (peer.kind == "Global" and chosen[key].kind != "Global"):
            chosen[key] = peer
    return list(chosen.values())


def _header(node: CalicoNode, pool: ipaddress.IPv4Network | None) -> str:
    own_blocks = "".join(
        f"  if ( net = {block} ) then {{ accept; }}\n  if ( net ~ {block} ) then {{ reject; }}\n"
        for block in node.blocks
    )
    in_pool = f"  if ( net ~ {pool} ) then {{ accept; }}\n" if pool is not None else ""
    static_routes = "".join(f"  route {block} blackhole;\n" for block in node.blocks)
    return f"""\
# Rendered like calico-node's confd bird.cfg.template, in BIRD2 syntax.
router id {node.address};
log stderr all;

# The node's own IPAM blocks: announce them whole, never their parts.
function calico_aggr ()
{{
{own_blocks}}}

filter calico_export_to_bgp_peers {{
  calico_aggr();
{in_pool}  reject;
}}

# BIRD2 exports connected (direct) routes to the kernel too; Calico's BIRD 1 does not.
filter calico_kernel_programming {{
  if ( source = RTS_DEVICE ) then {{ reject; }}
  accept;
}}

protocol static {{
  ipv4;
{static_routes}}}

protocol kernel {{
  learn;
  scan time 2;
  graceful restart;
  merge paths on;
  ipv4 {{
    import all;
    export filter calico_kernel_programming;
  }};
}}

protocol device {{
  debug {{ states }};
  scan time 2;
}}

# Connected routes resolve the recursive BGP next hops.
protocol direct {{
  debug {{ states }};
  ipv4;
  interface -"cali*", -"kube-ipvs*", "*";
}}
"""


def _template(node: CalicoNode) -> str:
    return f"""\
template bgp bgp_template {{
  debug {{ states }};
  description "Connection to BGP peer";
  local as {node.as_number};
  multihop;
  ipv4 {{
    gateway recursive;
    import all;
    export filter calico_export_to_bgp_peers;
    add paths on;
  }};
  graceful restart;
  connect delay time 2;
  connect retry time 5;
  error wait time 5,30;
}}
"""


def _mesh_peer(node: CalicoNode, other: CalicoNode) -> str:
    passive = "  passive on; # Mesh is unidirectional, peer will connect to us.\n"
    return f"""\
protocol bgp {protocol_name("Mesh", other.address)} from bgp_template {{
  neighbor {other.address} as {other.as_number};
  source address {node.address};
{passive if other.address > node.address else ""}}}
"""


def _peer(node: CalicoNode, peer: CalicoPeer) -> str:
    port = f" port {peer.port}" if peer.port is not None else ""
    password = f'  password "{peer.password}";\n' if peer.password is not None else ""
    channel = f"  ipv4 {{ next hop {peer.next_hop}; }};\n" if peer.next_hop is not None else ""
    return f"""\
protocol bgp {protocol_name(peer.kind, peer.address, peer.port)} from bgp_template {{
  neighbor {peer.address}{port} as {peer.as_number};
  source address {node.address};
{password}{channel}}}
"""
