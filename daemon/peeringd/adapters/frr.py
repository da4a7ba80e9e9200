"""Routers running FRRouting, reached over SSH into vtysh.

The SSH login must land in vtysh (the user's login shell, or an sshd
ForceCommand); vtysh speaks Cisco's CLI closely enough for netmiko's
``cisco_ios`` driver. FRR has no BGP feature switch and no route-install: the
dialect differences are in ``zebos.FRR``; sessions come from FRR's JSON summary.
"""

from __future__ import annotations

from collections.abc import Iterator

from peeringd.adapters import zebos
from peeringd.adapters.ssh import CliSession
from peeringd.core import live
from peeringd.core.plan import Change
from peeringd.errors import DeviceError, VerificationFailed

__all__ = ["Frr"]

# `router#`, `router(config)#`, `router(config-router)#`, `router(config-router-af)#`.
PROMPT = r"[\w.-]+(?:\([\w-]+\))?#"


class Frr(CliSession):
    """One FRR router. The verbs and their errors are ``adapters.device.Device``'s."""

    device_type = "cisco_ios"
    dialect = zebos.FRR

    _router_as: int | None = None

    def observe(self) -> live.AdcSnapshot:
        with self._errors("show running-config"):
            connection = self._session()
            running = zebos.parse_running_config(self._send(connection, "show running-config", PROMPT))
            summary = "{}"
            if running.router_as is not None:
                summary = self._send(connection, "show ip bgp summary json", PROMPT)
            sessions = zebos.parse_bgp_summary_json(summary)
        self._router_as = running.router_as
        return live.AdcSnapshot(
            name=self.name,
            bgp_feature=True,
            router_as=running.router_as,
            neighbours=running.neighbours,
            max_paths=running.max_paths,
            sessions=sessions,
        )

    def apply(self, changes: tuple[Change, ...]) -> Iterator[Change]:
        try:
            steps = zebos.render(changes, self.dialect, self._router_as)
        except zebos.RenderError as error:
            raise DeviceError(self.name, f"nothing sent: {error}") from None
        if not steps:
            return
        with self._errors("configure terminal"):
            connection = self._session()
            self._send(connection, "configure terminal", PROMPT)
            for step in steps:
                for line in step.lines:
                    self._send(connection, line.strip(), PROMPT)
                if step.change is not None:
                    yield step.change
            self._send(connection, "end", PROMPT)
            running = zebos.parse_running_config(self._send(connection, "show running-config", PROMPT))
        self._router_as = running.router_as
        if unmet := zebos.unmet(changes, running):
            raise VerificationFailed(f"{self.name}: the running config does not show {len(unmet)} changes")

    def save(self) -> None:
        with self._errors("write memory"):
            self._send(self._session(), "write memory", PROMPT)
