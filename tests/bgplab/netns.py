"""Network namespaces the lab creates, and the bridged LAN that joins them.

Every namespace here is made by this module with `ip netns add` and deleted by it, together
with every process still inside. The LAN's bridge lives in its own "switch" namespace and each
host gets a veth pair created straight into the switch and the host namespace, so nothing is
ever created in, moved through or configured in the root namespace. Addresses must lie in
10.0.0.0/8 and outside 10.102.33.0/24 (the seed's real network).
"""

import contextlib
import ipaddress
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from . import poll
from .errors import LabError
from .process import run

__all__ = ["Lan", "Namespace", "Route", "existing_names"]

_NETNS_DIR = Path("/run/netns")
_LAB_SPACE = ipaddress.IPv4Network("10.0.0.0/8")
_FORBIDDEN = ipaddress.IPv4Network("10.102.33.0/24")
# Runs the rest of argv with the namespace's hostname in a UTS namespace of its own, so
# prompts and FRR's running-config show the lab host's name, not the CI machine's.
_WITH_HOSTNAME = 'echo "$0" > /proc/sys/kernel/hostname && exec "$@"'
_BRIDGE = "br0"
_HOST_INTERFACE = "eth0"
_KILL_WAIT = 5.0


class Route(NamedTuple):
    """One kernel route: destination prefix, next-hop gateways, protocol and route type."""

    destination: str
    gateways: frozenset[str]
    protocol: str
    kind: str


def existing_names() -> set[str]:
    """The names of all named network namespaces on the machine (to check for leftovers)."""
    try:
        return set(os.listdir(_NETNS_DIR))
    except FileNotFoundError:
        return set()


class Namespace:
    """A named network namespace made by the lab; processes started in it see `hostname`."""

    def __init__(self, name: str, hostname: str) -> None:
        self.name = name
        self.hostname = hostname

    @classmethod
    def create(cls, name: str, hostname: str) -> "Namespace":
        """Add the namespace and bring its loopback up."""
        if name in existing_names():
            raise LabError(f"network namespace {name} already exists")
        run(["ip", "netns", "add", name])
        namespace = cls(name, hostname)
        namespace.ip("link", "set", "lo", "up")
        return namespace

    @property
    def path(self) -> Path:
        """The namespace's file, for setns(2) and for telling which processes are inside."""
        return _NETNS_DIR / self.name

    def command(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` inside this namespace under its hostname."""
        return [
            "ip", "netns", "exec", self.name,
            "unshare", "--uts", "--",
            "sh", "-c", _WITH_HOSTNAME, self.hostname, *argv,
        ]  # fmt: skip

    def ip(self, *args: str) -> str:
        """Run `ip -n <namespace> ARGS` and return its output."""
        return run(["ip", "-n", self.name, *args])

    def routes(self) -> list[Route]:
        """The namespace's IPv4 main routing table."""
        entries = json.loads(self.ip("-j", "-4", "route", "show", "table", "main") or "[]")
        return [_route(entry) for entry in entries]

    def pids(self) -> list[int]:
        """The processes inside the namespace."""
        return [int(pid) for pid in run(["ip", "netns", "pids", self.name]).split()]

    def delete(self) -> None:
        """Kill every process inside (SIGTERM, then SIGKILL) and delete the namespace."""
        if self.name not in existing_names():
            return
        survivors = self.pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in survivors:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            survivors = self._wait_until_empty()
            if not survivors:
                break
        run(["ip", "netns", "delete", self.name])
        if survivors:
            raise LabError(f"{self.name}: processes {survivors} survived SIGKILL")

    def _wait_until_empty(self) -> list[int]:
        try:
            return poll.until(self.pids, lambda pids: not pids, timeout=_KILL_WAIT, what=self.name)
        except LabError:
            return self.pids()


class Lan:
    """One IPv4 subnet on a bridge in its own switch namespace; hosts attach by veth pair."""

    def __init__(self, switch: Namespace, network: ipaddress.IPv4Network) -> None:
        if not network.subnet_of(_LAB_SPACE) or network.overlaps(_FORBIDDEN):
            raise ValueError(f"{network}: the lab only uses 10.0.0.0/8 outside {_FORBIDDEN}")
        self.switch = switch
        self.network = network
        self._ports: dict[str, str] = {}
        self._port_count = 0
        switch.ip("link", "add", _BRIDGE, "type", "bridge")
        switch.ip("link", "set", _BRIDGE, "up")

    def attach(self, host: Namespace, address: ipaddress.IPv4Address) -> None:
        """Give `host` an eth0 with `address` on this LAN."""
        if address not in self.network:
            raise ValueError(f"{address} is not in the lab LAN {self.network}")
        if host.name in self._ports:
            raise LabError(f"{host.name} is already attached")
        self._port_count += 1
        port = f"port{self._port_count}"
        self.switch.ip(
            "link", "add", port, "type", "veth",
            "peer", "name", _HOST_INTERFACE, "netns", host.name,
        )  # fmt: skip
        self._ports[host.name] = port
        self.switch.ip("link", "set", port, "master", _BRIDGE, "up")
        host.ip("addr", "add", f"{address}/{self.network.prefixlen}", "dev", _HOST_INTERFACE)
        host.ip("link", "set", _HOST_INTERFACE, "up")

    def detach(self, host: Namespace) -> None:
        """Remove `host`'s port (and with it the host's eth0), if it is still there."""
        port = self._ports.pop(host.name, None)
        links = json.loads(self.switch.ip("-j", "link", "show"))
        if port is not None and port in {link["ifname"] for link in links}:
            self.switch.ip("link", "delete", port)


def _route(entry: dict[str, object]) -> Route:
    nexthops = entry.get("nexthops")
    hops = nexthops if isinstance(nexthops, list) else [entry]
    gateways = frozenset(str(hop["gateway"]) for hop in hops if "gateway" in hop)
    return Route(
        destination=str(entry["dst"]),
        gateways=gateways,
        protocol=str(entry.get("protocol", "")),
        kind=str(entry.get("type", "unicast")),
    )
