"""The verbs every device driver offers, napalm-style, whatever its platform.

A driver keeps one session open across passes and reopens it when it drops.
Each verb raises only ``peeringd.errors.DeviceError`` subclasses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from peeringd.core import live
from peeringd.core.plan import Change

__all__ = ["Device"]


class Device(Protocol):
    """One ADC or router, reached over SSH."""

    name: str

    def observe(self) -> live.AdcSnapshot:
        """The device's BGP configuration and sessions, as running now."""
        ...

    def apply(self, changes: tuple[Change, ...]) -> Iterator[Change]:
        """Send the lines for ``changes`` in one configuration session, in batches, yielding
        each change once the device accepted its lines; then re-read the running config and
        raise ``VerificationFailed`` unless every change took; then save if a ``SaveChange``
        asks. A rejected line raises ``CommandRejected`` naming it, once the changes its
        batch completed were yielded; nothing after its batch is sent."""
        ...

    def save(self) -> None:
        """Persist the running configuration so it survives a reboot."""
        ...

    def close(self) -> None:
        """End the session; a later verb opens a new one."""
        ...
