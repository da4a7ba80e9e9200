"""One simulated ADC: its running and saved config, BGP sessions, and its `show` outputs.

Shared by every SSH session to that ADC; the server serialises access. Pure: no I/O; time
comes from an injected clock.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable

from peeringd.lab.nssim import vtysh, zebos
from peeringd.lab.nssim.profile import FEATURES, DeviceProfile

__all__ = ["BGP_STATES", "BgpSession", "Device", "DeviceConfig"]

BGP_STATES = ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established")
# The other node of an HA pair, as `show ha node` lists it.
_HA_PEER_ADDRESS = "192.0.2.209"


@dataclasses.dataclass
class DeviceConfig:
    """The ADC's config: ns features (acronym -> ON) and the ZebOS config."""

    features: dict[str, bool]
    zebos: zebos.ZebosConfig

    def copy(self) -> DeviceConfig:
        """An independent deep copy."""
        return DeviceConfig(dict(self.features), self.zebos.copy())


@dataclasses.dataclass(frozen=True)
class BgpSession:
    """A neighbour's session as `show ip bgp summary` reports it.

    A neighbour nobody set a session for is `Established`, so that a configured lab looks
    healthy.
    """

    state: str = "Established"
    prefixes: int = 0

    def __post_init__(self) -> None:
        if self.state not in BGP_STATES:
            raise ValueError(f"unknown BGP state {self.state!r}; expected one of {BGP_STATES}")


