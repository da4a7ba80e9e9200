"""The simulated ADC's ZebOS (dynamic routing) configuration and how vtysh prints it.

Plain data plus `render()`, which writes it like `show running-config` on the ADC. Parsing
the same text back lives in `vtysh.parse_running_config`, which reuses the shell's commands.
Pure: no I/O here.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import ipaddress

__all__ = ["BgpRouter", "Neighbor", "ZebosConfig", "default_config", "sort_key"]


@dataclasses.dataclass
class Neighbor:
    """One `neighbor <address> ...` of the BGP router."""

    address: str
    remote_as: int
    description: str | None = None
    password: str | None = None
    ebgp_multihop: int | None = None


@dataclasses.dataclass
class BgpRouter:
    """The single `router bgp <asn>` stanza.

    `extra_lines` keeps lines the simulator does not model (from a seeded config), printed
    after the modelled ones, so that a driver sees them as it would on a real ADC.
    """

    asn: int
    neighbors: dict[str, Neighbor] = dataclasses.field(default_factory=dict)
    max_paths_ebgp: int | None = None
    max_paths_ibgp: int | None = None
    router_id: str | None = None
    redistribute: list[str] = dataclasses.field(default_factory=list)
    extra_lines: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ZebosConfig:
    """The whole ZebOS running (or saved) config.

    Stanzas the simulator does not model are kept verbatim: `head_stanzas` print before
    `ns route-install bgp` (log settings), `interface_stanzas` after it, `tail_stanzas` after
    `router bgp`.
    """

    route_install_bgp: bool = False
    bgp: BgpRouter | None = None
    head_stanzas: list[list[str]] = dataclasses.field(default_factory=list)
    interface_stanzas: list[list[str]] = dataclasses.field(default_factory=list)
    tail_stanzas: list[list[str]] = dataclasses.field(default_factory=list)

    def copy(self) -> ZebosConfig:
        """An independent deep copy (for saving and for snapshots handed to tests)."""
        return copy.deepcopy(self)

    def render(self) -> str:
        """The text of `show running-config`, lines separated by `\\n`, ending with `end`."""
        stanzas: list[list[str]] = list(self.head_stanzas)
        if self.route_install_bgp:
            stanzas.append(["ns route-install bgp"])
        stanzas.extend(self.interface_stanzas)
        if self.bgp is not None:
            stanzas.append(_render_router(self.bgp))
        stanzas.extend(self.tail_stanzas)
        lines = ["!"]
        for stanza in stanzas:
            lines.extend(stanza)
            lines.append("!")
        lines.append("end")
        return "\n".join(lines)


# Every `show running-config` and `show ip bgp summary` sorts thousands of the same addresses.
@functools.lru_cache(maxsize=16384)
def sort_key(address: str) -> tuple[int, int]:
    """Order addresses numerically, IPv4 before IPv6, as ZebOS lists its peers."""
    parsed = ipaddress.ip_address(address)
    return (parsed.version, int(parsed))


def _render_router(router: BgpRouter) -> list[str]:
    lines = [f"router bgp {router.asn}"]
    if router.router_id is not None:
        lines.append(f" bgp router-id {router.router_id}")
    if router.max_paths_ebgp is not None:
        lines.append(f" max-paths ebgp {router.max_paths_ebgp}")
    if router.max_paths_ibgp is not None:
        lines.append(f" max-paths ibgp {router.max_paths_ibgp}")
    for address in sorted(router.neighbors, key=sort_key):
        neighbor = router.neighbors[address]
        lines.append(f" neighbor {address} remote-as {neighbor.remote_as}")
        if neighbor.description is not None:
            lines.append(f" neighbor {address} description {neighbor.description}")
        if neighbor.password is not None:
            lines.append(f" neighbor {address} password {neighbor.password}")
        if neighbor.ebgp_multihop is not None:
            lines.append(f" neighbor {address} ebgp-multihop {neighbor.ebgp_multihop}")
    lines.extend(f" redistribute {protocol}" for protocol in router.redistribute)
    lines.extend(f" {line}" for line in router.extra_lines)
    return lines


def default_config(interface_address: str) -> ZebosConfig:
    """A fresh ADC's ZebOS config: log settings and the loopback and VLAN interfaces."""
    interface = ipaddress.ip_interface(interface_address)
    return ZebosConfig(
        head_stanzas=[["log syslog", "log record-priority"]],
        interface_stanzas=[
            [
                "interface lo0",
                " ip address 127.0.0.1/8",
                " ipv6 address fe80::1/64",
                " ipv6 address ::1/128",
            ],
            ["interface vlan0", f" ip address {interface.with_prefixlen}"],
        ],
    )
