"""One device CLI over SSH with netmiko: the session, its host key check, and its errors.

The base of every device driver. It keeps one session across passes and
reopens it when it drops or after any error (a session in an unknown mode is
not worth saving), reads secrets from the files the state file names, checks
host keys against knownHostsFile, never accepting a new one, and turns
netmiko's and paramiko's exceptions into ``peeringd.errors`` here and nowhere
else. Each reply is checked for the device's error lines before it is used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import paramiko
from netmiko import ConnectHandler
from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException, ReadTimeout

from peeringd.adapters import zebos
from peeringd.core import desired
from peeringd.core.plan import Change
from peeringd.errors import (
    CommandRejected,
    DeviceAuthenticationFailed,
    DeviceError,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyMismatch,
    OutputNotUnderstood,
    UnreadableReply,
    VerificationFailed,
)

__all__ = ["PROMPT", "CliSession"]

# Any ZebOS-family prompt: `ns#`, `router(config)#`, `router(config-router)#`.
PROMPT = r"[\w.-]+(?:\([\w-]+\))?#"

_KEY_MISMATCH = re.compile(r"got '([A-Za-z0-9+/=]+)', expected '([A-Za-z0-9+/=]+)'")


class CliSession:
    """An SSH session to one ZebOS-family device's CLI, reopened on demand."""

    device_type = ""  # netmiko's driver
    save_command = ""
    dialect = zebos.NETSCALER
    error_prefixes: tuple[str, ...] = ("%",)
    # The AS of the running `router bgp`, as last read: rendering needs it.
    _router_as: int | None = None
    # This session changed the running config and no save has succeeded since.
    _save_pending = False

    def __init__(self, adc: desired.ADC, *, timeout: float = 30.0) -> None:
        self._start(adc.name, adc.ssh, timeout)

    @classmethod
    def login(cls, name: str, ssh: desired.SSH, *, timeout: float = 30.0) -> Self:
        """A session to a device no state file describes yet (``peeringd import`` reads it)."""
        session = cls.__new__(cls)
        session._start(name, ssh, timeout)
        return session

    def _start(self, name: str, ssh: desired.SSH, timeout: float) -> None:
        self.name = name
        self._ssh = ssh
        self._timeout = timeout
        self._connection: Any = None
        self._line = ""  # the line in flight, named by errors

    @property
    def address(self) -> str:
        return f"{self._ssh.username}@{self._ssh.host}:{self._ssh.port}"

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # the session is being thrown away either way
                connection.disconnect()

    def _session(self) -> Any:
        if self._connection is not None and self._connection.is_alive():
            return self._connection
        self.close()
        self._connection = ConnectHandler(**self._connect_parameters())
        return self._connection

    def _connect_parameters(self) -> dict[str, Any]:
        ssh = self._ssh
        password = self._secret(ssh.password_file) if ssh.password_file else None
        known_hosts = self._known_hosts()
        if not known_hosts.is_file():
            raise HostKeyMismatch(self.name, f"known_hosts file {known_hosts} does not exist")
        return {
            "device_type": self.device_type,
            "host": ssh.host,
            "port": ssh.port,
            "username": ssh.username,
            "password": password,
            "use_keys": ssh.key_file is not None,
            "key_file": str(ssh.key_file) if ssh.key_file else None,
            "passphrase": password if ssh.key_file else None,
            "allow_agent": False,
            "ssh_strict": True,
            "system_host_keys": False,
            "alt_host_keys": True,
            "alt_key_file": str(known_hosts),
            "conn_timeout": 10,
            "auth_timeout": 15,
            "banner_timeout": 15,
            "read_timeout_override": self._timeout,
        }

    def _known_hosts(self) -> Path:
        """knownHostsFile, else ~/.ssh/known_hosts; looked for only when the file names none."""
        if self._ssh.known_hosts_file is not None:
            return self._ssh.known_hosts_file
        try:
            return Path.home() / ".ssh" / "known_hosts"
        except RuntimeError:
            raise HostKeyMismatch(
                self.name,
                "no knownHostsFile is set and there is no home directory to find "
                "~/.ssh/known_hosts in: set ssh.knownHostsFile",
            ) from None

    def _secret(self, path: Path) -> str:
        """The secret in ``path`` without its trailing newline; errors name the file, never the secret."""
        try:
            return path.read_text().rstrip("\n")
        except OSError as error:
            raise DeviceError(self.name, f"cannot read {path}: {error.strerror}") from None

    def _send(self, connection: Any, command: str, prompt: str | None = None) -> str:
        """``command``'s reply, waiting for ``prompt`` (a regex) when the command changes it;
        raises CommandRejected when a reply line starts with one of ``error_prefixes``."""
        self._line = command
        output = str(connection.send_command(command, expect_string=prompt, read_timeout=self._timeout))
        lines = output.splitlines()
        # netmiko strips only the prompt it learnt at login: drop a trailing other one.
        if prompt is not None and lines and re.fullmatch(prompt + r"\s*", lines[-1]):
            lines.pop()
        if rejected := [line.strip() for line in lines if line.strip().startswith(self.error_prefixes)]:
            raise CommandRejected(self.name, command, " ".join(rejected))
        return "\n".join(lines)

    def _render(self, changes: tuple[Change, ...]) -> tuple[zebos.Step, ...]:
        """The lines for ``changes``; every token is checked before anything is sent."""
        try:
            return zebos.render(changes, self.dialect, self._router_as)
        except zebos.RenderError as error:
            raise DeviceError(self.name, f"nothing sent: {error}") from None

    def _configure(
        self, connection: Any, steps: tuple[zebos.Step, ...], changes: tuple[Change, ...]
    ) -> Iterator[Change]:
        """One configuration session: each step's lines, its change yielded once they are all
        accepted; then the running config must show every change."""
        self._save_pending = True
        self._send(connection, "configure terminal", PROMPT)
        for step in steps:
            for line in step.lines:
                self._send(connection, line.strip(), PROMPT)
            if step.change is not None:
                yield step.change
        self._send(connection, "end", PROMPT)
        running = self._running_config(connection)
        if unmet := zebos.unmet(changes, running):
            raise VerificationFailed(f"{self.name}: the running config does not show {len(unmet)} changes")

    def _running_config(self, connection: Any) -> zebos.RunningConfig:
        running = zebos.parse_running_config(self._send(connection, "show running-config", PROMPT))
        self._router_as = running.router_as
        return running

    def save(self) -> None:
        """Persist the running configuration; until it succeeds the device reports itself unsaved,
        so the next pass saves again even when it has nothing else to change."""
        with self._errors(self.save_command):
            self._save_pending = True
            self._persist(self._session())
            self._save_pending = False

    def _persist(self, connection: Any) -> None:
        self._send(connection, self.save_command, PROMPT)

    def _unsaved(self, connection: Any, running: zebos.RunningConfig) -> bool:
        """Whether a reboot would bring back another BGP configuration than ``running``: a save
        this session failed to make, or a startup config whose ``router bgp`` differs.

        A startup config without ``router bgp`` tells nothing (FRR 8.4 prints an empty one
        when vtysh does not find the file; a device may refuse the command): the failed saves
        this session saw are then all that is known.
        """
        try:
            startup = zebos.parse_startup_config(self._send(connection, "show startup-config", PROMPT))
        except CommandRejected:
            return self._save_pending
        return self._save_pending or (startup.router_as is not None and startup != running)

    @contextlib.contextmanager
    def _errors(self, first_line: str) -> Iterator[None]:
        """netmiko's, paramiko's and the parsers' exceptions as peeringd's; any error ends the session."""
        self._line = first_line
        try:
            yield
        except (DeviceError, VerificationFailed):
            self.close()
            raise
        except OutputNotUnderstood as error:
            self.close()
            raise UnreadableReply(self.name, f"cannot read its reply to {error}") from None
        except NetmikoAuthenticationException:
            self.close()
            raise DeviceAuthenticationFailed(self.name, f"{self.address} refused the credentials") from None
        except NetmikoTimeoutException as error:
            self.close()
            raise self._connect_error(str(error)) from None
        except ReadTimeout:
            alive = self._connection is not None and self._connection.is_alive()
            self.close()
            if alive:
                raise DeviceTimeout(
                    self.name, f"no answer to {self._line!r} within {self._timeout:g}s"
                ) from None
            raise DeviceUnreachable(
                self.name, f"the connection dropped while sending {self._line!r}"
            ) from None
        except (OSError, EOFError, paramiko.SSHException) as error:
            self.close()
            raise DeviceUnreachable(
                self.name, f"the connection failed while sending {self._line!r}: {error}"
            ) from None
        except ValueError as error:
            self.close()
            raise DeviceError(self.name, f"unexpected answer to {self._line!r}: {error}") from None

    def _connect_error(self, message: str) -> DeviceError:
        where = f"{self._ssh.host}:{self._ssh.port}"
        known_hosts = self._known_hosts()
        if match := _KEY_MISMATCH.search(message):
            return HostKeyMismatch(
                self.name,
                f"{where} offered host key {_fingerprint(match[1])}, but {known_hosts} expects "
                f"{_fingerprint(match[2])}: not connecting (is it the device?)",
            )
        if "not found in known_hosts" in message:
            return HostKeyMismatch(
                self.name,
                f"{where} offered host key {_offered_fingerprint(self._ssh.host, self._ssh.port)}, "
                f"which is not in {known_hosts}: check it on the device, then add it",
            )
        if "TCP connection to device failed" in message or "DNS failure" in message:
            return DeviceUnreachable(self.name, f"cannot connect to {where}")
        return DeviceTimeout(self.name, f"connecting to {where} timed out")


def _fingerprint(key_base64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _offered_fingerprint(host: str, port: int) -> str:
    """The fingerprint of the key the server offers, read with a bare handshake (no login)."""
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            transport = paramiko.Transport(sock)
            try:
                transport.start_client(timeout=10)
                return str(transport.get_remote_server_key().fingerprint)
            finally:
                transport.close()
    except (OSError, paramiko.SSHException):
        return "(unknown: the handshake failed)"
