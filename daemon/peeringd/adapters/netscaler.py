"""The NetScaler (Citrix ADC) side: nscli and vtysh over SSH with netmiko's ``netscaler`` driver.

netmiko's driver treats the ADC as a device without a configuration mode, so
vtysh and its modes are entered explicitly, each command waiting for the
prompt it leads to. Text is parsed and lines are rendered by ``zebos``.

A pass that changes nothing sends two commands (``show running-config`` and
``show ip bgp summary``): the session stays in vtysh between passes, and what
changes only rarely is read only when it may have changed.

- ``show ha node``: at each login and before each configuration session. A
  failover turns the node peeringd is logged in to into the secondary without
  ending the session, and only writes must never reach a secondary; reading one
  is harmless (HA sync gives it the primary's routing configuration).
- ``show ns feature``: at each login, and while the BGP feature is off. Once it
  is on it is read again only if vtysh stops answering ``show ip bgp summary``
  (bgpd stops when someone turns the feature off).
- ``show startup-config``: only when the running config is not the one last
  compared or saved (see ``CliSession._unsaved``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from peeringd.adapters import nscli, zebos
from peeringd.adapters.ssh import PROMPT, CliSession
from peeringd.core import live
from peeringd.core.plan import Change, FeatureChange, SaveChange
from peeringd.errors import CommandRejected, DeviceError

__all__ = ["NetScaler"]


class NetScaler(CliSession):
    """One ADC, driven through its CLI. The verbs and their errors are ``adapters.device.Device``'s."""

    device_type = "netscaler"
    save_command = "save ns config"
    error_prefixes = ("%", "ERROR:")
    dialect = zebos.NETSCALER

    # Where the session is: in vtysh, or in nscli (where every login starts).
    _in_vtysh = False
    # The BGP feature as read in this session; None until read.
    _feature: bool | None = None
    # `show ha node` was read since the last configuration session (or at the login).
    _role_checked = False

    def _opened(self, connection: Any) -> None:
        self._in_vtysh, self._feature = False, None
        self._check_role(connection)

    def observe(self) -> live.AdcSnapshot:
        with self._errors("show ns feature"):
            connection = self._session()
            if not self._feature:
                self._feature = self._read_feature(connection)
            self._enter_vtysh(connection)
            running = self._current_config(connection)
            unsaved = self._unsaved(connection, running)
            sessions: tuple[live.Session, ...] = ()
            if self._feature and running.router_as is not None:
                sessions = self._sessions(connection)
        return live.AdcSnapshot(
            name=self.name,
            bgp_feature=bool(self._feature),
            router_as=running.router_as,
            neighbours=running.neighbours,
            max_paths=running.max_paths,
            route_install=running.route_install,
            unsaved=unsaved,
            sessions=sessions,
        )

    def apply(self, changes: tuple[Change, ...]) -> Iterator[Change]:
        if not changes:
            return
        configuration = tuple(c for c in changes if not isinstance(c, FeatureChange | SaveChange))
        steps = self._render(configuration)
        try:
            with self._errors("show ha node"):
                connection = self._session()
                if not self._role_checked:
                    self._check_role(connection)
                for change in changes:
                    if isinstance(change, FeatureChange):
                        self._leave_vtysh(connection)
                        self._send(connection, "enable ns feature BGP", _nscli(connection))
                        self._feature = True
                        yield change
                if steps:
                    self._enter_vtysh(connection)
                    yield from self._configure(connection, steps, configuration)
            for change in changes:
                if isinstance(change, SaveChange):
                    self.save()
                    yield change
        finally:
            self._role_checked = False

    def _check_role(self, connection: Any) -> None:
        """Refuse the secondary of an HA pair: its routing configuration comes from the primary."""
        self._leave_vtysh(connection)
        if nscli.parse_ha_role(self._send(connection, "show ha node", _nscli(connection))) == "secondary":
            raise DeviceError(
                self.name,
                f"{self.address} is the secondary of an HA pair, which gets its routing "
                "configuration from the primary: point ssh.host at the primary",
            )
        self._role_checked = True

    def _read_feature(self, connection: Any) -> bool:
        self._leave_vtysh(connection)
        return nscli.parse_bgp_feature(self._send(connection, "show ns feature", _nscli(connection)))

    def _sessions(self, connection: Any) -> tuple[live.Session, ...]:
        """The sessions from ``show ip bgp summary``; if vtysh refuses it, the BGP feature is read
        again: off, there are no sessions (and the plan turns it on); on, the refusal stands."""
        try:
            return zebos.parse_bgp_summary(self._send(connection, "show ip bgp summary", PROMPT))
        except CommandRejected:
            self._feature = self._read_feature(connection)
            if self._feature:
                raise
            return ()

    def _persist(self, connection: Any) -> None:
        # nscli's own command: it saves ns.conf and ZebOS.conf together.
        self._leave_vtysh(connection)
        self._send(connection, self.save_command, _nscli(connection))

    def _enter_vtysh(self, connection: Any) -> None:
        if not self._in_vtysh:
            self._send(connection, "vtysh", PROMPT)
            self._in_vtysh = True

    def _leave_vtysh(self, connection: Any) -> None:
        if self._in_vtysh:
            self._send(connection, "exit", _nscli(connection))
            self._in_vtysh = False


def _nscli(connection: Any) -> str:
    """nscli's prompt, as netmiko learnt it at login."""
    return re.escape(str(connection.base_prompt).rstrip(">")) + ">"
