"""NetScaler (Citrix ADC) simulator: an SSH server that plays the ADC's nscli and vtysh.

The embedded lab serves one per ADC and the driver tests drive it with netmiko's real
`netscaler` driver. `server` holds the SSH transport; `shell`, `vtysh`, `device`, `zebos`,
`grammar` and `faults` are pure (no I/O) and testable without SSH. Nothing here may talk
to a real ADC or listen beyond the address its caller chose.
"""

from peeringd.lab.nssim.device import BgpSession, DeviceConfig
from peeringd.lab.nssim.profile import DEFAULT_BANNER, DeviceProfile, DeviceTexts
from peeringd.lab.nssim.server import (
    JournalEntry,
    NetScalerSimulator,
    known_hosts_entry,
    write_known_hosts,
)
from peeringd.lab.nssim.zebos import BgpRouter, Neighbor, ZebosConfig

__all__ = [
    "DEFAULT_BANNER",
    "BgpRouter",
    "BgpSession",
    "DeviceConfig",
    "DeviceProfile",
    "DeviceTexts",
    "JournalEntry",
    "Neighbor",
    "NetScalerSimulator",
    "ZebosConfig",
    "known_hosts_entry",
    "write_known_hosts",
]
