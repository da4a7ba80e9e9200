"""Routers running FRRouting, reached over SSH into vtysh.

The SSH login must land in vtysh (the user's login shell, or an sshd
ForceCommand); vtysh speaks Cisco's CLI closely enough for netmiko's
``cisco_ios`` driver. FRR has no BGP feature switch and no route-install: the
dialect differences are in ``zebos.FRR``; sessions come from FRR's JSON summary.

A pass that changes nothing sends two commands, ``show running-config`` and
``show ip bgp summary json``: ``show startup-config`` is read only when the
running config is not the one last compared or saved (see ``CliSession._unsaved``).
"""

from __future__ import annotations

from collections.abc import Iterator

from peeringd.adapters import zebos
from peeringd.adapters.ssh import PROMPT, CliSession
from peeringd.core import live
from peeringd.core.plan import Change, SaveChange

__all__ = ["Frr"]


class Frr(CliSession):
    """One FRR router. The verbs and their errors are ``adapters.device.Device``'s."""

    device_type = "cisco_ios"
    save_command = "write memory"
    dialect = zebos.FRR

    def observe(self) -> live.AdcSnapshot:
        with self._errors("show running-config"):
            connection = self._session()
            running = self._current_config(connection)
            unsaved = self._unsaved(connection, running)
            sessions: tuple[live.Session, ...] = ()
            if running.router_as is not None:
                sessions = zebos.parse_bgp_summary_json(
                    self._send(connection, "show ip bgp summary json", PROMPT)
                )
        return live.AdcSnapshot(
            name=self.name,
            bgp_feature=True,
            router_as=running.router_as,
            neighbours=running.neighbours,
            max_paths=running.max_paths,
            unsaved=unsaved,
            sessions=sessions,
        )

    def apply(self, changes: tuple[Change, ...]) -> Iterator[Change]:
        configuration = tuple(change for change in changes if not isinstance(change, SaveChange))
        steps = self._render(configuration)
        if steps:
            with self._errors("configure terminal"):
                yield from self._configure(self._session(), steps, configuration)
        for change in changes:
            if isinstance(change, SaveChange):
                self.save()
                yield change
