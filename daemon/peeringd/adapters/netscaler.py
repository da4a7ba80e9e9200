"""The NetScaler (Citrix ADC) side: nscli and vtysh over SSH with netmiko's ``netscaler`` driver.

netmiko's driver treats the ADC as a device without a configuration mode, so
vtysh and its modes are entered explicitly, each command waiting for the
prompt it leads to. Text is parsed and lines are rendered by ``zebos``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from peeringd.adapters import nscli, zebos
from peeringd.adapters.ssh import PROMPT, CliSession
from peeringd.core import live
from peeringd.core.plan import Change, FeatureChange, SaveChange
from peeringd.errors import DeviceError

__all__ = ["NetScaler"]


class NetScaler(CliSession):
    """One ADC, driven through its CLI. The verbs and their errors are ``adapters.device.Device``'s."""

    device_type = "netscaler"
    save_command = "save ns config"
    error_prefixes = ("%", "ERROR:")
    dialect = zebos.NETSCALER

    def observe(self) -> live.AdcSnapshot:
        with self._errors("show ns feature"):
            connection = self._session()
            if nscli.parse_ha_role(self._send(connection, "show ha node", _nscli(connection))) == "secondary":
                raise DeviceError(
                    self.name,
                    f"{self.address} is the secondary of an HA pair, which gets its routing "
                    "configuration from the primary: point ssh.host at the primary",
                )
            feature = nscli.parse_bgp_feature(self._send(connection, "show ns feature", _nscli(connection)))
            self._send(connection, "vtysh", PROMPT)
            running = self._running_config(connection)
            unsaved = self._unsaved(connection, running)
            sessions: tuple[live.Session, ...] = ()
            if feature and running.router_as is not None:
                sessions = zebos.parse_bgp_summary(self._send(connection, "show ip bgp summary", PROMPT))
            self._leave_vtysh(connection)
        return live.AdcSnapshot(
            name=self.name,
            bgp_feature=feature,
            router_as=running.router_as,
            neighbours=running.neighbours,
            max_paths=running.max_paths,
            route_install=running.route_install,
            unsaved=unsaved,
            sessions=sessions,
        )

    def apply(self, changes: tuple[Change, ...]) -> Iterator[Change]:
        configuration = tuple(c for c in changes if not isinstance(c, FeatureChange | SaveChange))
        steps = self._render(configuration)
        with self._errors("enable ns feature BGP"):
            connection = self._session()
            for change in changes:
                if isinstance(change, FeatureChange):
                    self._send(connection, "enable ns feature BGP", _nscli(connection))
                    yield change
            if steps:
                self._send(connection, "vtysh", PROMPT)
                yield from self._configure(connection, steps, configuration)
                self._leave_vtysh(connection)
        for change in changes:
            if isinstance(change, SaveChange):
                self.save()
                yield change

    def _persist(self, connection: Any) -> None:
        # nscli's own command: it saves ns.conf and ZebOS.conf together.
        self._send(connection, self.save_command, _nscli(connection))

    def _leave_vtysh(self, connection: Any) -> None:
        self._send(connection, "exit", _nscli(connection))


def _nscli(connection: Any) -> str:
    """nscli's prompt, as netmiko learnt it at login. Waiting for it saves netmiko from
    sending an Enter to find the prompt before each command."""
    return re.escape(str(connection.base_prompt).rstrip(">")) + ">"
