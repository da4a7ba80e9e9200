"""The systemd notify protocol: READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1.

Written here rather than taken from a library: the protocol is one datagram on
$NOTIFY_SOCKET, the pure-Python libraries for it are unmaintained, and
systemd-python needs libsystemd headers to build. Without $NOTIFY_SOCKET
(not under systemd) every call does nothing. Like sd_notify(3), a send that fails
never stops the daemon: a $NOTIFY_SOCKET it may not write to (inherited from a
parent, or a container runtime's) is reported when sends start failing, and
otherwise ignored.
"""

from __future__ import annotations

import os
import socket
import time

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger("peeringd")


class Notifier:
    """Sends state lines to the service manager, if there is one."""

    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._name = address
        # A leading "@" names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._failing = False

    @staticmethod
    def watchdog_interval() -> float | None:
        """How often to send WATCHDOG=1 (half the manager's timeout), or None when not asked."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and int(pid) != os.getpid()):
            return None
        return int(usec) / 2_000_000

    def reloading(self) -> None:
        """Say a re-read began: RELOADING=1 with the CLOCK_MONOTONIC time in microseconds.

        Type=notify-reload (systemd 253+) holds `systemctl reload` open from this until READY=1,
        and ignores a RELOADING=1 without a time taken after it sent the signal.
        """
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(reloading="1", monotonic_usec=str(now))

    def send(self, **fields: str) -> None:
        """Send ``READY="1"``, ``STATUS="..."`` and the like in one datagram."""
        if not self._address:
            return
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as error:
            if not self._failing:
                log.warning("cannot notify the service manager", socket=self._name, error=str(error))
            self._failing = True
        else:
            self._failing = False