def _split_duration(seconds: float) -> tuple[int, int, int, int]:
    """Whole days, hours, minutes and seconds."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return days, hours, minutes, secs


def _format_duration(seconds: float) -> str:
    days, hours, minutes, secs = _split_duration(seconds)
    if days:
        return f"{days}d{hours:02d}h{minutes:02d}m"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


class Device:
    """The state of one simulated ADC.

    `running` is what the CLI edits; `saved` is what survives `reboot()`. Both are live
    objects: callers outside the server's lock must use `snapshot()`-style copies.
    """

    def __init__(self, profile: DeviceProfile, clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self._clock = clock
        self._booted_at = clock()
        features = {acronym: enabled for _, acronym, enabled in FEATURES}
        features.update({self.feature_acronym(name): enabled for name, enabled in profile.features.items()})
        if profile.zebos_config is None:
            config = zebos.default_config(profile.interface_address)
        else:
            config = vtysh.parse_running_config(profile.zebos_config, profile.max_paths_default)
        self.running = DeviceConfig(features, config)
        self.saved = self.running.copy()
        self.sessions: dict[str, BgpSession] = {}
        # (address, remote AS) -> when that peering was configured, for Up/Down.
        self._peered_since: dict[tuple[str, int], float] = {}
        # The first config change not yet reflected in _peered_since.
        self._changed_at: float | None = None
        # Told of every save, with a copy of what was saved (fault tests judge each one).
        self.on_save: Callable[[DeviceConfig], None] | None = None
        self.track_neighbors()

    @staticmethod
    def feature_acronym(name: str) -> str:
        """The canonical acronym for `name` in any case; KeyError when there is none."""
        for _, acronym, _ in FEATURES:
            if acronym.lower() == name.lower():
                return acronym
        raise KeyError(name)

    def config_rules(self) -> vtysh.ConfigRules:
        """The rules vtysh config commands run under right now."""
        return vtysh.ConfigRules(
            texts=self.profile.texts,
            max_paths_default=self.profile.max_paths_default,
            bgp_allowed=self.bgp_running(),
        )

    def bgp_running(self) -> bool:
        """Whether bgpd runs (vtysh accepts BGP commands)."""
        return self.running.features["BGP"] or not self.profile.bgp_requires_feature

    def save_all(self) -> None:
        """`save ns config`: the ns config and ZebOS.conf."""
        self.saved = self.running.copy()
        self._saved_now()

    def save_zebos(self) -> None:
        """`write` in vtysh: ZebOS.conf only."""
        self.saved.zebos = self.running.zebos.copy()
        self._saved_now()

    def _saved_now(self) -> None:
        if self.on_save is not None:
            self.on_save(self.saved.copy())

    def reboot(self) -> None:
        """Lose every unsaved change."""
        self.running = self.saved.copy()
        self._booted_at = self._clock()
        self.track_neighbors()

    def track_neighbors(self) -> None:
        """Note that peerings may have appeared or changed AS (call after every config change).

        Cheap, because a batch of thousands of lines calls it once a line: the peerings are
        compared when Up/Down is next shown, and those new since then date from the first
        change noted (seconds early at worst, for a simulator's Up/Down).
        """
        if self._changed_at is None:
            self._changed_at = self._clock()

    def _peerings(self) -> dict[tuple[str, int], float]:
        """(address, remote AS) -> since when, for every configured neighbour."""
        if self._changed_at is not None:
            router = self.running.zebos.bgp
            neighbors = router.neighbors if router is not None else {}
            changed_at, self._changed_at = self._changed_at, None
            self._peered_since = {
                (address, n.remote_as): self._peered_since.get((address, n.remote_as), changed_at)
                for address, n in neighbors.items()
            }
        return self._peered_since

    def session(self, address: str) -> BgpSession:
        """The session state set for `address`, or an established one."""
        return self.sessions.get(address, BgpSession())

    def show_features(self) -> str:
        """The `show ns feature` table."""
        lines = [
            f"{'':8}{'Feature':31}{'Acronym':21}Status",
            f"{'':8}{'-------':31}{'-------':21}------",
        ]
        for number, (name, acronym, _) in enumerate(FEATURES, start=1):
            status = "ON" if self.running.features[acronym] else "OFF"
            lines.append(f"{f' {number})':8}{name:31}{acronym:21}{status}")
        return "\n".join(lines)

    def show_route(self) -> str:
        """The nscli `show route` table: default route, loopback, the VLAN's subnet."""
        interface = ipaddress.ip_interface(self.profile.interface_address)
        gateway = next(interface.network.hosts())
        anywhere = str(ipaddress.IPv4Address(0))
        rows = [
            (anywhere, anywhere, str(gateway), "STATIC"),
            ("127.0.0.0", "255.0.0.0", "127.0.0.1", "PERMANENT"),
            (
                str(interface.network.network_address),
                str(interface.network.netmask),
                str(interface.ip),
                "DIRECT",
            ),
        ]
        header = ("Network", "Netmask", "Gateway/OwnedIP", "State", "Traffic Domain", "Type")
        lines = [
            f"{'':8}{header[0]:17}{header[1]:17}{header[2]:17}{header[3]:8}{header[4]:16}Type",
            f"{'':8}{'-------':17}{'-------':17}{'---------------':17}{'-----':8}{'--------------':16}----",
        ]
        for number, (network, netmask, gateway_ip, kind) in enumerate(rows, start=1):
            lines.append(f"{f'{number})':8}{network:17}{netmask:17}{gateway_ip:17}{'UP':8}{'0':16}{kind}")
        return "\n".join(lines)

    def show_ha_node(self) -> str:
        """`show ha node`: this node, and its peer when in an HA pair."""
        own_ip = str(ipaddress.ip_interface(self.profile.interface_address).ip)
        days, hours, minutes, seconds = _split_duration(self._clock() - self._booted_at)
        role = self.profile.ha_role
        own_state = {"standalone": "Primary", "primary": "Primary", "secondary": "Secondary"}
        lines = [
            *_ha_node_lines(
                0,
                f"{own_ip} (ns)",
                "STANDALONE" if role == "standalone" else "UP",
                own_state[role],
                sync_state="ENABLED",
            ),
            "\tHello Interval: 200 msecs",
            "\tDead Interval: 3 secs",
            f"\tNode in this Master State for: {days}:{hours}:{minutes}:{seconds} (days:hrs:min:sec)",
        ]
        if role != "standalone":
            peer_state = "Secondary" if role == "primary" else "Primary"
            lines += _ha_node_lines(1, _HA_PEER_ADDRESS, "UP", peer_state, sync_state="SUCCESS")
        return "\n".join(lines)

    def show_bgp_summary(self) -> str:
        """vtysh `show ip bgp summary` in ZebOS layout."""
        router = self.running.zebos.bgp
        if router is None:
            return self.profile.texts.no_bgp_process
        router_id = router.router_id or str(ipaddress.ip_interface(self.profile.interface_address).ip)
        lines = [
            f"BGP router identifier {router_id}, local AS number {router.asn}",
            "BGP table version is 1",
            "",
            "Neighbor                 V   AS   MsgRcv    MsgSen TblVer   InQ   OutQ"
            "    Up/Down   State/PfxRcd",
        ]
        established = 0
        now = self._clock()
        peerings = self._peerings()
        for address in sorted(router.neighbors, key=zebos.sort_key):
            neighbor = router.neighbors[address]
            session = self.session(address)
            since = peerings.get((address, neighbor.remote_as), now)
            if session.state == "Established":
                established += 1
                minutes_up = int(now - since) // 60
                received, sent = 3 + minutes_up, 2 + minutes_up
                up_down, last = _format_duration(now - since), str(session.prefixes)
            else:
                received, sent, up_down, last = 0, 0, "never", session.state
            lines.append(
                f"{address:24} 4 {neighbor.remote_as:>5} {received:>4} {sent:>10} {1:>7}"
                f" {0:>6} {0:>6} {up_down:>9} {last:>15}"
            )
        lines += [
            "",
            f"Total number of neighbors {len(router.neighbors)}",
            "",
            f"Total number of Established sessions {established}",
        ]
        return "\n".join(lines)


def _ha_node_lines(
    node_id: int, address: str, node_state: str, master_state: str, *, sync_state: str
) -> list[str]:
    """One node's block of `show ha node`, up to its SSL card status."""
    return [
        f"{node_id + 1})\tNode ID:      {node_id}",
        f"\tIP:   {address}",
        f"\tNode State: {node_state}",
        f"\tMaster State: {master_state}",
        "\tFail-Safe Mode: OFF",
        "\tINC State: DISABLED",
        f"\tSync State: {sync_state}",
        "\tPropagation: ENABLED",
        "\tEnabled Interfaces : 0/1",
        "\tDisabled Interfaces : None",
        "\tHA MON ON Interfaces : None",
        "\tHA HEARTBEAT OFF Interfaces : None",
        "\tInterfaces on which heartbeats are not seen : None",
        "\tInterfaces causing Partial Failure: None",
        "\tSSL Card Status: NOT PRESENT",
    ]
