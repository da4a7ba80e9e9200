"""vtysh's configuration modes on the simulated ADC: the commands that edit the ZebOS config.

`apply_config_line` runs one line typed at `ns(config)#`, `ns(config-router)#` or
`ns(config-router-af)#`; `parse_running_config` reads `show running-config` text back into a
`ZebosConfig` with the same commands. Exec mode (`ns#`) and leaving vtysh belong to the
shell. Pure: no I/O here.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Callable
from typing import Literal

from peeringd.lab.nssim import grammar, zebos
from peeringd.lab.nssim.profile import DeviceTexts

__all__ = [
    "CommandRejected",
    "ConfigMode",
    "ConfigRules",
    "apply_config_line",
    "normalize_address",
    "parse_running_config",
    "rejection",
]

ConfigMode = Literal["config", "config-router", "config-router-af"]
# Where a config line leaves the session: a config mode, or exec mode (`ns#`).
NextMode = Literal["vtysh", "config", "config-router", "config-router-af"]

MAX_ASN = 4294967295


class CommandRejected(Exception):
    """The device refused a line: `text` is its message, `word_index` where to put `^`."""

    def __init__(self, text: str, word_index: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.word_index = word_index


@dataclasses.dataclass(frozen=True)
class ConfigRules:
    """What config commands depend on besides the config itself."""

    texts: DeviceTexts
    max_paths_default: int | None
    bgp_allowed: bool


# A batch of thousands of neighbour lines names each address twice or more (the command's
# match, then the address as stored): parse each once. Addresses are immutable.
@functools.lru_cache(maxsize=16384)
def _is_address(word: str) -> bool:
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return False
    return True


def _in_range(low: int, high: int) -> Callable[[str], bool]:
    def check(word: str) -> bool:
        return word.isdigit() and low <= int(word) <= high

    return check


VALIDATORS: dict[str, grammar.Validator] = {
    "<ip>": _is_address,
    "<ipv4>": lambda word: _is_address(word) and "." in word,
    "<asn>": _in_range(1, MAX_ASN),
    "<paths>": _in_range(1, 64),
    "<hops>": _in_range(1, 255),
    "<word>": lambda word: True,
}

_NAVIGATION = [
    grammar.Command("exit", "exit"),
    grammar.Command("exit", "quit"),
    grammar.Command("end", "end"),
]
_REDISTRIBUTE = [
    grammar.Command(f"{action}-{protocol}", f"{syntax} {protocol}")
    for action, syntax in (("redistribute", "redistribute"), ("no-redistribute", "no redistribute"))
    for protocol in ("kernel", "connected", "static")
]

COMMANDS: dict[ConfigMode, list[grammar.Command]] = {
    "config": [
        grammar.Command("router-bgp", "router bgp <asn>"),
        grammar.Command("no-router-bgp", "no router bgp"),
        grammar.Command("no-router-bgp", "no router bgp <asn>"),
        grammar.Command("route-install", "ns route-install bgp"),
        grammar.Command("no-route-install", "no ns route-install bgp"),
        *_NAVIGATION,
    ],
    "config-router": [
        grammar.Command("remote-as", "neighbor <ip> remote-as <asn>"),
        grammar.Command("description", "neighbor <ip> description <text...>"),
        grammar.Command("password", "neighbor <ip> password <word>"),
        grammar.Command("multihop", "neighbor <ip> ebgp-multihop"),
        grammar.Command("multihop", "neighbor <ip> ebgp-multihop <hops>"),
        grammar.Command("activate", "neighbor <ip> activate"),
        grammar.Command("no-neighbor", "no neighbor <ip>"),
        grammar.Command("no-neighbor", "no neighbor <ip> remote-as <asn>"),
        grammar.Command("no-description", "no neighbor <ip> description"),
        grammar.Command("no-description", "no neighbor <ip> description <text...>"),
        grammar.Command("no-password", "no neighbor <ip> password"),
        grammar.Command("no-password", "no neighbor <ip> password <word>"),
        grammar.Command("no-multihop", "no neighbor <ip> ebgp-multihop"),
        grammar.Command("no-multihop", "no neighbor <ip> ebgp-multihop <hops>"),
        grammar.Command("max-paths-ebgp", "max-paths ebgp <paths>"),
        grammar.Command("max-paths-ibgp", "max-paths ibgp <paths>"),
        grammar.Command("no-max-paths-ebgp", "no max-paths ebgp"),
        grammar.Command("no-max-paths-ebgp", "no max-paths ebgp <paths>"),
        grammar.Command("no-max-paths-ibgp", "no max-paths ibgp"),
        grammar.Command("no-max-paths-ibgp", "no max-paths ibgp <paths>"),
        grammar.Command("router-id", "bgp router-id <ipv4>"),
        grammar.Command("no-router-id", "no bgp router-id"),
        grammar.Command("no-router-id", "no bgp router-id <ipv4>"),
        grammar.Command("address-family", "address-family ipv4"),
        grammar.Command("address-family", "address-family ipv4 unicast"),
        *_REDISTRIBUTE,
        *_NAVIGATION,
    ],
    # ZebOS prints IPv4 unicast settings in the router stanza, so the simulator models
    # this mode as a view of the router that accepts fewer commands.
    "config-router-af": [
        grammar.Command("activate", "neighbor <ip> activate"),
        grammar.Command("no-activate", "no neighbor <ip> activate"),
        *_REDISTRIBUTE,
        grammar.Command("exit", "exit-address-family"),
        *_NAVIGATION,
    ],
}

_PARENT: dict[ConfigMode, NextMode] = {
    "config": "vtysh",
    "config-router": "config",
    "config-router-af": "config-router",
}


@functools.lru_cache(maxsize=16384)
def normalize_address(address: str) -> str:
    """An address as ZebOS prints it (IPv6 compressed)."""
    return str(ipaddress.ip_address(address))


def rejection(result: grammar.NoMatch, texts: DeviceTexts) -> CommandRejected:
    """The `%` error vtysh prints for a line that matched no command."""
    if result.reason == "incomplete":
        return CommandRejected(texts.incomplete_command)
    if result.reason == "ambiguous":
        return CommandRejected(texts.ambiguous_input, result.word_index)
    return CommandRejected(texts.invalid_input, result.word_index)


def apply_config_line(config: zebos.ZebosConfig, mode: ConfigMode, line: str, rules: ConfigRules) -> NextMode:
    """Run one config line against `config` (edited in place); return the mode it leaves.

    Raises CommandRejected with the device's `%` message when the line is refused.
    """
    words = grammar.split_words(line)
    result = grammar.match(words, COMMANDS[mode], VALIDATORS, case_sensitive=True)
    if isinstance(result, grammar.NoMatch):
        raise rejection(result, rules.texts)
    if result.action == "exit":
        return _PARENT[mode]
    if result.action == "end":
        return "vtysh"
    if mode == "config":
        return _apply_global(config, result, rules)
    router = config.bgp
    if router is None:
        # Another session removed the router while this one was inside it.
        raise CommandRejected(rules.texts.bgp_instance_missing)
    if result.action == "address-family":
        return "config-router-af"
    _apply_router(router, result, rules)
    return mode


def _apply_global(config: zebos.ZebosConfig, command: grammar.Match, rules: ConfigRules) -> NextMode:
    texts = rules.texts
    if command.action == "route-install":
        config.route_install_bgp = True
    elif command.action == "no-route-install":
        config.route_install_bgp = False
    elif command.action == "router-bgp":
        if not rules.bgp_allowed:
            raise CommandRejected(texts.bgp_feature_disabled)
        asn = int(command.args[0])
        if config.bgp is None:
            config.bgp = zebos.BgpRouter(
                asn=asn,
                max_paths_ebgp=rules.max_paths_default,
                max_paths_ibgp=rules.max_paths_default,
            )
        elif config.bgp.asn != asn:
            raise CommandRejected(texts.bgp_already_running.format(asn=config.bgp.asn))
        return "config-router"
    elif command.action == "no-router-bgp":
        if config.bgp is None or (command.args and int(command.args[0]) != config.bgp.asn):
            raise CommandRejected(texts.bgp_instance_missing)
        config.bgp = None
    return "config"


def _apply_router(router: zebos.BgpRouter, command: grammar.Match, rules: ConfigRules) -> None:
    action, args = command.action, command.args
    if action.startswith(("redistribute-", "no-redistribute-")):
        protocol = action.rsplit("-", 1)[1]
        if action.startswith("redistribute-") and protocol not in router.redistribute:
            router.redistribute.append(protocol)
        if action.startswith("no-") and protocol in router.redistribute:
            router.redistribute.remove(protocol)
        return
    if action.startswith(("max-paths", "no-max-paths")):
        paths = int(args[0]) if action.startswith("max-paths") else rules.max_paths_default
        if action.endswith("ebgp"):
            router.max_paths_ebgp = paths
        else:
            router.max_paths_ibgp = paths
        return
    if action == "router-id":
        router.router_id = normalize_address(args[0])
        return
    if action == "no-router-id":
        router.router_id = None
        return
    _apply_neighbor(router, action, normalize_address(args[0]), args[1:], rules.texts)


def _apply_neighbor(
    router: zebos.BgpRouter,
    action: str,
    address: str,
    args: tuple[str, ...],
    texts: DeviceTexts,
) -> None:
    if action == "remote-as":
        existing = router.neighbors.get(address)
        if existing is None:
            router.neighbors[address] = zebos.Neighbor(address=address, remote_as=int(args[0]))
        else:
            existing.remote_as = int(args[0])
        return
    if action == "no-neighbor":
        # ZebOS (like Quagga) accepts removing a neighbour that does not exist.
        router.neighbors.pop(address, None)
        return
    neighbor = router.neighbors.get(address)
    if neighbor is None:
        raise CommandRejected(texts.neighbor_missing)
    if action == "description":
        neighbor.description = args[0]
    elif action == "no-description":
        neighbor.description = None
    elif action == "password":
        neighbor.password = args[0]
    elif action == "no-password":
        neighbor.password = None
    elif action == "multihop":
        neighbor.ebgp_multihop = int(args[0]) if args else 255
    elif action == "no-multihop":
        neighbor.ebgp_multihop = None
    # `activate` and `no-activate`: IPv4 unicast is always active in this model.


def parse_running_config(text: str, max_paths_default: int | None) -> zebos.ZebosConfig:
    """Read `show running-config` text (or ZebOS.conf) into a ZebosConfig.

    Lines the simulator does not model are kept: unknown top-level stanzas verbatim, unknown
    lines inside `router bgp` as its extra lines.
    """
    rules = ConfigRules(DeviceTexts(), max_paths_default, bgp_allowed=True)
    config = zebos.ZebosConfig()
    mode: NextMode = "config"
    opaque: list[str] | None = None
    modelled_seen = False

    def close_opaque() -> None:
        nonlocal opaque, modelled_seen
        if opaque is None:
            return
        if opaque[0].startswith("interface "):
            config.interface_stanzas.append(opaque)
            modelled_seen = True
        elif modelled_seen:
            config.tail_stanzas.append(opaque)
        else:
            config.head_stanzas.append(opaque)
        opaque = None

    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        if stripped == "!":
            close_opaque()
            mode = "config"
            continue
        if stripped == "end":
            break
        indented = line != line.lstrip()
        if not indented:
            mode = "config"
        if opaque is not None and indented:
            opaque.append(line)
            continue
        if mode == "vtysh":
            mode = "config"
        try:
            mode = apply_config_line(config, mode, stripped, rules)
        except CommandRejected:
            if mode == "config":
                if opaque is None:
                    opaque = []
                opaque.append(line)
            elif config.bgp is not None:
                config.bgp.extra_lines.append(line[1:])
            continue
        close_opaque()
        modelled_seen = modelled_seen or config.route_install_bgp or config.bgp is not None
    close_opaque()
    return config
