"""What a simulated ADC looks like: prompt, banner, addresses, defaults and device texts.

The texts no NetScaler source confirms (see the reference's "unverified" marks) are fields of
`DeviceTexts`, so tests can try a driver against other wordings. Pure data: no I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

__all__ = ["DEFAULT_BANNER", "FEATURES", "DeviceProfile", "DeviceTexts", "HaRole"]


def _boxed(*lines: str) -> str:
    width = 79
    rows = ["#" * width, "#" + " " * (width - 2) + "#"]
    rows.extend(f"#  {line}".ljust(width - 1) + "#" for line in lines)
    rows.extend(["#" + " " * (width - 2) + "#", "#" * width])
    return "\n".join(rows)


# Full of '#' on purpose: a client that waits for `[>#]` must not take it for the prompt.
DEFAULT_BANNER = _boxed(
    "WARNING: Access to this system is for authorized users only.",
    "Disconnect IMMEDIATELY if you are not an authorized user!",
)

# `show ns feature` rows: name, acronym, whether a fresh ADC has it ON.
FEATURES: tuple[tuple[str, str, bool], ...] = (
    ("Web Logging", "WL", False),
    ("Surge Protection", "SP", False),
    ("Load Balancing", "LB", True),
    ("Content Switching", "CS", False),
    ("Cache Redirection", "CR", False),
    ("Sure Connect", "SC", False),
    ("Compression Control", "CMP", False),
    ("Priority Queuing", "PQ", False),
    ("SSL Offloading", "SSL", True),
    ("Global Server Load Balancing", "GSLB", False),
    ("Http DoS Protection", "HDOSP", False),
    ("Content Filtering", "CF", False),
    ("Integrated Caching", "IC", False),
    ("SSL VPN", "SSLVPN", False),
    ("AAA", "AAA", False),
    ("OSPF Routing", "OSPF", False),
    ("RIP Routing", "RIP", False),
    ("BGP Routing", "BGP", False),
    ("Rewrite", "REWRITE", True),
    ("IPv6 protocol translation", "IPv6PT", False),
    ("Application Firewall", "AppFw", False),
    ("Responder", "RESPONDER", True),
    ("HTML Injection", "HTMLInjection", False),
    ("NetScaler Push", "push", False),
    ("AppFlow", "AppFlow", False),
    ("CloudBridge", "CloudBridge", False),
    ("ISIS Routing", "ISIS", False),
    ("CallHome", "CH", True),
    ("AppQoE", "AppQoE", False),
    ("Content Accelerator", "ContentAccel", False),
    ("RISE", "RISE", False),
    ("Front End Optimization", "FEO", False),
    ("Large Scale NAT", "LSN", False),
    ("RDP Proxy", "RDPProxy", False),
    ("Reputation", "Rep", False),
    ("URL Filtering", "URLFiltering", False),
    ("Video Optimization", "VideoOptimization", False),
    ("Forward Proxy", "ForwardProxy", False),
    ("SSL Interception", "SSLInterception", False),
    ("Adaptive TCP", "AdaptiveTCP", False),
    ("Connection Quality Analytics", "CQA", False),
    ("Content Inspection", "CI", False),
    ("Bot Management", "Bot", False),
    ("API Gateway", "APIGateway", False),
)

HaRole = Literal["standalone", "primary", "secondary"]


@dataclasses.dataclass(frozen=True)
class DeviceTexts:
    """Device messages. Only `vtysh_config_banner` and the ` Done`/`ERROR:` framing are
    documented; every other default is a plausible guess (nscli) or Quagga's wording (vtysh).
    """

    unknown_command: str = "ERROR: No such command"
    ambiguous_command: str = "ERROR: Ambiguous command"
    missing_argument: str = "ERROR: Required argument missing"
    invalid_argument: str = "ERROR: Invalid argument value"
    invalid_feature: str = "ERROR: No such feature"
    invalid_input: str = "% Invalid input detected at '^' marker."
    incomplete_command: str = "% Incomplete command."
    ambiguous_input: str = "% Ambiguous command."
    # Formatted with the running AS: `.format(asn=500)`.
    bgp_already_running: str = "% BGP is already running; AS is {asn}"
    bgp_instance_missing: str = "% Can't find BGP instance"
    bgp_feature_disabled: str = "% BGP feature is not enabled"
    no_bgp_process: str = "% No BGP process is configured"
    neighbor_missing: str = "% Specify remote-as or peer-group commands first"
    vtysh_config_banner: str = "Enter configuration commands, one per line. End with CNTL/Z."
    vtysh_write: str = "Building configuration...\n[OK]"


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """How one simulated ADC presents itself and starts.

    `prompt` is the nscli prompt exactly as printed (`">"`, `"host>"`,
    `"host - Primary - nsroot> "`). `zebos_config` seeds the running and saved ZebOS
    config from `show running-config` text; None gives a fresh ADC's config.
    `bgp_requires_feature`: vtysh refuses `router bgp` while the BGP feature is OFF
    (unverified on NetScaler, where bgpd only runs with the feature on).
    """

    prompt: str = ">"
    banner: str | None = DEFAULT_BANNER
    interface_address: str = "192.0.2.208/24"
    features: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    zebos_config: str | None = None
    max_paths_default: int | None = 8
    bgp_requires_feature: bool = True
    ha_role: HaRole = "standalone"
    version: str = "NetScaler NS14.1: Build 25.53.nc, Date: Jun  6 2024, 11:52:45   (64-bit)"
    texts: DeviceTexts = DeviceTexts()
